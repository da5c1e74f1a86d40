//! A site moving between two fleet hosts, for the migration tests: its workspace and spec, the
//! data seeded on the source, digests to compare both ends, and the jobs' traces.

use anyhow::{Context, Result, ensure};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::site::clean_site;
use super::{CommandOutput, Fleet, Host, Workspace, server_spec};

/// A site moving from server `a` to server `b`.
pub struct Move {
    pub workspace: Workspace,
    pub a: Host,
    pub b: Host,
    pub name: String,
    pub engine: &'static str,
    pub env: Vec<(String, String)>,
}

impl Move {
    pub fn new(a: &str, b: &str, name: &str, engine: &'static str) -> Result<Move> {
        Self::with_servers(a, b, name, engine, "")
    }

    pub fn with_servers(
        a: &str,
        b: &str,
        name: &str,
        engine: &'static str,
        server_extra: &'static str,
    ) -> Result<Move> {
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| Fleet::up(a));
            let b = scope.spawn(|| Fleet::up(b));
            (a.join().expect("fleet up"), b.join().expect("fleet up"))
        });
        let (a, b) = (a?, b?);
        clean_site(&a, name)?;
        clean_site(&b, name)?;
        let workspace = Workspace::new()?;
        for (server, host) in [("a", &a), ("b", &b)] {
            workspace.write_spec(
                &format!("servers/{server}.yaml"),
                &format!("{}{server_extra}", server_spec(server, host)),
            )?;
        }
        let upper = name.to_uppercase().replace('-', "_");
        let env = vec![
            (
                format!("{upper}_APP_KEY"),
                "base64:dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleTA=".to_owned(),
            ),
            (format!("{upper}_DB_PASSWORD"), format!("{name}-db-pass")),
        ];
        Ok(Move {
            workspace,
            a,
            b,
            name: name.to_owned(),
            engine,
            env,
        })
    }

    /// Server `server` (`a` or `b`) reached as `user` from now on: its spec is rewritten.
    pub fn log_in_as(&mut self, server: &str, user: &str) -> Result<()> {
        let host = match server {
            "a" => &mut self.a,
            _ => &mut self.b,
        };
        *host = host.logged_in_as(user);
        self.workspace
            .write_spec(
                &format!("servers/{server}.yaml"),
                &server_spec(server, host),
            )
            .map(drop)
    }

    pub fn user(&self) -> String {
        self.name.replace('-', "_")
    }

    pub fn root(&self) -> String {
        format!("/home/{}/{}.test", self.user(), self.name)
    }

    pub fn domain(&self) -> String {
        format!("{}.test", self.name)
    }

    /// Writes the site's spec, placed on `server`.
    pub fn place(&self, server: &str, mode: &str, on_source: &str) -> Result<()> {
        let (connection, port) = if self.engine == "postgres" {
            ("pgsql", 5432)
        } else {
            ("mysql", 3306)
        };
        let name = &self.name;
        let upper = name.to_uppercase().replace('-', "_");
        let spec = format!(
            r#"apiVersion: siteward.dev/v1
kind: Site
metadata:
  name: {name}
spec:
  server: {server}
  type: laravel
  domain: {name}.test
  user: {db}
  php: "8.2"
  webDirectory: public
  source:
    repository: git://10.77.0.1/app.git
    branch: main
  deploy:
    script: |
      php artisan migrate --force
  env:
    APP_NAME: {name}
    APP_ENV: production
    APP_KEY: {{secret: env:{upper}_APP_KEY}}
    DB_CONNECTION: {connection}
    DB_HOST: localhost
    DB_PORT: {port}
    DB_DATABASE: {db}
    DB_USERNAME: {db}
    DB_PASSWORD: {{secret: env:{upper}_DB_PASSWORD}}
    REDIS_HOST: 127.0.0.1
    REDIS_PREFIX: {db}_
  database:
    engine: {engine}
    name: {db}
    users:
      - name: {db}
        password: {{secret: env:{upper}_DB_PASSWORD}}
  redis:
    required: true
  workers:
    - name: queue
      command: php artisan queue:work
  storage:
    - storage/app/public
    - storage/app/private
  health:
    path: /up
    expectBody: OK
  migration:
    mode: {mode}
    onSource: {on_source}
"#,
            db = self.user(),
            engine = self.engine,
        );
        self.workspace.write_spec("sites/site.yaml", &spec)?;
        Ok(())
    }

    pub fn siteward(&self, args: &[&str]) -> Result<CommandOutput> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.workspace.siteward_with_env(args, &env)
    }

    pub fn apply(&self) -> Result<CommandOutput> {
        self.siteward(&["apply", "--auto-approve"])
    }

    /// `siteward apply` started in the background (for killing it or cutting its network).
    pub fn spawn_apply(&self) -> Result<Child> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_siteward"));
        command
            .args(["apply", "--auto-approve"])
            .current_dir(self.workspace.root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.spawn().context("failed to start siteward")
    }

    /// The last migration report, as `siteward report` prints it in JSON.
    pub fn report(&self) -> Result<serde_json::Value> {
        let out = self.siteward(&["report", &self.name, "--format", "json"])?;
        out.assert_success();
        serde_json::from_str(&out.stdout).context("report JSON")
    }

    /// The plan's exit code with `--detailed-exitcode` (0: nothing to do, 2: changes).
    pub fn plan_code(&self) -> Result<i32> {
        let out = self.siteward(&["plan", "--detailed-exitcode"])?;
        out.code().context("plan was killed")
    }

    /// SQL as the administrator in the site's database, on `host`.
    pub fn sql(&self, host: &Host, sql: &str) -> Result<String> {
        if self.engine == "postgres" {
            host.psql(&format!("\\c {}\n{sql}", self.user()))
        } else {
            host.mysql(&format!("USE {};\n{sql}", self.user()))
        }
    }

    pub fn journal(&self, host: &Host) -> Result<String> {
        host.exec(&format!(
            "cat /var/lib/siteward/sites/{}/journal 2>/dev/null; true",
            self.name
        ))
    }
}

