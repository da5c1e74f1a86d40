//! Everything that can go wrong talking to a server over SSH, each error naming the server and, where there is one, the fix.

use std::path::PathBuf;
use std::time::Duration;

use super::target::endpoint_of;
use crate::transport::known_hosts::{KnownHostsError, host_name};
use crate::transport::quote::QuoteError;

/// Everything that can go wrong talking to a server over SSH.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// Nothing listens on the port.
    #[error("connection to {endpoint} refused")]
    ConnectRefused {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection or the SSH handshake did not complete in time.
    #[error(
        "could not connect to {endpoint} within {bound:?} (host down, unreachable, or not an SSH server)"
    )]
    ConnectTimeout {
        /// `address:port`.
        endpoint: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The TCP connection failed otherwise (unreachable, unknown host name).
    #[error("could not connect to {endpoint}")]
    Connect {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server closed every connection before the SSH handshake.
    #[error(
        "{endpoint} closed the connection before the SSH handshake, {attempts} times in {bound:?}; \
         sshd drops new connections while `MaxStartups` (10:30:100 by default) are being set up, \
         and a firewall or fail2ban may close them too; hint: check the server's sshd log \
         (\"past MaxStartups\") and that this machine is not banned"
    )]
    ClosedBeforeHandshake {
        /// `address:port`.
        endpoint: String,
        /// How many connections were tried.
        attempts: u32,
        /// The connect bound.
        bound: Duration,
    },
    /// The SSH handshake failed.
    #[error("SSH handshake with {endpoint} failed")]
    Handshake {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// The host key is not in known_hosts.
    #[error(
        "host key of {} is unknown: it presented {fingerprint}, and {} holds no key for it; \
         hint: check the fingerprint out of band, then add it with `ssh-keyscan -p {port} {address} >> {}`, \
         run with `--accept-new-host-keys`, or pin it in the Server spec as `hostKey: {fingerprint}`",
        endpoint_of(address, *port), known_hosts.display(), known_hosts.display()
    )]
    HostKeyUnknown {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's `SHA256:` fingerprint.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// Another key of the same type is recorded for the host.
    #[error(
        "host key of {} has CHANGED: it presented {fingerprint}, but {}:{line} holds {known_fingerprint}; \
         this is a reinstalled server or someone intercepting the connection; \
         hint: if the change is expected, remove the old key with `ssh-keygen -R '{}' -f {}` \
         and add the new one after checking it, or pin it as `hostKey: {fingerprint}`",
        endpoint_of(address, *port), known_hosts.display(), host_name(address, *port), known_hosts.display()
    )]
    HostKeyChanged {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The recorded key's fingerprint.
        known_fingerprint: String,
        /// The file holding the old key.
        known_hosts: PathBuf,
        /// 1-based line of the old key.
        line: usize,
    },
    /// Only keys of other types are recorded for the host, and the server offers none of them.
    #[error(
        "host key of {} is of type {presented_type} ({fingerprint}), but {}:{line} holds a {known_type} key \
         for it and the server did not offer that type; hint: if the server's keys were replaced, \
         remove the old entry with `ssh-keygen -R '{}' -f {}` and add the new key after checking it",
        endpoint_of(address, *port), known_hosts.display(), host_name(address, *port), known_hosts.display()
    )]
    HostKeyOtherType {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The presented key's type.
        presented_type: &'static str,
        /// The recorded key's type.
        known_type: &'static str,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the recorded key.
        line: usize,
    },
    /// The key is marked `@revoked`.
    #[error("host key of {endpoint} ({fingerprint}) is marked @revoked at {}:{line}", known_hosts.display())]
    HostKeyRevoked {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the `@revoked` entry.
        line: usize,
    },
    /// The host is vouched for by a certificate authority, which siteward does not verify.
    #[error(
        "host {endpoint} is listed under @cert-authority at {}:{line}, but siteward does not verify host \
         certificates; hint: pin the host key as `hostKey: {fingerprint}` after checking it",
        known_hosts.display()
    )]
    HostKeyCertAuthority {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the `@cert-authority` entry.
        line: usize,
    },
    /// The key does not match the pinned fingerprint.
    #[error(
        "host key of {endpoint} does not match the pinned fingerprint: it presented {fingerprint}, \
         the Server spec pins {pinned}; hint: if the server was reinstalled, check the new key and update `hostKey`"
    )]
    HostKeyPinMismatch {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The pin.
        pinned: String,
    },
    /// The pin is not a `SHA256:` fingerprint.
    #[error(
        "pinned host key {pinned:?} is not a SHA256 fingerprint like `SHA256:` followed by 43 base64 characters"
    )]
    InvalidPin {
        /// The pin.
        pinned: String,
    },
    /// The known_hosts file could not be read or written.
    #[error("could not check the host key of {endpoint}")]
    KnownHosts {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: KnownHostsError,
    },
    /// The private key could not be loaded.
    #[error("could not load SSH key {}", path.display())]
    KeyLoad {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// The private key is encrypted, and no ssh-agent holds it.
    #[error(
        "SSH key {} is encrypted and siteward never asks for passphrases; hint: load it into \
         ssh-agent (`eval \"$(ssh-agent)\"; ssh-add {}`) and run siteward with that agent's \
         SSH_AUTH_SOCK: the agent then signs with it", path.display(), path.display()
    )]
    KeyEncrypted {
        /// The key file.
        path: PathBuf,
    },
    /// sudo asks the login user for a password.
    #[error(
        "`{user}` on {endpoint} needs a password for sudo, and siteward runs every command \
         through `sudo -n`, which never asks; hint: allow it without one, as root on the server: \
         `echo '{user} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user} && chmod 0440 \
         /etc/sudoers.d/{user} && visudo -c`, or log in as root (`user: root`)"
    )]
    SudoNeedsPassword {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
    },
    /// The server has no sudo.
    #[error(
        "{endpoint} has no `sudo`, and `{user}` is not root; hint: install it (`apt-get install \
         sudo`) and allow `{user}` passwordless sudo, or log in as root (`user: root`)"
    )]
    SudoMissing {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
    },
    /// sudo refused the login user.
    #[error(
        "`{user}` on {endpoint} may not run commands as root with `sudo -n`: {stderr}; hint: \
         allow it, as root on the server: `echo '{user} ALL=(ALL:ALL) NOPASSWD: ALL' > \
         /etc/sudoers.d/{user} && chmod 0440 /etc/sudoers.d/{user} && visudo -c`, or log in as \
         root (`user: root`)"
    )]
    SudoRefused {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// What sudo said.
        stderr: String,
    },
    /// No key file is named and no ssh-agent is there to ask.
    #[error(
        "no `identityFile` is given, so siteward logs in with the keys of ssh-agent, but \
         SSH_AUTH_SOCK is not set; hint: name the key in the Server spec (`identityFile: \
         ~/.ssh/id_ed25519`), or start an agent and add the key: `eval \"$(ssh-agent)\"; ssh-add \
         ~/.ssh/id_ed25519`"
    )]
    NoAgent,
    /// The ssh-agent could not be reached or used.
    #[error(
        "could not use the ssh-agent at SSH_AUTH_SOCK; hint: check that the agent still runs \
         (`ssh-add -l`)"
    )]
    Agent {
        /// The cause.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// The ssh-agent failed while signing.
    #[error("ssh-agent failed to sign for {endpoint}")]
    AgentSign {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::AgentAuthError>,
    },
    /// The server refused every key.
    #[error(
        "authentication as `{user}` on {endpoint} failed with {identity}; hint: the key's public \
         half must be in ~{user}/.ssh/authorized_keys on the server{}",
        root_hint(user)
    )]
    AuthFailed {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// Which key(s) were tried.
        identity: String,
    },
    /// Authentication did not complete in time.
    #[error("authentication as `{user}` on {endpoint} did not complete within {bound:?}")]
    AuthTimeout {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The connection failed during authentication.
    #[error("authentication as `{user}` on {endpoint} failed")]
    Auth {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// A channel could not be opened or used (the connection is probably gone).
    #[error("SSH channel to {endpoint} failed")]
    Channel {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// The server kept refusing to open a session channel on this connection.
    #[error(
        "{endpoint} refused to open another SSH session on this connection ({reason}) for {waited:?}, \
         with {open} of siteward's sessions open; sshd allows `MaxSessions` sessions per connection \
         (10 unless /etc/ssh/sshd_config or a `Match` block says otherwise) and siteward stays \
         under it; hint: make sure `MaxSessions` is at least 1 for this user, and that nothing \
         else on the server limits sessions (`sshd -T -C user=USER,host=HOST,addr=ADDR | grep -i maxsessions`)"
    )]
    SessionsRefused {
        /// `address:port`.
        endpoint: String,
        /// The server's reason.
        reason: String,
        /// siteward's channels open on the connection when it gave up.
        open: usize,
        /// How long it retried.
        waited: Duration,
    },
    /// The server has no session free on this connection right now (one end of a stream gives
    /// its other end's channel back and tries again).
    #[error("{endpoint} has no SSH session free on this connection right now (sshd `MaxSessions`)")]
    SessionsBusy {
        /// `address:port`.
        endpoint: String,
    },
    /// The server refused to run the command.
    #[error("{endpoint} refused to run `{command}`")]
    ExecRefused {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
    },
    /// The command did not finish in time; it was sent SIGKILL and its channel closed.
    #[error("`{command}` on {endpoint} did not finish within {bound:?}")]
    ExecTimeout {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The channel closed without an exit status.
    #[error("`{command}` on {endpoint} ended without an exit status (connection lost?)")]
    NoExitStatus {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
    },
    /// Reading the local stdin source failed.
    #[error("could not read the input for `{command}`")]
    StdinRead {
        /// The first line of the command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the command's stdout to the local writer failed.
    #[error("could not write the output of `{command}`")]
    StdoutWrite {
        /// The first line of the command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command could not be wrapped for sudo.
    #[error("command cannot be sent")]
    Quote(#[from] QuoteError),
}

/// For root: many servers refuse root logins (`PermitRootLogin no`).
fn root_hint(user: &str) -> &'static str {
    match user {
        "root" => {
            ", and many servers refuse root logins (sshd's `PermitRootLogin`): then log in as a \
             user with passwordless sudo (`user: deploy`)"
        }
        _ => "",
    }
}
