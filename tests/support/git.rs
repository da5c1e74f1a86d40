//! The specs as a git remote for daemons under test: a bare repository made from a workspace's
//! specs, clones of it for daemons to watch, edits pushed to it, and signed webhook bodies.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, ensure};

use super::Workspace;
use super::daemon::WEBHOOK_SECRET;

/// Runs git in `dir` (as user `t`, default branch `main`).
fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()?;
    ensure!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A bare repository `specs.git` beside the workspace's specs, holding them as one commit.
pub fn publish(workspace: &Workspace) -> Result<PathBuf> {
    let root = workspace.root();
    git(root, &["init", "-q", "--bare", "specs.git"])?;
    let specs_dir = workspace.specs_dir();
    git(&specs_dir, &["init", "-q"])?;
    git(&specs_dir, &["add", "-A"])?;
    git(&specs_dir, &["commit", "-q", "-m", "specs"])?;
    let bare = root.join("specs.git");
    git(
        &specs_dir,
        &["push", "-q", &bare.display().to_string(), "HEAD:main"],
    )?;
    Ok(bare)
}

/// A clone of `specs.git` named `name` beside it, following `main`.
pub fn clone(workspace: &Workspace, name: &str) -> Result<PathBuf> {
    let root = workspace.root();
    git(
        root,
        &["clone", "-q", "--branch", "main", "specs.git", name],
    )?;
    Ok(root.join(name))
}

/// Commits an edit of `file` (`old` → `new`) in the workspace's specs and pushes it to `bare`.
pub fn push_edit(
    workspace: &Workspace,
    bare: &Path,
    file: &str,
    old: &str,
    new: &str,
) -> Result<()> {
    let dir = workspace.specs_dir();
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)?;
    ensure!(text.contains(old), "{file} has no {old}");
    std::fs::write(&path, text.replace(old, new))?;
    git(&dir, &["add", "-A"])?;
    git(&dir, &["commit", "-q", "-m", new])?;
    git(
        &dir,
        &["push", "-q", &bare.display().to_string(), "HEAD:main"],
    )
}

/// GitHub's `X-Hub-Signature-256` of `body` with the tests' webhook secret (hex).
pub fn hmac_hex(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
