//! `siteward export SITE -o FILE` and `siteward import FILE`.

use super::{Context, Exit};
use crate::cli::{ExportArgs, ImportArgs};

/// Writes a site's bundle.
pub fn export(_ctx: &Context, _args: ExportArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not yet")
}

/// Imports a bundle.
pub fn import(_ctx: &Context, _args: ImportArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not yet")
}
