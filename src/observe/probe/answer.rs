//! The probe's answer, line by line: every record checked for its tag, its number of fields and
//! each field's form, into raw server-wide facts that `assemble` maps to sites.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{PROTOCOL_VERSION, ProbeError};
use crate::observe::{
    Disk, GitState, ObservedHealth, ObservedPhp, ObservedProblem, ObservedProcess, ObservedRelease,
    ObservedUser, PathKind, ServiceState,
};

/// What `find -printf` said about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stat {
    pub kind: PathKind,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub size: u64,
    pub target: Option<String>,
}

/// Rows of one database engine, for every site at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EngineRows {
    /// Name → (charset, collation, size in bytes).
    pub databases: BTreeMap<String, (String, String, u64)>,
    /// Users (roles) that exist, with their stored password verifier when they have one.
    pub users: BTreeMap<String, Option<String>>,
    /// (grantee as the server writes it, database as the server writes it, privilege).
    pub grants: Vec<(String, String, String)>,
}

/// Every record of one answer, server-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Answer {
    pub hostname: String,
    pub php: Vec<ObservedPhp>,
    pub services: BTreeMap<String, ServiceState>,
    pub disks: Vec<Disk>,
    pub recorded: Vec<String>,
    pub problems: Vec<ObservedProblem>,
    pub facts: BTreeMap<String, BTreeMap<String, String>>,
    pub locks: BTreeMap<String, BTreeMap<String, String>>,
    /// Site → its backup status (`/var/lib/siteward/sites/<site>/backup-status`).
    pub backups: BTreeMap<String, BTreeMap<String, String>>,
    /// The server's clock when it was probed (unix seconds).
    pub clock: u64,
    pub journals: BTreeMap<String, Vec<String>>,
    pub users: BTreeMap<String, ObservedUser>,
    pub stats: BTreeMap<String, Stat>,
    pub hashes: BTreeMap<String, String>,
    /// Managed files written or removed that their service has not loaded since.
    pub unloaded: Vec<String>,
    /// `(site, path)` of the files sites' `adopt` sections name that exist.
    pub adopted: Vec<(String, String)>,
    /// Paths whose contents are in `blob`, a gzipped tar archive.
    pub contents: Vec<String>,
    pub blob: Vec<u8>,
    /// Site → the `.env` file read for it.
    pub env_files: BTreeMap<String, String>,
    /// Site → key → sha256 of the value (the first definition of a key counts).
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    pub releases: BTreeMap<String, Vec<ObservedRelease>>,
    /// (site, release) → commit.
    pub revisions: BTreeMap<(String, String), String>,
    /// (site, release) → the fingerprint of the deploy that failed its health check.
    pub bad: BTreeMap<(String, String), String>,
    pub git: BTreeMap<String, GitState>,
    pub mysql: EngineRows,
    pub postgres: EngineRows,
    pub processes: Vec<ObservedProcess>,
    /// Linux user → crontab entries.
    pub crontabs: BTreeMap<String, usize>,
    /// Index → repository URL asked with `git ls-remote`.
    pub sources: BTreeMap<String, String>,
    /// Index → ref name → commit, as `git ls-remote` listed them.
    pub refs: BTreeMap<String, BTreeMap<String, String>>,
    /// Site → its health check's answer.
    pub health: BTreeMap<String, ObservedHealth>,
    /// (site, source) → the lines `openssl x509` printed of its certificate.
    pub certificates: BTreeMap<(String, String), Vec<String>>,
}

