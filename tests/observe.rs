//! Observation against real servers: the probe's one exec, what it sees of sites made by hand,
//! its refusal of malformed answers, and injection attempts through site facts.

mod support;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use siteward::observe::probe::{self, ProbeAccess, ProbeError};
use siteward::observe::{
    ObservedServer, PathKind, ProbeRequest, SiteProbe, observe, probe_request, target,
};
use siteward::spec::names::ServerName;
use siteward::spec::secret::ResolvedSecrets;
use siteward::spec::{Server, ServerSpec};
use siteward::transport::{SshSession, Stdin, Transport};
use support::{Fleet, Host, Workspace};

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn server(name: &str, host: &Host, extra: serde_json::Value) -> Server {
    let mut spec = serde_json::json!({
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "identityFile": host.key_path,
        "knownHostsFile": host.known_hosts,
        "php": ["8.2"],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    Server {
        name: ServerName::new(name).unwrap(),
        spec: serde_json::from_value::<ServerSpec>(spec).unwrap(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One site made by hand, with everything the probe looks at.
struct Made {
    name: String,
    user: String,
    domain: String,
    engine: &'static str,
    database: String,
    in_place: bool,
    worker_running: bool,
    env: Vec<(&'static str, &'static str)>,
    vhost: String,
    pool: String,
    cron: String,
    program: String,
}

/// `.env` lines and the values Laravel reads from them.
const ENV: &[(&str, &str, &str)] = &[
    ("APP_NAME", "APP_NAME=\"My Shop\"", "My Shop"),
    ("APP_KEY", "APP_KEY=base64:abc=def==", "base64:abc=def=="),
    ("DB_PASSWORD", "DB_PASSWORD='s3cr#t \"x\"'", "s3cr#t \"x\""),
    ("APP_DEBUG", "APP_DEBUG=false # comment", "false"),
    (
        "MULTI",
        "MULTI=\"line one\nline \\\"two\\\"\"",
        "line one\nline \"two\"",
    ),
    ("EMPTY", "export EMPTY=", ""),
];

impl Made {
    fn new(prefix: &str, index: usize) -> Made {
        let name = format!("{prefix}-{index}");
        let user = format!("{}_{index}", prefix.replace('-', "_"));
        let domain = format!("s{index}.{prefix}.test");
        let engine = if index % 5 == 4 {
            "postgres"
        } else {
            "mariadb"
        };
        Made {
            vhost: format!("server {{ listen 80; server_name {domain}; }}\n"),
            pool: format!(
                "[{name}]\nuser = {user}\nlisten = /run/php/siteward-{name}.sock\npm = ondemand\npm.max_children = 2\n"
            ),
            cron: format!("# siteward cron of {name}\n"),
            program: format!(
                "[program:siteward-{name}-worker]\ncommand=sleep 100000\nuser={user}\nstartsecs=0\nautostart={}\n",
                index % 3 != 2
            ),
            worker_running: index % 3 != 2,
            in_place: index == 9,
            database: user.clone(),
            env: ENV.iter().map(|(key, _, value)| (*key, *value)).collect(),
            name,
            user,
            domain,
            engine,
        }
    }

    fn root(&self) -> String {
        format!("/home/{}/{}", self.user, self.domain)
    }

    fn probe(&self) -> SiteProbe {
        SiteProbe {
            name: self.name.clone(),
            user: self.user.clone(),
            domain: self.domain.clone(),
            php: Some("8.2".into()),
            database: Some((self.engine.into(), self.database.clone())),
            database_users: vec![self.user.clone()],
            storage: vec!["storage/app/public".into()],
            source: None,
            health: None,
            adopted: Vec::new(),
        }
    }

    /// Bash that (re)creates the site idempotently.
    fn script(&self, git_url: &str) -> String {
        let (name, user, root) = (&self.name, &self.user, self.root());
        let env: String = ENV.iter().map(|(_, line, _)| format!("{line}\n")).collect();
        let code = if self.in_place {
            format!(
                "[ -d {root}/.git ] || {{ rm -rf {root}; runuser -u {user} -- git clone -q {git_url} {root}; }}\n\
                 printf '%s' {env} > {root}/.env\n",
                env = support::shell_quote(&env)
            )
        } else {
            format!(
                "mkdir -p {root} {root}/releases/1 {root}/releases/2 {root}/shared/storage/app/public\n\
                 echo 1111111111111111111111111111111111111111 > {root}/releases/1/.siteward-revision\n\
                 echo 2222222222222222222222222222222222222222 > {root}/releases/2/.siteward-revision\n\
                 touch {root}/releases/1/.siteward-bad\n\
                 ln -sfn releases/2 {root}/current\n\
                 printf '%s' {env} > {root}/shared/.env\n",
                env = support::shell_quote(&env)
            )
        };
        let files = [
            (
                format!("/etc/nginx/conf.d/siteward-{name}.conf"),
                &self.vhost,
            ),
            (
                format!("/etc/php/8.2/fpm/pool.d/siteward-{name}.conf"),
                &self.pool,
            ),
            (format!("/etc/cron.d/siteward-{name}"), &self.cron),
            (
                format!("/etc/supervisor/conf.d/siteward-{name}-worker.conf"),
                &self.program,
            ),
        ];
        let files: String = files
            .iter()
            .map(|(path, content)| {
                format!("printf '%s' {} > {path}\n", support::shell_quote(content))
            })
            .collect();
        format!(
            "set -e\nid -u {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}\n\
             {code}chmod 750 {root}\nchown -R {user}:{user} /home/{user}\n{files}\
             mkdir -p /var/lib/siteward/sites/{name}\n\
             printf 'user={user}\\ndomain={domain}\\nphp=8.2\\nspecHash=hash-{name}\\nrelease=2\\n' > /var/lib/siteward/sites/{name}/facts\n\
             printf 'migration started\\ncopied database\\n' > /var/lib/siteward/sites/{name}/journal\n\
             printf '# m h dom mon dow command\\n*/5 * * * * true\\n@daily true\\n' | crontab -u {user} -\n",
            domain = self.domain
        )
    }

    fn database_sql(&self) -> String {
        let (db, user) = (&self.database, &self.user);
        format!(
            "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
             CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY 'pw-{user}';\n\
             GRANT SELECT, INSERT, UPDATE ON {db}.* TO '{user}'@'localhost';\n\
             CREATE TABLE IF NOT EXISTS {db}.t (id INT PRIMARY KEY);\n"
        )
    }

    fn postgres_sql(&self) -> String {
        let (db, user) = (&self.database, &self.user);
        format!(
            "SELECT 'CREATE ROLE {user} LOGIN PASSWORD ''pw-{user}''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}')\\gexec\n\
             SELECT 'CREATE DATABASE {db} OWNER {user} ENCODING ''UTF8'' LC_COLLATE ''C.UTF-8'' LC_CTYPE ''C.UTF-8'' TEMPLATE template0' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}')\\gexec\n"
        )
    }
}

/// Makes the sites on `host`, databases in one batch per engine, supervisor updated once.
fn make_sites(host: &Host, sites: &[Made]) -> Result<()> {
    let script: String = sites
        .iter()
        .map(|site| site.script(&host.git_url))
        .collect();
    host.exec(&script).context("making the sites")?;
    let mysql: String = sites
        .iter()
        .filter(|s| s.engine == "mariadb")
        .map(Made::database_sql)
        .collect();
    host.mysql(&mysql)?;
    let postgres: String = sites
        .iter()
        .filter(|s| s.engine == "postgres")
        .map(Made::postgres_sql)
        .collect();
    host.psql(&postgres)?;
    let states: String = sites
        .iter()
        .map(|site| {
            let verb = if site.worker_running { "start" } else { "stop" };
            format!(
                "supervisorctl {verb} siteward-{}-worker >/dev/null 2>&1 || true\n",
                site.name
            )
        })
        .collect();
    host.exec(&format!("supervisorctl update >/dev/null\n{states}"))?;
    Ok(())
}

/// Connects, observes once, and checks that the observation took exactly one exec.
fn observe_once(server: &Server, request: &ProbeRequest) -> Result<ObservedServer> {
    runtime().block_on(async {
        let session = SshSession::connect(&target(server, false)).await?;
        assert_eq!(session.exec_count(), 0);
        let observed = observe(server, &session, request, &ResolvedSecrets::default()).await;
        assert_eq!(session.exec_count(), 1, "one exec per observation");
        session.close().await;
        Ok(observed?)
    })
}

#[test]
fn observing_ten_sites_sees_what_was_made_by_hand_in_one_exec() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let sites: Vec<Made> = (0..10).map(|index| Made::new("obs10", index)).collect();
    make_sites(&host, &sites)?;
    host.exec(
        "printf 'owner=ci\\nmachine=runner-1\\npid=4242\\nacquired=1700000000\\nexpires=1700000600\\n' \
         > /var/lib/siteward/sites/obs10-0/lock",
    )?;
    let mut request = ProbeRequest {
        sites: sites.iter().map(Made::probe).collect(),
        redis: None,
        only_requested: false,
    };
    request.sites[0].source = Some((host.git_url.clone(), "main".into()));
    request.sites[1].source = Some((host.git_url.clone(), "v1".into()));
    let observed = observe_once(
        &server("t-observe-a", &host, serde_json::json!({})),
        &request,
    )?;
    let tip = |reference: &str| -> Result<String> {
        let listing = host.exec(&format!("git ls-remote {} {reference}", host.git_url))?;
        Ok(listing
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned())
    };
    assert_eq!(
        observed.sites["obs10-0"].source_tip,
        Some(tip("refs/heads/main")?)
    );
    let v1 = host.exec(&format!("git ls-remote {} 'refs/tags/v1*'", host.git_url))?;
    let v1_commit = v1
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default();
    assert_eq!(
        observed.sites["obs10-1"].source_tip.as_deref(),
        Some(v1_commit)
    );
    assert_eq!(observed.hostname, "t-observe-a");
    assert!(
        observed
            .php
            .iter()
            .any(|php| php.version == "8.2" && php.fpm_running)
    );
    for service in [
        "nginx",
        "mysql",
        "postgresql",
        "redis",
        "supervisor",
        "cron",
        "sshd",
    ] {
        let state = observed.services.get(service).copied().unwrap_or_default();
        assert!(state.installed && state.running, "{service}: {state:?}");
    }
    assert!(
        observed
            .disks
            .iter()
            .any(|disk| disk.path == "/home" && disk.available_bytes > 0)
    );
    for site in &sites {
        check_site(&observed, site);
    }
    let lock = observed.sites["obs10-0"]
        .record
        .as_ref()
        .unwrap()
        .lock
        .clone()
        .unwrap();
    assert_eq!(
        (lock.owner.as_str(), lock.pid, lock.expires_unix),
        ("ci", 4242, 1_700_000_600)
    );
    let json = serde_json::to_string(&observed)?;
    for value in ["My Shop", "base64:abc", "s3cr#t", "line one"] {
        assert!(!json.contains(value), "an .env value leaked: {value}");
    }
    assert!(!json.contains("pw-obs10"), "a password leaked");
    Ok(())
}

#[test]
fn a_file_rewritten_while_observed_spoils_its_own_content_only() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let sites: Vec<Made> = (0..3).map(|index| Made::new("obschurn", index)).collect();
    make_sites(&host, &sites)?;
    // The first site's cron file is rewritten without pause, at a new length each time: an
    // editor or an apply at work. Its content comes before the other files' in the probe.
    let churning = "/etc/cron.d/siteward-obschurn-0";
    host.exec(&format!(
        "sh -c 'while :; do printf \"# %0*d\\n\" $(($(date +%N) % 3000)) 0 > {churning}; done' \
         >/dev/null 2>&1 </dev/null & echo $! > /tmp/obschurn.pid"
    ))?;
    let result = (|| -> Result<()> {
        let request = ProbeRequest {
            sites: sites.iter().map(Made::probe).collect(),
            redis: None,
            only_requested: false,
        };
        let server = server("t-observe-a", &host, serde_json::json!({}));
        for _ in 0..5 {
            let observed = observe_once(&server, &request)?;
            for site in &sites[1..] {
                check_site(&observed, site);
            }
            let first = &observed.sites["obschurn-0"].files;
            let vhost = "/etc/nginx/conf.d/siteward-obschurn-0.conf";
            assert_eq!(
                first[vhost].content.as_deref(),
                Some(sites[0].vhost.as_str())
            );
            for problem in &observed.problems {
                assert!(
                    problem.topic != "files" || problem.message.contains(churning),
                    "{problem:?}"
                );
            }
        }
        Ok(())
    })();
    host.exec("kill $(cat /tmp/obschurn.pid); rm -f /tmp/obschurn.pid")?;
    result
}

fn check_site(observed: &ObservedServer, made: &Made) {
    let site = &observed.sites[&made.name];
    let name = &made.name;
    let user = site
        .user
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no user"));
    assert_eq!(user.home, format!("/home/{}", made.user));
    let root = &site.paths[&made.root()];
    assert_eq!(
        (root.kind, root.owner.as_str(), root.mode),
        (PathKind::Directory, made.user.as_str(), 0o750)
    );
    let env = site
        .env
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no .env"));
    let expected: BTreeMap<String, String> = made
        .env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), sha256(value)))
        .collect();
    assert_eq!(env, &expected, "{name}: .env hashes");
    for (path, content) in [
        (
            format!("/etc/nginx/conf.d/siteward-{name}.conf"),
            &made.vhost,
        ),
        (
            format!("/etc/php/8.2/fpm/pool.d/siteward-{name}.conf"),
            &made.pool,
        ),
        (format!("/etc/cron.d/siteward-{name}"), &made.cron),
        (
            format!("/etc/supervisor/conf.d/siteward-{name}-worker.conf"),
            &made.program,
        ),
    ] {
        let file = site
            .files
            .get(&path)
            .unwrap_or_else(|| panic!("{name}: no {path}"));
        assert_eq!(file.sha256, sha256(content), "{path}");
        assert_eq!(file.content.as_deref(), Some(content.as_str()), "{path}");
        assert_eq!((file.owner.as_str(), file.mode), ("root", 0o644), "{path}");
    }
    let db = site
        .database
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no database"));
    let grants = &site.database_users[&made.user];
    if made.engine == "postgres" {
        assert_eq!(
            (db.charset.as_str(), db.collation.as_str()),
            ("UTF8", "C.UTF-8")
        );
        assert_eq!(
            grants.privileges,
            vec!["CONNECT", "CREATE", "OWNER", "TEMPORARY"]
        );
        assert!(
            grants
                .password_verifier
                .as_deref()
                .unwrap()
                .starts_with("SCRAM-SHA-256$")
        );
    } else {
        assert_eq!(
            (db.charset.as_str(), db.collation.as_str()),
            ("utf8mb4", "utf8mb4_unicode_ci")
        );
        assert_eq!(grants.privileges, vec!["INSERT", "SELECT", "UPDATE"]);
        assert!(
            grants
                .password_verifier
                .as_deref()
                .unwrap()
                .starts_with('*')
        );
    }
    let state = if made.worker_running {
        "RUNNING"
    } else {
        "STOPPED"
    };
    let program = format!("siteward-{name}-worker");
    assert_eq!(site.processes.len(), 1, "{name}: {:?}", site.processes);
    assert_eq!(
        (
            site.processes[0].program.as_str(),
            site.processes[0].state.as_str()
        ),
        (program.as_str(), state)
    );
    let record = site
        .record
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no record"));
    assert_eq!(record.facts["specHash"], format!("hash-{name}"));
    assert_eq!(record.journal, vec!["migration started", "copied database"]);
    assert_eq!(site.user_crontab_lines, 2);
    if made.in_place {
        let git = site
            .git
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no git state"));
        assert_eq!(git.branch.as_deref(), Some("main"));
        assert!(git.remote.as_deref().unwrap().ends_with("app.git"));
        assert!(site.releases.is_empty());
    } else {
        let releases: Vec<(&str, Option<&str>, bool)> = site
            .releases
            .iter()
            .map(|r| (r.id.as_str(), r.commit.as_deref(), r.bad))
            .collect();
        let (one, two) = ("1".repeat(40), "2".repeat(40));
        assert_eq!(
            releases,
            vec![
                ("1", Some(one.as_str()), true),
                ("2", Some(two.as_str()), false)
            ]
        );
        assert_eq!(site.current_release.as_deref(), Some("2"));
        assert_eq!(
            site.git.as_ref().map(|git| git.commit.as_str()),
            Some(two.as_str())
        );
        let storage = &site.paths[&format!("{}/shared/storage/app/public", made.root())];
        assert_eq!(storage.kind, PathKind::Directory);
    }
}