// --- data ---------------------------------------------------------------------------------------

/// Tables with utf8mb4 text and blobs, a trigger, a view and a routine, in the site's database.
pub fn seed_database(site: &Move) -> Result<()> {
    let sql = if site.engine == "postgres" {
        "CREATE TABLE memos (id serial PRIMARY KEY, body text NOT NULL, photo bytea);
CREATE TABLE memo_audit (id serial PRIMARY KEY, memo_id int);
CREATE FUNCTION audit_memo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO memo_audit (memo_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER memo_audit AFTER INSERT ON memos FOR EACH ROW EXECUTE FUNCTION audit_memo();
CREATE VIEW long_memos AS SELECT id, body FROM memos WHERE length(body) > 10;
INSERT INTO memos (body, photo) VALUES ('Café ☕ 🚀 ✓ naïve', '\\x00ff10275c0a0d22');
INSERT INTO memos (body, photo) SELECT 'note ' || n || ' 🧪', sha256(n::text::bytea) FROM generate_series(1, 3000) n;
GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC;"
            .to_owned()
    } else {
        "SET NAMES utf8mb4;
CREATE TABLE memos (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(200) NOT NULL, photo BLOB)
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE memo_audit (id INT AUTO_INCREMENT PRIMARY KEY, memo_id INT) ENGINE=InnoDB;
CREATE TRIGGER memo_audit AFTER INSERT ON memos FOR EACH ROW INSERT INTO memo_audit (memo_id) VALUES (NEW.id);
CREATE VIEW long_memos AS SELECT id, body FROM memos WHERE CHAR_LENGTH(body) > 10;
CREATE FUNCTION shout(t VARCHAR(200)) RETURNS VARCHAR(200) DETERMINISTIC RETURN UPPER(t);
CREATE EVENT memo_purge ON SCHEDULE EVERY 1 DAY DO DELETE FROM memo_audit WHERE id < 0;
INSERT INTO memos (body, photo) VALUES ('Café ☕ 🚀 ✓ naïve', UNHEX('00FF10275C0A0D22'));
SET SESSION max_recursive_iterations = 100000;
INSERT INTO memos (body, photo)
  WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3000)
  SELECT CONCAT('note ', n, ' 🧪'), UNHEX(SHA2(n, 256)) FROM seq;"
            .to_owned()
    };
    site.sql(&site.a, &sql).map(drop)
}

/// What the seeded tables hold, and that their schema objects exist.
pub fn database_digest(site: &Move, host: &Host) -> Result<String> {
    let sql = if site.engine == "postgres" {
        "SELECT count(*), md5(string_agg(id || ':' || body || ':' || encode(photo, 'hex'), ',' ORDER BY id)) FROM memos;
SELECT count(*) FROM memo_audit;
SELECT body FROM memos WHERE id = 1;
SELECT count(*) FROM long_memos;
SELECT tgname FROM pg_trigger WHERE tgname = 'memo_audit';"
    } else {
        "SET NAMES utf8mb4;
SELECT COUNT(*), MD5(GROUP_CONCAT(id, ':', body, ':', HEX(photo) ORDER BY id SEPARATOR ',')) FROM memos;
SELECT COUNT(*) FROM memo_audit;
SELECT body FROM memos WHERE id = 1;
SELECT COUNT(*) FROM long_memos;
SELECT shout('ok');
SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'memo_audit' AND TRIGGER_SCHEMA = DATABASE();"
    };
    let sql = if site.engine == "postgres" {
        sql.to_owned()
    } else {
        format!("SET SESSION group_concat_max_len = 100000000;\n{sql}")
    };
    site.sql(host, &sql)
}