impl Answer {
    /// Reads a whole answer: the version line, records, then `end` with the record count.
    pub fn read(stdout: &[u8]) -> Result<Answer, ProbeError> {
        let text = std::str::from_utf8(stdout).map_err(|error| {
            let line = 1 + stdout[..error.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            ProbeError::malformed(line, "not UTF-8 (every field is base64 or a number)")
        })?;
        let mut answer = Answer::default();
        let mut lines = text.split_terminator('\n').enumerate();
        read_version(lines.next())?;
        let mut records = 1;
        while let Some((index, line)) = lines.next() {
            let mut fields = Fields::new(index + 1, line);
            if fields.tag == "end" {
                check_end(&mut fields, records)?;
                if let Some((after, _)) = lines.next() {
                    return Err(ProbeError::malformed(
                        after + 1,
                        "data after the `end` record",
                    ));
                }
                return Ok(answer);
            }
            answer.record(&mut fields)?;
            fields.finish()?;
            records += 1;
        }
        Err(ProbeError::Truncated {
            lines: text.split_terminator('\n').count(),
        })
    }

    fn record(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        match f.tag {
            "host" => self.hostname = f.text()?,
            "php" => self.php.push(ObservedPhp {
                version: f.text()?,
                fpm_running: f.flag()?,
            }),
            "service" => self.service(f)?,
            "disk" => self.disks.push(Disk {
                path: f.text()?,
                available_bytes: f.number()?,
                total_bytes: f.number()?,
            }),
            "recorded" => self.recorded.push(f.text()?),
            "problem" => self.problems.push(ObservedProblem {
                site: f.optional_text()?,
                topic: f.text()?,
                message: f.text()?,
            }),
            "fact" => insert(&mut self.facts, f.text()?, f.text()?, f.text()?),
            "lock" => insert(&mut self.locks, f.text()?, f.text()?, f.text()?),
            "backup" => insert(&mut self.backups, f.text()?, f.text()?, f.text()?),
            "clock" => self.clock = f.number()?,
            "journal" => self.journals.entry(f.text()?).or_default().push(f.text()?),
            "user" => self.user(f)?,
            "stat" => self.stat(f)?,
            "hash" => _ = self.hashes.insert(f.text()?, f.sha256()?),
            "content" => self.contents.push(f.text()?),
            "unloaded" => self.unloaded.push(f.text()?.replace('%', "/")),
            "blob" => self.blob = f.base64()?,
            "envfile" => _ = self.env_files.insert(f.text()?, f.text()?),
            "env" => self.env(f)?,
            "release" => self.release(f)?,
            "revision" => _ = self.revisions.insert((f.text()?, f.text()?), f.hex()?),
            "bad" => _ = self.bad.insert((f.text()?, f.text()?), f.hex()?),
            "git" => self.git(f)?,
            "mysql-db" | "pg-db" => self.database(f)?,
            "mysql-user" | "pg-user" => self.database_user(f)?,
            "mysql-grant" | "pg-grant" => self.grant(f)?,
            "process" => self.processes.push(ObservedProcess {
                program: f.text()?,
                process: f.text()?,
                state: f.text()?,
                log_tail: Vec::new(),
            }),
            "proclog" => self.process_log(f)?,
            "health" => {
                let site = f.text()?;
                let (status, ok) = (f.number()?, f.flag()?);
                self.health.insert(site, ObservedHealth { status, ok });
            }
            "cert" => {
                let key = (f.text()?, f.text()?);
                self.certificates.entry(key).or_default().push(f.text()?);
            }
            "source" => _ = self.sources.insert(f.token()?.to_owned(), f.text()?),
            "ref" => self.reference(f)?,
            "crontab" => _ = self.crontabs.insert(f.text()?, f.number()?),
            "adopted" => self.adopted.push((f.text()?, f.text()?)),
            other => return Err(f.error(format!("unknown record `{other}`"))),
        }
        Ok(())
    }

    /// A line of the log of a process that is not running; its `process` record came before.
    fn process_log(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let (program, process, line) = (f.text()?, f.text()?, f.text()?);
        let owner = self
            .processes
            .iter_mut()
            .find(|p| p.program == program && p.process == process);
        match owner {
            Some(owner) => owner.log_tail.push(line),
            None => return Err(f.error(format!("a log line of `{process}`, which has no state"))),
        }
        Ok(())
    }

    fn service(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let name = f.token()?.to_owned();
        let state = ServiceState {
            installed: f.flag()?,
            running: f.flag()?,
        };
        self.services.insert(name, state);
        Ok(())
    }

    fn user(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let user = ObservedUser {
            name: f.text()?,
            uid: f.number()?,
            gid: f.number()?,
            home: f.text()?,
            shell: f.text()?,
        };
        self.users.insert(user.name.clone(), user);
        Ok(())
    }

    fn stat(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let path = f.text()?;
        let kind = match f.token()? {
            "f" => PathKind::File,
            "d" => PathKind::Directory,
            "l" => PathKind::Symlink,
            "o" => PathKind::Other,
            other => return Err(f.error(format!("unknown path kind `{other}`"))),
        };
        let stat = Stat {
            kind,
            owner: f.text()?,
            group: f.text()?,
            mode: f.octal()?,
            size: f.number()?,
            target: f.optional_text()?,
        };
        self.stats.insert(path, stat);
        Ok(())
    }

    fn env(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let (site, key, sha256) = (f.text()?, f.text()?, f.sha256()?);
        self.env
            .entry(site)
            .or_default()
            .entry(key)
            .or_insert(sha256);
        Ok(())
    }

    fn release(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let site = f.text()?;
        let release = ObservedRelease {
            id: f.text()?,
            commit: None,
            bad: f.flag()?,
            bad_fingerprint: None,
        };
        self.releases.entry(site).or_default().push(release);
        Ok(())
    }

    fn git(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let site = f.text()?;
        let state = GitState {
            commit: f.hex()?,
            remote: f.optional_text()?,
            branch: f.optional_text()?,
        };
        self.git.insert(site, state);
        Ok(())
    }

    fn database(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let (name, charset, collation) = (f.text()?, f.text()?, f.text()?);
        let size = f.text()?;
        let size = size
            .parse()
            .map_err(|_| f.error(format!("database size `{size}` is not a number")))?;
        let engine = self.engine(f.tag);
        engine.databases.insert(name, (charset, collation, size));
        Ok(())
    }

    fn database_user(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let (name, verifier) = (f.text()?, f.text()?);
        let verifier = (!verifier.is_empty()).then_some(verifier);
        self.engine(f.tag).users.insert(name, verifier);
        Ok(())
    }

    fn grant(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let grant = (f.text()?, f.text()?, f.text()?);
        self.engine(f.tag).grants.push(grant);
        Ok(())
    }

    fn reference(&mut self, f: &mut Fields<'_>) -> Result<(), ProbeError> {
        let source = f.token()?.to_owned();
        let (name, commit) = (f.text()?, f.hex()?);
        self.refs.entry(source).or_default().insert(name, commit);
        Ok(())
    }

    fn engine(&mut self, tag: &str) -> &mut EngineRows {
        if tag.starts_with("pg-") {
            &mut self.postgres
        } else {
            &mut self.mysql
        }
    }
}

fn insert(
    map: &mut BTreeMap<String, BTreeMap<String, String>>,
    site: String,
    key: String,
    value: String,
) {
    map.entry(site).or_default().insert(key, value);
}

fn read_version(first: Option<(usize, &str)>) -> Result<(), ProbeError> {
    let Some((_, line)) = first else {
        return Err(ProbeError::Truncated { lines: 0 });
    };
    let mut fields = Fields::new(1, line);
    if fields.tag != "siteward-probe" {
        return Err(fields.error("the answer does not start with `siteward-probe`"));
    }
    let version: u32 = fields.number()?;
    if version != PROTOCOL_VERSION {
        return Err(fields.error(format!(
            "protocol version {version}, expected {PROTOCOL_VERSION}"
        )));
    }
    fields.finish()
}

fn check_end(fields: &mut Fields<'_>, records: usize) -> Result<(), ProbeError> {
    let count: usize = fields.number()?;
    fields.finish()?;
    if count != records {
        return Err(fields.error(format!("`end` counts {count} records, {records} arrived")));
    }
    Ok(())
}

/// The fields of one record, read left to right.
pub(super) struct Fields<'a> {
    line: usize,
    pub tag: &'a str,
    rest: std::str::Split<'a, char>,
    read: usize,
}

