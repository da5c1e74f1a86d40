//! The check a login through `sudo -n` gets at connect time: every command needs root, so a sudo that asks for a password, refuses the user or is missing fails there, once, with the fix.

use super::{SshError, SshSession};
use crate::transport::Stdin;
use crate::transport::stderr_excerpt;

/// What `sudo -n -- true` said about the login user.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SudoVerdict {
    /// It ran: passwordless sudo works.
    Works,
    /// sudo wanted a password (`-n` makes it say so instead of asking).
    NeedsPassword,
    /// The server has no `sudo`.
    Missing,
    /// sudo refused otherwise (the user is not in sudoers, `requiretty`, …).
    Refused(String),
}

/// Judges the status and stderr of `sudo -n -- true`.
pub(super) fn verdict(status: u32, stderr: &[u8]) -> SudoVerdict {
    let text = String::from_utf8_lossy(stderr);
    match status {
        0 => SudoVerdict::Works,
        _ if text.contains("password is required") => SudoVerdict::NeedsPassword,
        127 => SudoVerdict::Missing,
        _ => SudoVerdict::Refused(stderr_excerpt(stderr)),
    }
}

impl SshSession {
    /// Runs `sudo -n -- true` as the login user; an error names the fix unless sudo works.
    pub(super) async fn check_sudo(&self, user: &str) -> Result<(), SshError> {
        let slot = self.reserve().await;
        let mut stdout = Vec::new();
        let exit = self
            .run_raw(slot, "sudo -n -- true", Stdin::Empty, &mut stdout)
            .await?;
        let endpoint = self.inner.endpoint.clone();
        let user = user.to_owned();
        match verdict(exit.status, &exit.stderr) {
            SudoVerdict::Works => Ok(()),
            SudoVerdict::NeedsPassword => Err(SshError::SudoNeedsPassword { user, endpoint }),
            SudoVerdict::Missing => Err(SshError::SudoMissing { user, endpoint }),
            SudoVerdict::Refused(stderr) => Err(SshError::SudoRefused {
                user,
                endpoint,
                stderr,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_answers_are_told_apart() {
        assert_eq!(verdict(0, b""), SudoVerdict::Works);
        assert_eq!(
            verdict(1, b"sudo: a password is required\n"),
            SudoVerdict::NeedsPassword
        );
        assert_eq!(
            verdict(127, b"bash: line 1: sudo: command not found\n"),
            SudoVerdict::Missing
        );
        assert_eq!(
            verdict(1, b"clerk is not in the sudoers file.\n"),
            SudoVerdict::Refused("clerk is not in the sudoers file.".to_owned())
        );
    }
}