/// Many small files, a large one, odd names and a symlink in the site's storage on `a`.
pub fn seed_storage(site: &Move, large_mb: u32) -> Result<()> {
    let script = format!(
        r#"set -eu
d={root}/shared/storage/app/public/media
mkdir -p "$d/many" {root}/shared/storage/app/private
for i in $(seq 1 800); do echo "file $i" > "$d/many/f$i.txt"; done
head -c {large_mb}M /dev/urandom > "$d/large.bin"
echo space > "$d/with space.txt"
echo newline > "$d/$(printf 'new\nline.txt')"
echo latin1 > "$d/$(printf 'caf\351.txt')"
ln -sfn large.bin "$d/link-to-large"
echo secret-invoice > {root}/shared/storage/app/private/invoice.pdf
chmod 0600 {root}/shared/storage/app/private/invoice.pdf
chown -R -h {user}: {root}/shared/storage"#,
        root = site.root(),
        user = site.user(),
    );
    site.a.exec(&script).map(drop)
}

/// Every storage entry with type, mode, size, link target and content hash (NUL-safe).
pub fn storage_digest(site: &Move, host: &Host) -> Result<String> {
    host.exec(&format!(
        "cd {}/shared && find storage/app -printf '%y %m %u %p -> %l\\n' | LC_ALL=C sort | sha256sum; \
         find storage/app -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum; \
         find storage/app -type f | wc -l",
        site.root()
    ))
}

/// The state of the seeded MariaDB event on `host` (`ENABLED`, `DISABLED`).
pub fn event_status(site: &Move, host: &Host) -> Result<String> {
    site.sql(
        host,
        "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_NAME = 'memo_purge';",
    )
}

pub fn hostname(host: &Host) -> Result<String> {
    Ok(host.exec("hostname")?.trim().to_owned())
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn cron_live(site: &Move, host: &Host) -> Result<bool> {
    host.exists(&format!("/etc/cron.d/siteward-{}", site.name))
}

pub fn worker_running(site: &Move, host: &Host) -> Result<bool> {
    let status = host.exec(&format!(
        "supervisorctl status 'siteward-{}-queue:*' 2>&1; true",
        site.name
    ))?;
    Ok(status.contains("RUNNING"))
}

/// Pushes a queue job on `host` (into that host's Redis), as the site's user.
pub fn push_job(site: &Move, host: &Host, id: &str) -> Result<()> {
    host.exec(&format!(
        "cd {}/current && runuser -u {} -- php artisan queue:push {id}",
        site.root(),
        site.user()
    ))
    .map(drop)
}

pub fn job_hosts(site: &Move, host: &Host, id: &str) -> Result<Vec<String>> {
    let rows = site.sql(
        host,
        &format!("SELECT host FROM jobs_done WHERE job_id = '{id}';"),
    )?;
    Ok(rows.lines().map(str::to_owned).collect())
}

/// Each scheduler run on `host`'s database: (host, unix time).
pub fn schedule_runs(site: &Move, host: &Host) -> Result<Vec<(String, u64)>> {
    let sql = if site.engine == "postgres" {
        "SELECT host || ' ' || extract(epoch FROM ran_at)::bigint FROM schedule_runs ORDER BY id;"
    } else {
        "SELECT CONCAT(host, ' ', UNIX_TIMESTAMP(ran_at)) FROM schedule_runs ORDER BY id;"
    };
    site.sql(host, sql)?
        .lines()
        .map(|line| {
            let (host, at) = line.rsplit_once(' ').context("schedule row")?;
            Ok((host.to_owned(), at.parse()?))
        })
        .collect()
}

/// A migration whose report passed every check.
pub fn assert_report(site: &Move, ready: bool) -> Result<serde_json::Value> {
    let report = site.report()?;
    ensure!(report["ok"] == true, "report: {report:#}");
    ensure!(report["readyForCutover"] == ready, "report: {report:#}");
    let checks = report["checks"].as_array().context("checks")?;
    ensure!(!checks.is_empty(), "no checks: {report:#}");
    ensure!(
        checks.iter().all(|c| c["ok"] == true),
        "a check failed: {report:#}"
    );
    Ok(report)
}
