//! How siteward logs in to a server: the keys of ssh-agent when a Server names no key file, an
//! encrypted key file through the agent that holds it, and clear errors, at once, when neither
//! works. Host: `t-login-a`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use support::sshd::{Agent, run};
use support::{Fleet, Host, Workspace};

/// A Server document for `host` with `identity` as its `identityFile` line (or none).
fn server_with_identity(host: &Host, identity: Option<&Path>) -> String {
    let identity = identity
        .map(|key| format!("  identityFile: {:?}\n", key.display().to_string()))
        .unwrap_or_default();
    format!(
        "apiVersion: siteward.dev/v1\nkind: Server\nmetadata:\n  name: web\nspec:\n  \
         address: {:?}\n  user: root\n{identity}  knownHostsFile: {:?}\n  php: [\"8.2\"]\n",
        host.address,
        host.known_hosts.display().to_string(),
    )
}

fn workspace_with(host: &Host, identity: Option<&Path>) -> Result<Workspace> {
    let workspace = Workspace::new()?;
    workspace.write_spec("servers/web.yaml", &server_with_identity(host, identity))?;
    Ok(workspace)
}

/// A copy of the fleet's key in `dir`, encrypted with a passphrase.
fn encrypted_copy(host: &Host, dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("locked_ed25519");
    std::fs::copy(&host.key_path, &copy).unwrap();
    let path = copy.to_str().unwrap();
    run(
        "ssh-keygen",
        &["-q", "-p", "-P", "", "-N", "a passphrase", "-f", path],
    );
    copy
}

#[test]
fn the_keys_of_ssh_agent_log_in_when_no_key_file_is_named() -> Result<()> {
    let host = Fleet::host("t-login-a")?;
    let dir = tempfile::tempdir()?;
    let agent = Agent::start(dir.path(), &host.key_path);
    let workspace = workspace_with(&host, None)?;
    let socket = agent.socket.to_str().unwrap();
    let observed = workspace.siteward_with_env(&["observe"], &[("SSH_AUTH_SOCK", socket)])?;
    observed.assert_success();
    ensure!(observed.stdout.contains("web"), "{observed}");

    let without = workspace.siteward(&["observe"])?;
    without.assert_code(1);
    ensure!(
        without.stderr.contains("SSH_AUTH_SOCK is not set") && without.stderr.contains("ssh-add"),
        "{without}"
    );
    Ok(())
}

#[test]
fn an_encrypted_key_file_is_used_through_its_agent_and_refused_at_once_without_one() -> Result<()> {
    let host = Fleet::host("t-login-a")?;
    let dir = tempfile::tempdir()?;
    let locked = encrypted_copy(&host, dir.path());
    let workspace = workspace_with(&host, Some(&locked))?;

    let started = Instant::now();
    let refused = workspace.siteward(&["observe"])?;
    refused.assert_code(1);
    ensure!(
        refused.stderr.contains("is encrypted") && refused.stderr.contains("ssh-add"),
        "{refused}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "it waited: {:?}",
        started.elapsed()
    );

    let agent = Agent::start(dir.path(), &host.key_path);
    let socket = agent.socket.to_str().unwrap();
    let observed = workspace.siteward_with_env(&["observe"], &[("SSH_AUTH_SOCK", socket)])?;
    observed.assert_success();
    Ok(())
}
