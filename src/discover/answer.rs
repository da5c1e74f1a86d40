//! The discovery probe's answer: records of `TAG NAME CONTENT` (base64) into raw facts.

use std::collections::BTreeMap;

use base64::Engine as _;

/// The first line of every answer.
const HEADER: &str = "siteward-discover 1";

/// What the probe read, untouched: mapping it to sites is `sites.rs`'s job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub host: String,
    /// `/etc/php/<version>` directories that have an `fpm` folder.
    pub php: Vec<String>,
    /// `nginx -T`'s standard output, and its standard error.
    pub nginx: Option<String>,
    pub nginx_check: String,
    /// `sites-enabled` links and the files they point at.
    pub nginx_links: BTreeMap<String, String>,
    /// Files by path, each kind on its own.
    pub pools: BTreeMap<String, String>,
    pub programs: BTreeMap<String, String>,
    pub crontab: Option<String>,
    pub cron_d: BTreeMap<String, String>,
    pub user_crontabs: BTreeMap<String, String>,
    pub systemd: BTreeMap<String, String>,
    /// `supervisorctl status`.
    pub processes: String,
    /// Query output by engine (`mysql`, `postgres`), the servers' versions and errors.
    pub databases: BTreeMap<String, String>,
    pub database_errors: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    /// `authorized_keys` files: `LINE<TAB>COMMENT` lines.
    pub keys: BTreeMap<String, String>,
    pub panel_dirs: Vec<String>,
    /// Candidate site roots and what is in them.
    pub roots: BTreeMap<String, RootFacts>,
    /// Files read in site directories, by path.
    pub files: BTreeMap<String, String>,
    /// `openssl x509` output by certificate path.
    pub certificates: BTreeMap<String, String>,
    /// The live release's id by root, when that release has an `artisan`.
    pub release_artisan: BTreeMap<String, String>,
}

/// One candidate root directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootFacts {
    pub owner: String,
    pub group: String,
    pub entries: BTreeMap<String, Entry>,
    pub releases: Vec<String>,
    pub shared: Vec<String>,
    pub storage: Vec<String>,
}

/// What a name in a root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File,
    Link(String),
}

impl RootFacts {
    /// Whether `name` is a directory (not a link).
    pub fn has_dir(&self, name: &str) -> bool {
        self.entries.get(name) == Some(&Entry::Dir)
    }

    /// Whether `name` is a regular file.
    pub fn has_file(&self, name: &str) -> bool {
        self.entries.get(name) == Some(&Entry::File)
    }

    /// Where the link `name` points.
    pub fn link(&self, name: &str) -> Option<&str> {
        match self.entries.get(name) {
            Some(Entry::Link(target)) => Some(target),
            _ => None,
        }
    }

    /// Whether anything in it says a site lives here.
    pub fn looks_like_site(&self) -> bool {
        [".git", "releases", ".dep", "shared"]
            .iter()
            .any(|n| self.has_dir(n))
            || self.link("current").is_some()
            || [".env", "artisan", "composer.json"]
                .iter()
                .any(|n| self.has_file(n))
    }
}

/// Why an answer cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("the answer does not start with `{HEADER}` (is this a POSIX shell with base64?)")]
    Header,
    #[error("line {0} of the answer is malformed")]
    Malformed(usize),
    #[error("the answer is truncated: no `end` record after {0} lines")]
    Truncated(usize),
}

/// Reads the whole answer.
///
/// # Errors
/// A missing header, a malformed line, or no `end` record (the probe was cut off).
pub fn parse(stdout: &[u8]) -> Result<Answer, AnswerError> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(AnswerError::Header);
    }
    let mut answer = Answer::default();
    let mut records = 0usize;
    let mut done = false;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        if let Some(count) = line.strip_prefix("end\t") {
            let complete = done && count.parse::<usize>().ok() == Some(records);
            return if complete {
                Ok(answer)
            } else {
                Err(AnswerError::Truncated(number))
            };
        }
        let (tag, name, content) = record(line).ok_or(AnswerError::Malformed(number))?;
        records += 1;
        done = tag == "done";
        answer.add(tag, name, content);
    }
    Err(AnswerError::Truncated(records + 1))
}

fn record(line: &str) -> Option<(&str, String, String)> {
    let mut fields = line.splitn(3, '\t');
    let tag = fields.next()?;
    let name = decode(fields.next()?)?;
    let content = decode(fields.next()?)?;
    Some((tag, name, content))
}

