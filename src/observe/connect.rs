//! From specs to an observation: how to reach a Server, what to ask its probe, and the one exec.

use std::collections::BTreeMap;
use std::time::Duration;

use super::probe::{self, AdminLogin, ProbeAccess, ProbeError};
use super::{HealthProbe, ObservedServer, ProbeRequest, RedisEndpoint, SiteProbe};
use crate::spec::secret::{ResolvedSecrets, SecretError, expand_home};
use crate::spec::server::DatabaseAdmin;
use crate::spec::site::DatabaseEngine;
use crate::spec::{Loaded, Server, Site};

use crate::transport::{
    Become, HostKeyPolicy, Identity, SshTarget, Stdin, Timeouts, Transport, TransportError,
};

/// The exec bound of a probe: it answers in well under a second; a server that takes this
/// long is in trouble.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a server could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A database admin password could not be read.
    #[error("the {field} of server `{server}` cannot be resolved")]
    Secret {
        /// The server.
        server: String,
        /// The spec field, e.g. `mysql.adminPassword`.
        field: &'static str,
        /// The cause.
        #[source]
        source: SecretError,
    },
    /// The probe could not be written for this request.
    #[error("the probe for server `{server}` cannot be rendered")]
    Render {
        /// The server.
        server: String,
        /// The cause.
        #[source]
        source: ProbeError,
    },
    /// The probe could not be run.
    #[error("the probe could not run on server `{server}`")]
    Transport {
        /// The server.
        server: String,
        /// The cause.
        #[source]
        source: Box<TransportError>,
    },
    /// The probe ran but its answer is unusable.
    #[error(
        "the probe on server `{server}` gave an unusable answer (exit status {status}{})",
        stderr_suffix(stderr)
    )]
    Answer {
        /// The server.
        server: String,
        /// The probe's exit status.
        status: u32,
        /// The probe's stderr, trimmed.
        stderr: String,
        /// What is wrong with the answer.
        #[source]
        source: ProbeError,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(", stderr: {stderr}")
    }
}

/// How to reach `server`: its identity file (`~/` expanded) or ssh-agent, its pinned host key
/// or known_hosts file (default `~/.ssh/known_hosts`), root directly or through `sudo -n`.
/// `accept_new` records the key of a host known_hosts has never seen.
pub fn target(server: &Server, accept_new: bool) -> SshTarget {
    let spec = &server.spec;
    let known_hosts = spec
        .known_hosts_file
        .as_deref()
        .map_or_else(|| expand_home("~/.ssh/known_hosts"), expand_home);
    SshTarget {
        address: spec.address.clone(),
        port: spec.port,
        user: spec.user.clone(),
        identity: spec
            .identity_file
            .as_deref()
            .map_or(Identity::Agent, |file| Identity::File(expand_home(file))),
        host_keys: HostKeyPolicy {
            pinned: spec.host_key.clone(),
            known_hosts,
            accept_new,
        },
        become_root: if spec.user == "root" {
            Become::Direct
        } else {
            Become::SudoN
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            auth: Duration::from_secs(15),
            exec: PROBE_TIMEOUT,
            keepalive: Duration::from_secs(spec.keepalive_seconds.map_or(15, u64::from)),
        },
    }
}

/// The database logins of `server`, with their passwords from `secrets` (or read now when
/// `secrets` lacks them, so that the error says why).
///
/// # Errors
/// [`ObserveError::Secret`] when a password reference cannot be read.
pub fn probe_access(
    server: &Server,
    secrets: &ResolvedSecrets,
) -> Result<ProbeAccess, ObserveError> {
    let defaults = ProbeAccess::default();
    Ok(ProbeAccess {
        mysql: admin_login(
            server,
            secrets,
            &server.spec.mysql,
            defaults.mysql,
            "mysql.adminPassword",
        )?,
        postgres: admin_login(
            server,
            secrets,
            &server.spec.postgres,
            defaults.postgres,
            "postgres.adminPassword",
        )?,
    })
}

fn admin_login(
    server: &Server,
    secrets: &ResolvedSecrets,
    admin: &Option<DatabaseAdmin>,
    default: AdminLogin,
    field: &'static str,
) -> Result<AdminLogin, ObserveError> {
    let Some(admin) = admin else {
        return Ok(default);
    };
    let password = match &admin.admin_password {
        None => None,
        Some(reference) => Some(match secrets.get(reference) {
            Some(secret) => secret.clone(),
            None => reference.resolve().map_err(|source| ObserveError::Secret {
                server: server.name.to_string(),
                field,
                source,
            })?,
        }),
    };
    Ok(AdminLogin {
        user: admin.admin_user.clone(),
        password,
    })
}

/// Observes `server` with exactly one exec on `session`: the probe for `request`, logging in
/// to the databases with the admin passwords in `secrets`.
///
/// # Errors
/// Secrets that cannot be read, a transport failure, or an answer that breaks the protocol.
pub async fn observe(
    server: &Server,
    session: &impl Transport,
    request: &ProbeRequest,
    secrets: &ResolvedSecrets,
) -> Result<ObservedServer, ObserveError> {
    let name = server.name.to_string();
    let render_error = |source| ObserveError::Render {
        server: name.clone(),
        source,
    };
    let access = probe_access(server, secrets)?;
    let script = probe::render(request, &access).map_err(render_error)?;
    let command = probe::probe_command().map_err(|e| render_error(e.into()))?;
    let output = session
        .exec(&command, Stdin::Bytes(script.as_bytes()))
        .await
        .map_err(|source| ObserveError::Transport {
            server: name.clone(),
            source: Box::new(source),
        })?;
    tracing::debug!(server = %name, bytes = output.stdout.len(), status = output.status, "probe answered");
    probe::parse(&output.stdout, request).map_err(|source| ObserveError::Answer {
        server: name,
        status: output.status,
        stderr: output.stderr_lossy(),
        source,
    })
}

