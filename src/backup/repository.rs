//! A backup repository's store from its URL: an S3 store, or a path on another server over SFTP
//! (restic's `sftp:user@host:/path` and `sftp://user@host:port//path`). Pure.

/// Where an `sftp:` repository lives and how the server logs in to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpTarget {
    pub user: String,
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The repository's path on that server (relative paths start at the login's directory).
    pub path: String,
}

impl SftpTarget {
    /// `user@host`, as `ssh` takes it.
    pub fn login(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The known_hosts line that pins `host_key` for this host: ssh looks up another port than
    /// 22 as `[host]:port`.
    pub fn known_hosts_line(&self, host_key: &str) -> String {
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let name = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        format!("{name} {}", key.join(" "))
    }
}

/// The store a repository URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    S3,
    Sftp(SftpTarget),
}

impl Store {
    /// The store of `repository`, or why its URL cannot be used.
    pub fn of(repository: &str) -> Result<Store, String> {
        if repository.starts_with("s3:") {
            return Ok(Store::S3);
        }
        if let Some(rest) = repository.strip_prefix("sftp://") {
            return url_form(rest).map(Store::Sftp);
        }
        if let Some(rest) = repository.strip_prefix("sftp:") {
            return scp_form(rest).map(Store::Sftp);
        }
        Err("a repository is `s3:https://host/bucket/path` or `sftp:user@host:/path`".to_owned())
    }

    /// The SFTP target, for an `sftp:` repository.
    pub fn sftp(&self) -> Option<&SftpTarget> {
        match self {
            Store::Sftp(target) => Some(target),
            Store::S3 => None,
        }
    }
}

/// `user@host:port//abs/path` or `user@host/relative` (after `sftp://`).
fn url_form(rest: &str) -> Result<SftpTarget, String> {
    let (authority, path) = rest
        .split_once('/')
        .ok_or("`sftp://user@host:port//path` needs a path after the host")?;
    let (user, host_port) = user_and_host(authority)?;
    let (host, port) = host_and_port(host_port)?;
    target(user, host, port, path)
}

/// `user@host:/path` or `user@[ipv6]:/path` (after `sftp:`).
fn scp_form(rest: &str) -> Result<SftpTarget, String> {
    let (user, host_path) = user_and_host(rest)?;
    let (host, path) = if let Some(bracketed) = host_path.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        (host, after.strip_prefix(':').unwrap_or(after))
    } else {
        host_path
            .split_once(':')
            .ok_or("`sftp:user@host:/path` needs a `:` between the host and the path")?
    };
    target(user, host, 22, path)
}

fn user_and_host(text: &str) -> Result<(&str, &str), String> {
    text.split_once('@')
        .ok_or_else(|| "name the login: `sftp:user@host:/path`".to_owned())
}

fn host_and_port(text: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => 22,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the port `{port}` is not a number from 1 to 65535"))?,
    };
    Ok((host, port))
}

fn target(user: &str, host: &str, port: u16, path: &str) -> Result<SftpTarget, String> {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if user.is_empty() || !user.chars().all(word) || user.starts_with('-') {
        return Err(format!(
            "the login `{user}` is not a user name (letters, digits, `.`, `-`, `_`)"
        ));
    }
    let host_char = |c: char| word(c) || c == ':';
    if host.is_empty() || !host.chars().all(host_char) || host.starts_with('-') {
        return Err(format!("`{host}` is not a host name or an IP address"));
    }
    if path.is_empty() {
        return Err("the repository needs a path on the server".to_owned());
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the path holds a blank or a control character".to_owned());
    }
    Ok(SftpTarget {
        user: user.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sftp(repository: &str) -> SftpTarget {
        match Store::of(repository) {
            Ok(Store::Sftp(target)) => target,
            other => panic!("{repository}: {other:?}"),
        }
    }

    #[test]
    fn both_of_restics_sftp_forms_are_read() {
        let scp = sftp("sftp:backup@store.example.com:/srv/restic/shop");
        assert_eq!(scp.login(), "backup@store.example.com");
        assert_eq!((scp.port, scp.path.as_str()), (22, "/srv/restic/shop"));
        let url = sftp("sftp://backup@10.77.0.1:2022//backups/shop");
        assert_eq!(url.login(), "backup@10.77.0.1");
        assert_eq!((url.port, url.path.as_str()), (2022, "/backups/shop"));
        let relative = sftp("sftp://backup@store/restic");
        assert_eq!((relative.port, relative.path.as_str()), (22, "restic"));
        let v6 = sftp("sftp://backup@[fd00::5]:2200//r");
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::5", 2200));
        assert_eq!(sftp("sftp:b@[fd00::5]:/r").host, "fd00::5");
        assert_eq!(Store::of("s3:https://s3.test/bucket"), Ok(Store::S3));
    }

    #[test]
    fn a_repository_that_cannot_be_reached_says_why() {
        for (repository, why) in [
            ("sftp:store.example.com:/srv", "name the login"),
            ("sftp:backup@store.example.com", "needs a `:`"),
            ("sftp://backup@store:99999//r", "not a number"),
            ("sftp://backup@store:2022", "needs a path"),
            ("sftp:-oProxyCommand=x@store:/r", "not a user name"),
            ("sftp:backup@-store:/r", "not a host name"),
            ("sftp:backup@store:", "needs a path"),
            ("ftp://store/r", "is `s3:"),
        ] {
            let error = Store::of(repository).unwrap_err();
            assert!(error.contains(why), "{repository}: {error}");
        }
    }

    #[test]
    fn the_known_hosts_line_names_the_port_as_ssh_looks_it_up() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVg root@store";
        assert_eq!(
            sftp("sftp:b@store:/r").known_hosts_line(key),
            "store ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVg"
        );
        assert_eq!(
            sftp("sftp://b@10.77.0.1:2022//r").known_hosts_line(key),
            "[10.77.0.1]:2022 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVg"
        );
    }
}
