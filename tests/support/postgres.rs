//! A throwaway PostgreSQL server for the shared state store: in a temporary directory, on a
//! Unix socket only; stopped, started again and removed by the tests.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A PostgreSQL server in a temporary directory, listening on a Unix socket only.
pub struct ThrowawayPostgres {
    dir: PathBuf,
    bin: PathBuf,
}

impl ThrowawayPostgres {
    pub fn start() -> Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .context("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let dir = PathBuf::from(format!(
            "/tmp/siteward-store-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        run(Command::new("chown").args(["postgres:postgres", &dir.display().to_string()]))?;
        let data = dir.join("data").display().to_string();
        as_postgres(
            &bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        let server = ThrowawayPostgres { dir, bin };
        server.pg_ctl(&["-w", "start"])?;
        Ok(server)
    }

    /// Runs `pg_ctl` on this server with `args` (`start` listens on the socket only).
    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let data = self.dir.join("data").display().to_string();
        let options = format!(
            "-c listen_addresses='' -k {} -c fsync=off",
            self.dir.display()
        );
        let log = format!("{}/log", self.dir.display());
        let mut all = vec!["-D", &data, "-o", &options, "-l", &log];
        all.extend_from_slice(args);
        as_postgres(&self.bin.join("pg_ctl"), &all)
    }

    /// Stops the server at once (its clients' connections break).
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"])
    }

    /// Starts the stopped server again.
    pub fn start_again(&self) -> Result<()> {
        self.pg_ctl(&["-w", "start"])
    }

    /// One query's first column, as text (psql on the socket).
    pub fn query(&self, sql: &str) -> Result<String> {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .args(["-h", &self.dir.display().to_string(), "-At", "-c", sql])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    pub fn url(&self) -> String {
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
