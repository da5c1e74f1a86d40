//! Backups of the source during a migration: before the final sync stops it, and before
//! `onSource: remove` deletes it; the report names each snapshot.

use super::{MigrationError, Run};
use crate::backup::remote::Remote;
use crate::backup::settings::{SiteLayout, effective};
use crate::transport::Transport;

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    /// Backs the site up on the source, when the site has backups; a failure stops the
    /// migration before what the snapshot was for.
    pub(super) async fn snapshot_source(
        &mut self,
        when: &'static str,
    ) -> Result<(), MigrationError> {
        let job = self.job;
        let Some(Ok(settings)) = effective(job.site, Some(job.target.spec)) else {
            return Ok(());
        };
        let mut layout = SiteLayout::new(job.site, job.source.name, Some(job.source.spec));
        layout.shared = self.source_shared();
        let remote = Remote {
            transport: job.source.streaming,
            server: job.source.name,
            layout: &layout,
            settings: Some(&settings),
            secrets: job.secrets,
            progress: job.progress,
        };
        self.say(&format!("backing the source up {when}"));
        let result = remote
            .backup(None)
            .await
            .map_err(|source| MigrationError::Snapshot {
                server: job.source.name.to_owned(),
                when,
                source: Box::new(source),
            })?;
        self.report.snapshots.push(format!(
            "{when}: {} on `{}`",
            result.label(),
            job.source.name
        ));
        Ok(())
    }
}
