//! `siteward watch`: runs the daemon (`crate::daemon`) until it is told to stop.

use super::reconcile::runtime;
use super::{Context, Exit, hinted};
use crate::cli::WatchArgs;
use crate::daemon::{self, Settings, StartError};

/// Runs the daemon; returns once SIGTERM or SIGINT stopped it cleanly.
pub fn run(ctx: &Context, args: WatchArgs) -> anyhow::Result<Exit> {
    let settings = Settings {
        dir: args.dir,
        listen: args.listen,
        resync: args.resync,
        git_interval: args.git_interval,
        concurrency: usize::from(args.concurrency),
        per_server: usize::from(args.per_server),
        api_token: args.api_token,
        webhook_secret: args.webhook_secret,
        state: ctx.state.clone(),
        lease: args.lease,
    };
    match runtime()?.block_on(daemon::run(settings)) {
        Ok(()) => Ok(Exit::Success),
        Err(error) => Err(start_error(error)),
    }
}

fn start_error(error: StartError) -> anyhow::Error {
    let hint = match &error {
        StartError::Specs { .. } => "fix the errors above; `siteward validate DIR` checks them",
        StartError::Dir { .. } => "give the spec directory as `siteward watch DIR`",
        StartError::Store(_) => {
            "check `--state` (a path, or a postgres:// URL the daemon can reach)"
        }
        StartError::Listen(_) | StartError::Bind { .. } => {
            "choose a free address with `--listen 127.0.0.1:PORT`"
        }
        StartError::Secret { .. } => {
            "export the variable or create the file, readable by the daemon"
        }
        StartError::Watch(_) => {
            "check the directory exists and inotify watches are not exhausted (fs.inotify.max_user_watches)"
        }
    };
    hinted(crate::apply::error_text(&error), hint)
}
