//! Where a server is and how to log in to it: address, identity, host key policy, root, timeouts.

use std::path::PathBuf;
use std::time::Duration;

/// How to reach and log in to one server.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// Host name or IP address.
    pub address: String,
    /// TCP port, usually 22.
    pub port: u16,
    /// The login user: root, or a user with passwordless `sudo` (see [`Become`]).
    pub user: String,
    /// The key to log in with.
    pub identity: Identity,
    /// How the server's host key is verified.
    pub host_keys: HostKeyPolicy,
    /// How commands get root.
    pub become_root: Become,
    /// Bounds on every network wait.
    pub timeouts: Timeouts,
}

impl SshTarget {
    /// `address:port`, with IPv6 addresses in brackets.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.address, self.port)
    }
}

/// `address:port`, with IPv6 addresses in brackets.
pub(super) fn endpoint_of(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The key siteward logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An unencrypted private key file (ed25519, ecdsa or rsa).
    File(PathBuf),
    /// The keys of the ssh-agent at `SSH_AUTH_SOCK`.
    Agent,
    /// The keys of the ssh-agent listening on this socket.
    AgentAt(PathBuf),
}

impl Identity {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::File(path) => format!("key {}", path.display()),
            Self::Agent => "the keys of ssh-agent (SSH_AUTH_SOCK)".to_owned(),
            Self::AgentAt(socket) => format!("the keys of ssh-agent at {}", socket.display()),
        }
    }
}

/// How a server's host key is trusted. Strict by default: unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// A pinned `SHA256:…` fingerprint (as `ssh-keygen -l` prints it); when set, only this key
    /// is accepted and `known_hosts` is not consulted.
    pub pinned: Option<String>,
    /// The known_hosts file consulted otherwise.
    pub known_hosts: PathBuf,
    /// Record the key of a host that has no key at all in `known_hosts` (OpenSSH's
    /// `StrictHostKeyChecking=accept-new`); changed keys are still refused.
    pub accept_new: bool,
}

/// How commands get root on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Become {
    /// The login user is root: commands run as they are.
    Direct,
    /// Commands are wrapped in `sudo -n -- sh -c <command>`; sudo never prompts.
    SudoN,
}

/// Bounds on every network wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus the SSH handshake and host key check.
    pub connect: Duration,
    /// Authentication.
    pub auth: Duration,
    /// Each command, from opening its channel to its exit. The server kills the command's
    /// process group shortly after (`timeout -s KILL`), so nothing is left running.
    pub exec: Duration,
    /// Interval of keepalives when the server is silent; three unanswered ones drop the connection.
    pub keepalive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            auth: Duration::from_secs(15),
            exec: Duration::from_secs(600),
            keepalive: Duration::from_secs(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let mut target = SshTarget {
            address: "2001:db8::1".to_owned(),
            port: 2222,
            user: "root".to_owned(),
            identity: Identity::Agent,
            host_keys: HostKeyPolicy {
                pinned: None,
                known_hosts: PathBuf::from("known_hosts"),
                accept_new: false,
            },
            become_root: Become::Direct,
            timeouts: Timeouts::default(),
        };
        assert_eq!(target.endpoint(), "[2001:db8::1]:2222");
        target.address = "web-1".to_owned();
        assert_eq!(target.endpoint(), "web-1:2222");
    }
}
