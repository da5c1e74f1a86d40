//! The state store on SQLite and on PostgreSQL (a throwaway server this test starts on the
//! machine): migrations, runs, site runs, conditions, history.

use anyhow::{Context, Result};
use siteward::store::{Condition, NewRun, NewSiteRun, StateStore};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server in a temporary directory, listening on a Unix socket only.
struct ThrowawayPostgres {
    dir: PathBuf,
    bin: PathBuf,
}

impl ThrowawayPostgres {
    fn start() -> Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .context("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let dir = PathBuf::from(format!("/tmp/siteward-store-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        run(Command::new("chown").args(["postgres:postgres", &dir.display().to_string()]))?;
        let data = dir.join("data").display().to_string();
        as_postgres(
            &bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        let options = format!("-c listen_addresses='' -k {} -c fsync=off", dir.display());
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &format!("{}/log", dir.display()),
                "-w",
                "start",
            ],
        )?;
        Ok(ThrowawayPostgres { dir, bin })
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.dir.display()
        )
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &Path, args: &[&str]) -> Result<()> {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args);
    run(&mut command)
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

async fn exercise(store: &StateStore) -> Result<()> {
    let run_id = store
        .record_run(&NewRun {
            kind: "apply",
            spec_hash: "abc",
            observed_fingerprint: "def",
            outcome: "applied",
            summary: "Plan: 1 to create",
            plan_json: "{}",
        })
        .await?;
    for (site, ok) in [("shop", true), ("blog", false)] {
        store
            .record_site_run(
                run_id,
                &NewSiteRun {
                    site,
                    server: "web-1",
                    ok,
                    millis: 42,
                    error: (!ok).then_some("boom"),
                    steps_json: "[]",
                    migration_json: ok.then_some(r#"{"site":"shop"}"#),
                },
            )
            .await?;
    }
    let mut condition = Condition {
        site: "shop".into(),
        server: "web-1".into(),
        ready: false,
        drifted: true,
        reason: "Drifted".into(),
        message: "2 resources differ".into(),
        spec_hash: "abc".into(),
        updated_unix: 0,
    };
    store.set_condition(&condition).await?;
    condition.ready = true;
    condition.drifted = false;
    condition.reason = "Applied".into();
    store.set_condition(&condition).await?;

    let conditions = store.conditions().await?;
    assert_eq!(
        conditions.len(),
        1,
        "one condition per site, updated in place"
    );
    assert_eq!(conditions[0].reason, "Applied");
    assert!(conditions[0].ready && !conditions[0].drifted);
    assert!(conditions[0].updated_unix > 0);

    let history = store.site_history("blog", 5).await?;
    assert_eq!(history.len(), 1);
    assert!(!history[0].ok);
    assert_eq!(history[0].error.as_deref(), Some("boom"));
    assert_eq!(history[0].run_id, run_id);
    assert_eq!(history[0].migration_json, None);
    let shop = store.site_history("shop", 5).await?;
    assert_eq!(
        shop[0].migration_json.as_deref(),
        Some(r#"{"site":"shop"}"#)
    );
    assert!(store.dump_text().await?.contains("Plan: 1 to create"));
    Ok(())
}

#[tokio::test]
async fn the_store_works_on_sqlite_and_survives_reopening() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/state.db").display().to_string();
    let store = StateStore::open(&path).await?;
    exercise(&store).await?;
    let reopened = StateStore::open(&format!("sqlite:{path}")).await?;
    assert_eq!(
        reopened.conditions().await?.len(),
        1,
        "migrations run once; data kept"
    );
    Ok(())
}

#[tokio::test]
async fn the_store_works_on_postgresql() -> Result<()> {
    let postgres = ThrowawayPostgres::start()?;
    let store = StateStore::open(&postgres.url()).await?;
    exercise(&store).await?;
    let reopened = StateStore::open(&postgres.url()).await?;
    assert_eq!(reopened.site_history("shop", 5).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_postgresql_store_is_a_clear_error() {
    let error = StateStore::open("postgres://nobody@localhost/none?host=/nonexistent")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot open the state store"),
        "{error}"
    );
}
