//! The specs as a git checkout: their revision, a fetch that only ever fast-forwards (a dirty or diverged checkout is reported, never overwritten), and the signatures of GitHub's and GitLab's webhooks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long one git command may take (a fetch over a slow link included).
const GIT_BOUND: Duration = Duration::from_secs(120);

/// The git revision of the specs, when the first spec path is in a git checkout.
pub fn revision(paths: &[PathBuf]) -> String {
    let Some(first) = paths.first() else {
        return String::new();
    };
    let dir = if first.is_dir() {
        first.as_path()
    } else {
        first.parent().unwrap_or(Path::new("."))
    };
    std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Why a fetch did not bring the checkout up to date.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {what} in {dir} failed: {stderr}")]
    Failed {
        what: &'static str,
        dir: String,
        stderr: String,
    },
    #[error("git {what} in {dir} did not finish within {GIT_BOUND:?}")]
    Timeout { what: &'static str, dir: String },
    #[error("git could not run")]
    Spawn(#[source] std::io::Error),
    #[error(
        "the checkout {dir} has local changes to tracked files; siteward never overwrites them: \
         commit, stash or discard them (`git -C {dir} status`)"
    )]
    Dirty { dir: String },
    #[error(
        "the checkout {dir} has commits its upstream does not ({ahead} ahead, {behind} behind); \
         siteward only fast-forwards: reset it to the upstream or push them (`git -C {dir} log @{{u}}...HEAD`)"
    )]
    Diverged {
        dir: String,
        ahead: usize,
        behind: usize,
    },
}

/// What a fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The checkout was at the upstream's commit already.
    UpToDate(String),
    /// The checkout moved forward from one commit to another.
    Forwarded { from: String, to: String },
}

/// A specs directory that is a git checkout following an upstream branch.
#[derive(Clone, Debug)]
pub struct Checkout {
    dir: PathBuf,
}

impl Checkout {
    /// The checkout `dir` is in, when it follows an upstream (`git rev-parse @{u}` answers).
    pub async fn detect(dir: &Path) -> Option<Checkout> {
        let checkout = Checkout {
            dir: dir.to_path_buf(),
        };
        checkout
            .git(
                "upstream",
                &["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"],
            )
            .await
            .ok()
            .filter(|upstream| !upstream.is_empty())
            .map(|_| checkout)
    }

    /// Fetches the upstream and fast-forwards to it.
    ///
    /// # Errors
    /// A failing git, local changes to tracked files, or local commits the upstream lacks.
    pub async fn fetch_and_forward(&self) -> Result<Fetched, GitError> {
        self.git("fetch", &["fetch", "--quiet", "--prune"]).await?;
        let head = self.git("rev-parse", &["rev-parse", "HEAD"]).await?;
        let upstream = self.git("rev-parse", &["rev-parse", "@{u}"]).await?;
        if head == upstream {
            return Ok(Fetched::UpToDate(head));
        }
        let dirty = self
            .git("status", &["status", "--porcelain", "--untracked-files=no"])
            .await?;
        if !dirty.is_empty() {
            return Err(GitError::Dirty {
                dir: self.display(),
            });
        }
        let counts = self
            .git(
                "rev-list",
                &["rev-list", "--left-right", "--count", "HEAD...@{u}"],
            )
            .await?;
        let mut numbers = counts
            .split_whitespace()
            .map(|n| n.parse::<usize>().unwrap_or(0));
        let (ahead, behind) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        if ahead > 0 {
            return Err(GitError::Diverged {
                dir: self.display(),
                ahead,
                behind,
            });
        }
        self.git("merge", &["merge", "--quiet", "--ff-only", "@{u}"])
            .await?;
        Ok(Fetched::Forwarded {
            from: head,
            to: upstream,
        })
    }

    fn display(&self) -> String {
        self.dir.display().to_string()
    }

    /// Runs git in the checkout, never prompting; its trimmed stdout.
    async fn git(&self, what: &'static str, args: &[&str]) -> Result<String, GitError> {
        let mut command = tokio::process::Command::new("git");
        command
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(GIT_BOUND, command.output())
            .await
            .map_err(|_| GitError::Timeout {
                what,
                dir: self.display(),
            })?
            .map_err(GitError::Spawn)?;
        if !output.status.success() {
            return Err(GitError::Failed {
                what,
                dir: self.display(),
                stderr: crate::transport::stderr_excerpt(&output.stderr),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Which forge signed a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
}

/// Checks a webhook's signature against `secret`: GitHub's `X-Hub-Signature-256`
/// (`sha256=` and the HMAC-SHA256 of the body, in hex) or GitLab's `X-Gitlab-Token` (the secret
/// itself), compared in constant time.
///
/// # Errors
/// Why the request is refused: no signature header, or one that does not match.
pub fn verify_webhook(
    github_signature: Option<&str>,
    gitlab_token: Option<&str>,
    body: &[u8],
    secret: &str,
) -> Result<Forge, &'static str> {
    if let Some(signature) = github_signature {
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or("X-Hub-Signature-256 does not start with sha256=")?;
        let expected = hex::decode(hex).map_err(|_| "X-Hub-Signature-256 is not hex")?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
        mac.update(body);
        return mac
            .verify_slice(&expected)
            .map(|()| Forge::GitHub)
            .map_err(|_| "X-Hub-Signature-256 does not match the body");
    }
    if let Some(token) = gitlab_token {
        use subtle::ConstantTimeEq;
        return match bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
            true => Ok(Forge::GitLab),
            false => Err("X-Gitlab-Token does not match"),
        };
    }
    Err("no X-Hub-Signature-256 or X-Gitlab-Token header")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    const GITHUB_EXAMPLE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_signature_is_accepted_and_any_other_refused() {
        let secret = "It's a Secret to Everybody";
        assert_eq!(
            verify_webhook(Some(GITHUB_EXAMPLE), None, b"Hello, World!", secret),
            Ok(Forge::GitHub)
        );
        assert!(verify_webhook(Some(GITHUB_EXAMPLE), None, b"Hello, World?", secret).is_err());
        assert!(verify_webhook(Some(GITHUB_EXAMPLE), None, b"Hello, World!", "other").is_err());
        assert!(verify_webhook(Some("sha1=abc"), None, b"", secret).is_err());
        assert!(verify_webhook(None, None, b"Hello, World!", secret).is_err());
    }

    #[test]
    fn a_gitlab_token_must_be_the_secret() {
        assert_eq!(
            verify_webhook(None, Some("s3cret"), b"{}", "s3cret"),
            Ok(Forge::GitLab)
        );
        assert!(verify_webhook(None, Some("s3cre"), b"{}", "s3cret").is_err());
    }
}