impl<'a> Fields<'a> {
    fn new(line: usize, text: &'a str) -> Self {
        let mut rest = text.split('\t');
        let tag = rest.next().unwrap_or_default();
        Fields {
            line,
            tag,
            rest,
            read: 0,
        }
    }

    fn error(&self, reason: impl Into<String>) -> ProbeError {
        ProbeError::malformed(self.line, reason)
    }

    fn next(&mut self) -> Result<&'a str, ProbeError> {
        self.read += 1;
        let read = self.read;
        self.rest.next().ok_or_else(|| {
            self.error(format!(
                "`{}` record has {} field(s), expected more",
                self.tag,
                read - 1
            ))
        })
    }

    fn finish(&mut self) -> Result<(), ProbeError> {
        if self.rest.next().is_some() {
            return Err(self.error(format!(
                "`{}` record has more than {} field(s)",
                self.tag, self.read
            )));
        }
        Ok(())
    }

    fn base64(&mut self) -> Result<Vec<u8>, ProbeError> {
        let field = self.next()?;
        let index = self.read;
        STANDARD
            .decode(field)
            .map_err(|error| self.error(format!("field {index} is not base64: {error}")))
    }

    fn text(&mut self) -> Result<String, ProbeError> {
        Ok(String::from_utf8_lossy(&self.base64()?).into_owned())
    }

    fn optional_text(&mut self) -> Result<Option<String>, ProbeError> {
        if self.rest.clone().next() == Some("-") {
            self.next()?;
            return Ok(None);
        }
        self.text().map(Some)
    }

    fn token(&mut self) -> Result<&'a str, ProbeError> {
        let field = self.next()?;
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if field.is_empty() || !field.chars().all(plain) {
            return Err(self.error(format!("field {} `{field}` is not a name", self.read)));
        }
        Ok(field)
    }

    fn number<T: std::str::FromStr>(&mut self) -> Result<T, ProbeError> {
        let field = self.next()?;
        let digits = !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
        match field.parse().ok().filter(|_| digits) {
            Some(number) => Ok(number),
            None => Err(self.error(format!("field {} `{field}` is not a number", self.read))),
        }
    }

    fn octal(&mut self) -> Result<u32, ProbeError> {
        let field = self.next()?;
        u32::from_str_radix(field, 8)
            .ok()
            .filter(|mode| *mode <= 0o7777 && !field.starts_with('+'))
            .ok_or_else(|| self.error(format!("field {} `{field}` is not a file mode", self.read)))
    }

    fn flag(&mut self) -> Result<bool, ProbeError> {
        match self.next()? {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(self.error(format!("field {} `{other}` is not 0 or 1", self.read))),
        }
    }

    fn hex(&mut self) -> Result<String, ProbeError> {
        let field = self.next()?;
        let hex = field
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !hex || !(7..=64).contains(&field.len()) {
            return Err(self.error(format!("field {} `{field}` is not a commit id", self.read)));
        }
        Ok(field.to_owned())
    }

    fn sha256(&mut self) -> Result<String, ProbeError> {
        let field = self.next()?;
        let hex = field
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !hex || field.len() != 64 {
            return Err(self.error(format!("field {} `{field}` is not a sha256", self.read)));
        }
        Ok(field.to_owned())
    }
}