/// What to ask the probe on each server of `loaded`, by server name.
pub fn probe_requests(loaded: &Loaded) -> BTreeMap<String, ProbeRequest> {
    loaded
        .servers
        .iter()
        .map(|located| {
            let name = located.item.name.to_string();
            let request = probe_request(loaded, &name);
            (name, request)
        })
        .collect()
}

/// What to ask the probe on server `server`: the sites the specs place on it, and its Redis.
/// An unknown server gets an empty request (its recorded sites are still observed).
pub fn probe_request(loaded: &Loaded, server: &str) -> ProbeRequest {
    let sites: Vec<&Site> = loaded
        .sites
        .iter()
        .map(|located| &located.item)
        .filter(|site| site.spec.server.as_str() == server)
        .collect();
    probe_request_for(loaded, server, &sites, false)
}

/// The site's health check, as the spec says it (`health:`), for the probe to make.
fn health_probe(site: &Site) -> Option<HealthProbe> {
    let health = site.spec.health.as_ref()?;
    Some(HealthProbe {
        path: health.path.clone(),
        expect_status: health.expect_status,
        expect_body: health.expect_body.clone(),
        timeout_seconds: health.timeout_seconds,
        https: site.spec.tls.is_some(),
    })
}

/// What to ask the probe on server `server` about `sites` alone (and its Redis), their health
/// checks made too when `health`: the daemon observes one site at a time, and its health.
pub fn probe_request_for(
    loaded: &Loaded,
    server: &str,
    sites: &[&Site],
    health: bool,
) -> ProbeRequest {
    let sites = sites
        .iter()
        .map(|site| SiteProbe {
            health: health.then(|| health_probe(site)).flatten(),
            ..site_probe(site)
        })
        .collect();
    let redis = loaded
        .servers
        .iter()
        .find(|located| located.item.name.as_str() == server)
        .and_then(|located| located.item.spec.redis.as_ref())
        .and_then(|redis| redis_endpoint(&redis.url));
    ProbeRequest {
        sites,
        redis,
        only_requested: false,
    }
}

fn site_probe(site: &Site) -> SiteProbe {
    let spec = &site.spec;
    let database = spec.database.as_ref();
    SiteProbe {
        name: site.name.to_string(),
        user: spec.user.to_string(),
        domain: spec.domain.clone(),
        php: spec.php.clone(),
        database: database.map(|db| (engine_name(db.engine).to_owned(), db.name.to_string())),
        database_users: database
            .map(|db| db.users.iter().map(|user| user.name.to_string()).collect())
            .unwrap_or_default(),
        storage: storage_directories(site),
        source: spec.source.as_ref().and_then(|source| {
            let reference = source.branch.clone().or_else(|| source.revision.clone())?;
            Some((source.repository.clone(), reference))
        }),
        health: None,
        adopted: adopted_paths(site),
    }
}

/// The files the site's `adopt` section names, each once.
fn adopted_paths(site: &Site) -> Vec<String> {
    let mut paths: Vec<String> = site
        .spec
        .adopt
        .iter()
        .flat_map(|adopt| adopt.paths().map(|(_, path)| path.to_owned()))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Every storage directory the site needs (defaults included) and each of its parents,
/// relative to the shared directory: the probe reports each one.
fn storage_directories(site: &Site) -> Vec<String> {
    let desired = crate::resources::DesiredSite::new(site);
    crate::resources::directories::storage_directories(&desired.storage)
}

/// The engine as the probe and the site records name it.
pub fn engine_name(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Mysql => "mysql",
        DatabaseEngine::Mariadb => "mariadb",
        DatabaseEngine::Postgres => "postgres",
    }
}

/// `redis://[user:password@]host[:port][/db]` → host and port; `None` for TLS (`rediss://`),
/// which `redis-cli` cannot ping without certificates; the probe then checks the process.
fn redis_endpoint(url: &str) -> Option<RedisEndpoint> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (
                host,
                after.strip_prefix(':').map_or(Ok(6379), str::parse).ok()?,
            )
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (host_port, 6379),
        },
    };
    (!host.is_empty()).then(|| RedisEndpoint {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_give_host_and_port() {
        let endpoint = |url| redis_endpoint(url).map(|e| (e.host, e.port));
        assert_eq!(
            endpoint("redis://127.0.0.1:6379"),
            Some(("127.0.0.1".into(), 6379))
        );
        assert_eq!(
            endpoint("redis://:secret@cache:6380/2"),
            Some(("cache".into(), 6380))
        );
        assert_eq!(endpoint("redis://cache"), Some(("cache".into(), 6379)));
        assert_eq!(endpoint("redis://[::1]:6379"), Some(("::1".into(), 6379)));
        assert_eq!(endpoint("rediss://cache:6380"), None);
    }
}
