//! An installed `siteward` needs nothing from the source tree: a copy of the binary, run with
//! the repository hidden (a mount namespace with an empty directory over it) from another
//! directory, validates, writes schemas, and applies a site to a fleet host. Host: `t-install-a`.

mod support;

use std::process::Command;

use anyhow::{Context, Result, ensure};
use support::site::{APP_KEY, Shape, clean_site, site_spec};
use support::{CommandOutput, Fleet, Workspace, repo_root};

/// Runs the copy of siteward at `binary` in `cwd` with `args`, the repository hidden.
fn run_hidden(
    binary: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(String, String)],
) -> Result<CommandOutput> {
    let script =
        r#"mount -t tmpfs -o size=1m siteward-hidden "$1" && cd "$2" && shift 2 && exec "$@""#;
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(repo_root())
        .arg(cwd)
        .arg(binary)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(command.output().context("failed to run unshare")?.into())
}

#[test]
fn a_copy_of_the_binary_works_from_any_directory_with_the_source_tree_hidden() -> Result<()> {
    let host = Fleet::host("t-install-a")?;
    clean_site(&host, "installed")?;
    let workspace = Workspace::with_servers(&[("web", &host)])?;
    let shape = Shape {
        branch: "main",
        script: "php artisan migrate --force",
        keep: 2,
    };
    workspace.write_spec("sites/installed.yaml", &site_spec("installed", &shape))?;
    let env = vec![
        ("INSTALLED_APP_KEY".to_owned(), APP_KEY.to_owned()),
        (
            "INSTALLED_DB_PASSWORD".to_owned(),
            "pw-installed".to_owned(),
        ),
    ];
    let bin = tempfile::tempdir()?;
    let binary = bin.path().join("siteward");
    std::fs::copy(env!("CARGO_BIN_EXE_siteward"), &binary)?;

    let listing = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m siteward-hidden "$1" && ls -A "$1" | wc -l"#)
        .arg("sh")
        .arg(repo_root())
        .output()?;
    ensure!(
        String::from_utf8_lossy(&listing.stdout).trim() == "0",
        "the tree is not hidden"
    );

    for args in [
        &["--version"][..],
        &["validate"][..],
        &["schema"][..],
        &["schema", "--check"][..],
        &["apply", "--auto-approve"][..],
        &["plan", "--detailed-exitcode"][..],
    ] {
        let run = run_hidden(&binary, workspace.root(), args, &env)?;
        ensure!(run.success(), "siteward {args:?}: {run}");
    }
    ensure!(
        workspace.root().join("schemas/siteward.json").is_file(),
        "no schema written"
    );
    let (status, body) = host.http_get("installed.test", "/up")?;
    ensure!((status, body.trim()) == (200, "OK"), "{status} {body}");
    clean_site(&host, "installed")
}