#[test]
fn recorded_sites_absent_from_the_request_are_observed_from_their_facts() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let sites = vec![Made::new("obsrec", 1)];
    make_sites(&host, &sites)?;
    let observed = observe_once(
        &server("t-observe-a", &host, serde_json::json!({})),
        &ProbeRequest::default(),
    )?;
    assert!(observed.recorded_sites.contains(&"obsrec-1".to_owned()));
    let site = &observed.sites["obsrec-1"];
    assert!(site.paths.contains_key(&sites[0].root()));
    assert!(
        site.files
            .contains_key("/etc/nginx/conf.d/siteward-obsrec-1.conf")
    );
    assert_eq!(site.current_release.as_deref(), Some("2"));
    Ok(())
}

#[test]
fn a_probe_for_one_site_examines_it_and_only_lists_the_others() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let sites = vec![Made::new("obsonly", 0), Made::new("obsonly", 1)];
    make_sites(&host, &sites)?;
    let server = server("t-observe-a", &host, serde_json::json!({}));
    let request = ProbeRequest {
        sites: vec![sites[0].probe()],
        redis: None,
        only_requested: true,
    };
    let observed = observe_once(&server, &request)?;
    let asked = &observed.sites["obsonly-0"];
    assert!(asked.paths.contains_key(&sites[0].root()));
    assert!(
        asked
            .files
            .contains_key("/etc/nginx/conf.d/siteward-obsonly-0.conf")
    );
    assert!(observed.recorded_sites.contains(&"obsonly-1".to_owned()));
    let other = observed.sites.get("obsonly-1");
    assert!(
        other.is_none_or(|site| site.paths.is_empty() && site.files.is_empty()),
        "the other site was examined: {other:?}"
    );
    let whole = observe_once(
        &server,
        &ProbeRequest {
            only_requested: false,
            ..request
        },
    )?;
    assert!(
        whole.sites["obsonly-1"]
            .paths
            .contains_key(&sites[1].root())
    );
    Ok(())
}