fn decode(field: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(field)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

impl Answer {
    fn add(&mut self, tag: &str, name: String, content: String) {
        match tag {
            "host" => self.host = content.trim().to_owned(),
            "php" => self.php.push(name),
            "nginx" => self.nginx = Some(content),
            "nginx-check" => self.nginx_check = content,
            "nginx-link" => drop(self.nginx_links.insert(name, content)),
            "pool" => drop(self.pools.insert(name, content)),
            "program" => drop(self.programs.insert(name, content)),
            "crontab" => self.crontab = Some(content),
            "cron.d" => drop(self.cron_d.insert(name, content)),
            "user-crontab" => drop(self.user_crontabs.insert(name, content)),
            "systemd" => drop(self.systemd.insert(name, content)),
            "processes" => self.processes = content,
            "databases" => drop(self.databases.insert(name, content)),
            "database-error" => drop(self.database_errors.insert(name, content)),
            "version" => drop(self.versions.insert(name, content)),
            "keys" => drop(self.keys.insert(name, content)),
            "panel-dir" => self.panel_dirs.push(name),
            "root" => drop(self.roots.insert(name, root_facts(&content))),
            "user-file" => drop(self.files.insert(name, content)),
            "certificate" => drop(self.certificates.insert(name, content)),
            "release-artisan" => drop(self.release_artisan.insert(name, content)),
            _ => {}
        }
    }
}

fn root_facts(text: &str) -> RootFacts {
    let mut facts = RootFacts::default();
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "owner" => {
                let (owner, group) = rest.split_once(' ').unwrap_or((rest, ""));
                facts.owner = owner.to_owned();
                facts.group = group.to_owned();
            }
            "dir" => drop(facts.entries.insert(rest.to_owned(), Entry::Dir)),
            "file" => drop(facts.entries.insert(rest.to_owned(), Entry::File)),
            "link" => {
                let (name, target) = rest.split_once(' ').unwrap_or((rest, ""));
                facts
                    .entries
                    .insert(name.to_owned(), Entry::Link(target.to_owned()));
            }
            "release" => facts.releases.push(rest.to_owned()),
            "shared" => facts.shared.push(rest.to_owned()),
            "storage" => facts.storage.push(rest.to_owned()),
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: &str, name: &str, content: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!("{tag}\t{}\t{}\n", b64(name), b64(content))
    }

    #[test]
    fn records_become_facts_and_roots_are_read() {
        let body = [
            line("host", "hostname", "web-1\n"),
            line("root", "/home/forge/a.test", "owner forge forge\ndir .git\nfile .env\nlink current releases/3\nrelease 1\nshared .env\n"),
            line("user-file", "/home/forge/a.test/.env", "APP_ENV=production\n"),
            line("done", "-", ""),
        ]
        .concat();
        let answer = parse(format!("{HEADER}\n{body}end\t4\n").as_bytes()).unwrap();
        assert_eq!(answer.host, "web-1");
        let root = &answer.roots["/home/forge/a.test"];
        assert_eq!(
            (root.owner.as_str(), root.group.as_str()),
            ("forge", "forge")
        );
        assert!(root.has_dir(".git") && root.has_file(".env"));
        assert_eq!(root.link("current"), Some("releases/3"));
        assert_eq!(root.releases, ["1"]);
        assert!(root.looks_like_site());
        assert_eq!(
            answer.files["/home/forge/a.test/.env"],
            "APP_ENV=production\n"
        );
    }

    #[test]
    fn an_answer_cut_off_or_miscounted_is_refused() {
        let body = line("host", "hostname", "web-1");
        assert_eq!(parse(b"bash: no"), Err(AnswerError::Header));
        assert!(matches!(
            parse(format!("{HEADER}\n{body}").as_bytes()),
            Err(AnswerError::Truncated(_))
        ));
        let no_done = format!("{HEADER}\n{body}end\t1\n");
        assert!(matches!(
            parse(no_done.as_bytes()),
            Err(AnswerError::Truncated(_))
        ));
        let done = line("done", "-", "");
        let miscounted = format!("{HEADER}\n{body}{done}end\t3\n");
        assert!(matches!(
            parse(miscounted.as_bytes()),
            Err(AnswerError::Truncated(_))
        ));
        assert_eq!(
            parse(format!("{HEADER}\nx\ty\n").as_bytes()),
            Err(AnswerError::Malformed(2))
        );
    }
}