/// Values that would run `touch` if any shell evaluated them.
fn injection_corpus(marker: &str) -> Vec<String> {
    vec![
        format!("x'; touch {marker} #"),
        format!("$(touch {marker})"),
        format!("`touch {marker}`"),
        format!("a\ntouch {marker}\n"),
        format!("-oProxyCommand=touch {marker}"),
        format!("\"; touch {marker}; \""),
        format!("a,$(touch {marker}),b"),
    ]
}

#[test]
fn facts_from_the_injection_corpus_never_execute_on_the_server() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let marker = "/tmp/siteward-observe-pwned";
    host.exec(&format!("rm -f {marker}"))?;
    let corpus = injection_corpus(marker);
    let sites: Vec<SiteProbe> = corpus
        .iter()
        .map(|nasty| SiteProbe {
            name: nasty.clone(),
            user: nasty.clone(),
            domain: nasty.clone(),
            php: Some(nasty.clone()),
            database: Some((nasty.clone(), nasty.clone())),
            database_users: vec![nasty.clone()],
            storage: vec![nasty.clone()],
            source: Some((nasty.clone(), nasty.clone())),
            health: Some(siteward::observe::HealthProbe {
                path: format!("/{nasty}"),
                expect_status: 200,
                expect_body: Some(nasty.clone()),
                timeout_seconds: 2,
                https: false,
            }),
            adopted: vec![nasty.clone(), format!("/etc/nginx/{nasty}")],
        })
        .collect();
    let mut request = ProbeRequest {
        sites,
        redis: None,
        only_requested: false,
    };
    for (field, nasty) in corpus.iter().enumerate() {
        let mut site = Made::new("obsinj", field).probe();
        match field % 4 {
            0 => site.domain = nasty.clone(),
            1 => site.storage = vec![nasty.clone()],
            2 => site.database = Some(("mariadb".into(), nasty.clone())),
            _ => site.source = Some((nasty.clone(), nasty.clone())),
        }
        request.sites.push(site);
    }
    let mut access = ProbeAccess::default();
    access.mysql.password = Some(siteward::spec::secret::Secret::new(format!(
        "'; touch {marker}; '"
    )));
    access.postgres.password = Some(siteward::spec::secret::Secret::new(format!(
        "$(touch {marker})"
    )));
    let script = probe::render(&request, &access)?;
    let server = server("t-observe-a", &host, serde_json::json!({}));
    let output = runtime().block_on(async {
        let session = SshSession::connect(&target(&server, false)).await?;
        let output = session
            .exec(&probe::probe_command()?, Stdin::Bytes(script.as_bytes()))
            .await?;
        anyhow::Ok(output)
    })?;
    let observed = probe::parse(&output.stdout, &request)
        .with_context(|| format!("stderr: {}", output.stderr_lossy()))?;
    assert!(!host.exists(marker)?, "a fact was executed");
    let refused = observed
        .problems
        .iter()
        .filter(|p| p.topic == "site")
        .count();
    assert!(refused >= corpus.len(), "{:?}", observed.problems);
    Ok(())
}

#[test]
fn a_malformed_answer_is_rejected_naming_the_line_and_the_fault() {
    let request = ProbeRequest::default();
    let answer = b"siteward-probe\t1\nhost\tdGVzdA==\nphp\t8.2\tmaybe\nend\t3\n";
    let error = probe::parse(answer, &request).unwrap_err();
    assert!(
        matches!(error, ProbeError::Malformed { line: 3, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "line 3 of the probe's answer is malformed: field 1 is not base64: Invalid symbol 46, offset 1."
    );
    let truncated = probe::parse(b"siteward-probe\t1\nhost\tdGVzdA==\n", &request).unwrap_err();
    assert_eq!(
        truncated.to_string(),
        "the probe's answer is truncated: 2 lines and no `end` record"
    );
}

/// Has `t-observe-b` to itself: no other probe runs there while it looks for leftovers.
#[test]
fn a_mysql_admin_password_reaches_the_client_through_a_defaults_file() -> Result<()> {
    let host = Fleet::host("t-observe-b")?;
    let password = "p'a\"s s#w\\rd";
    host.mysql(&format!(
        "CREATE USER IF NOT EXISTS 'obsadmin'@'localhost' IDENTIFIED BY {quoted};\n\
         ALTER USER 'obsadmin'@'localhost' IDENTIFIED BY {quoted};\n\
         GRANT ALL ON *.* TO 'obsadmin'@'localhost';\n\
         CREATE DATABASE IF NOT EXISTS obsadmin_db;",
        quoted = format!("'{}'", password.replace('\\', "\\\\").replace('\'', "\\'"))
    ))?;
    let secret_file = tempfile::NamedTempFile::new()?;
    std::fs::write(secret_file.path(), password)?;
    let reference = format!("file:{}", secret_file.path().display());
    let server = server(
        "t-observe-b",
        &host,
        serde_json::json!({"mysql": {"adminUser": "obsadmin", "adminPassword": {"secret": reference}}}),
    );
    let mut site = Made::new("obsadm", 0).probe();
    site.database = Some(("mariadb".into(), "obsadmin_db".into()));
    let request = ProbeRequest {
        sites: vec![site],
        redis: None,
        only_requested: false,
    };
    let reference = server
        .spec
        .mysql
        .as_ref()
        .unwrap()
        .admin_password
        .clone()
        .unwrap();
    let secrets = ResolvedSecrets::resolve([&reference]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let observed = runtime().block_on(async {
        let session = SshSession::connect(&target(&server, false)).await?;
        anyhow::Ok(observe(&server, &session, &request, &secrets).await?)
    })?;
    assert!(
        observed.problems.iter().all(|p| p.topic != "mysql"),
        "{:?}",
        observed.problems
    );
    assert_eq!(
        observed.sites["obsadm-0"].database.as_ref().unwrap().name,
        "obsadmin_db"
    );
    let leftovers = host.exec("ls /dev/shm /tmp | grep -c siteward-probe || true")?;
    assert_eq!(leftovers.trim(), "0", "the probe left its temporary files");
    Ok(())
}

#[test]
fn siteward_observe_prints_every_server_and_site() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    make_sites(&host, &[Made::new("obscli", 0)])?;
    let workspace = Workspace::with_servers(&[("web-1", &host)])?;
    workspace.write_spec(
        "sites/obscli.yaml",
        "apiVersion: siteward.dev/v1\nkind: Site\nmetadata:\n  name: obscli-0\nspec:\n  server: web-1\n  \
         type: laravel\n  domain: s0.obscli.test\n  user: obscli_0\n  php: \"8.2\"\n",
    )?;
    let text = workspace.siteward(&["observe"])?;
    text.assert_success();
    assert!(
        text.stdout.contains("server web-1 (") && text.stdout.contains("1 round trip"),
        "{text}"
    );
    assert!(text.stdout.contains("site obscli-0"), "{text}");
    let json = workspace.siteward(&["observe", "--format", "json"])?;
    json.assert_success();
    let parsed: BTreeMap<String, ObservedServer> = serde_json::from_str(&json.stdout)?;
    assert!(parsed["web-1"].sites.contains_key("obscli-0"));
    let request = probe_request(
        &siteward::spec::load_and_check(&[workspace.specs_dir()]),
        "web-1",
    );
    assert_eq!(request.sites.len(), 1);
    Ok(())
}

#[test]
fn an_unreachable_server_is_named_with_a_hint() -> Result<()> {
    let host = Fleet::host("t-observe-a")?;
    let workspace = Workspace::new()?;
    let spec =
        support::server_spec("web-down", &host).replace(&format!("port: {}", host.port), "port: 1");
    workspace.write_spec("servers/down.yaml", &spec)?;
    let run = workspace.siteward(&["observe"])?;
    run.assert_code(1);
    assert!(
        run.stderr.contains("failed to observe server `web-down`"),
        "{run}"
    );
    assert!(run.stderr.contains("hint: check `address:"), "{run}");
    Ok(())
}
