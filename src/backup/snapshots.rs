//! A site's snapshots as restic lists them, grouped into runs: each backup run makes a
//! `database` and a `files` snapshot with the same time and `run=` tag. Pure.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One restic snapshot (`restic snapshots --json`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub short_id: String,
    pub time: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Snapshot {
    /// The value of a `key=value` tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|tag| tag.strip_prefix(key)?.strip_prefix('='))
    }

    fn size(&self) -> Option<u64> {
        self.tag("size")?.parse().ok()
    }
}

/// One backup run of a site: its database and files snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The run's tag (its start, unix seconds).
    pub run: String,
    /// RFC 3339, as restic gives it.
    pub time: String,
    /// The server the site was backed up from.
    pub server: String,
    pub database: Option<Part>,
    pub files: Option<Part>,
}

/// One half of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub id: String,
    pub short_id: String,
    /// Bytes read when it was made (the `size=` tag), when known.
    pub bytes: Option<u64>,
    /// What restic holds: the dump's path (`/shop.sql`) or the files' paths.
    pub paths: Vec<String>,
    /// Where `.env` and the storage were (`shared=` tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
}

impl Run {
    /// Whether the run has every half the site needs.
    pub fn complete(&self, with_database: bool) -> bool {
        self.files.is_some() && (self.database.is_some() || !with_database)
    }

    /// Bytes of both halves.
    pub fn bytes(&self) -> u64 {
        [&self.database, &self.files]
            .iter()
            .filter_map(|p| p.as_ref().and_then(|p| p.bytes))
            .sum()
    }

    /// Whether `id` (a full id or a prefix of at least 4 characters) names one of its halves.
    pub fn named_by(&self, id: &str) -> bool {
        id.len() >= 4
            && [&self.database, &self.files]
                .into_iter()
                .flatten()
                .any(|p| p.id.starts_with(id))
    }

    /// The ids of its halves, for messages: `3f2a9c1d (database) + 77b0e412 (files)`.
    pub fn label(&self) -> String {
        let parts: Vec<String> = [("database", &self.database), ("files", &self.files)]
            .iter()
            .filter_map(|(kind, part)| part.as_ref().map(|p| format!("{} ({kind})", p.short_id)))
            .collect();
        parts.join(" + ")
    }
}

/// Why restic's listing could not be read.
#[derive(Debug, thiserror::Error)]
#[error("restic's list of snapshots could not be read")]
pub struct ListingError(#[from] serde_json::Error);

/// Parses `restic snapshots --json`.
pub fn parse(json: &[u8]) -> Result<Vec<Snapshot>, ListingError> {
    let text = String::from_utf8_lossy(json);
    let start = text.find('[').unwrap_or(0);
    Ok(serde_json::from_str(text[start..].trim())?)
}

/// The runs of `site`, oldest first.
pub fn runs(snapshots: &[Snapshot], site: &str) -> Vec<Run> {
    let mut runs: BTreeMap<String, Run> = BTreeMap::new();
    for snapshot in snapshots {
        if snapshot.tag("site") != Some(site) {
            continue;
        }
        let Some(run_tag) = snapshot.tag("run") else {
            continue;
        };
        let run = runs.entry(run_tag.to_owned()).or_insert_with(|| Run {
            run: run_tag.to_owned(),
            time: snapshot.time.clone(),
            server: snapshot.tag("server").unwrap_or_default().to_owned(),
            database: None,
            files: None,
        });
        let part = Part {
            id: snapshot.id.clone(),
            short_id: snapshot.short_id.clone(),
            bytes: snapshot.size(),
            paths: snapshot.paths.clone(),
            shared: snapshot.tag("shared").map(str::to_owned),
        };
        match snapshot.tag("kind") {
            Some("database") => run.database = Some(part),
            Some("files") => run.files = Some(part),
            _ => {}
        }
    }
    let mut out: Vec<Run> = runs.into_values().collect();
    out.sort_by(|a, b| {
        let key = |run: &Run| run.run.parse::<u64>().unwrap_or(0);
        key(a).cmp(&key(b))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"[
      {"time":"2024-05-01T02:17:00Z","paths":["/shop.sql"],"hostname":"shop","tags":["siteward","site=shop","server=web-1","run=1714529820","kind=database","size=2048"],"id":"aaaa1111bbbb","short_id":"aaaa1111"},
      {"time":"2024-05-01T02:17:00Z","paths":["/home/shop/shop.test/shared/.env"],"hostname":"shop","tags":["siteward","site=shop","server=web-1","run=1714529820","kind=files","shared=/home/shop/shop.test/shared","size=100"],"id":"cccc2222dddd","short_id":"cccc2222"},
      {"time":"2024-04-30T02:17:00Z","paths":["/shop.sql"],"hostname":"shop","tags":["siteward","site=shop","server=web-1","run=1714443420","kind=database"],"id":"eeee3333","short_id":"eeee3333"},
      {"time":"2024-04-30T02:17:00Z","paths":["/blog.sql"],"hostname":"blog","tags":["siteward","site=blog","run=1714443420","kind=database"],"id":"ffff4444","short_id":"ffff4444"}
    ]"#;

    #[test]
    fn snapshots_group_into_runs_of_one_site_oldest_first() {
        let snapshots = parse(LISTING.as_bytes()).unwrap();
        let runs = runs(&snapshots, "shop");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].run, "1714443420");
        assert!(!runs[0].complete(true), "the older run has no files half");
        let last = &runs[1];
        assert!(last.complete(true));
        assert_eq!(last.bytes(), 2148);
        assert_eq!(last.server, "web-1");
        assert_eq!(last.label(), "aaaa1111 (database) + cccc2222 (files)");
        assert_eq!(
            last.files.as_ref().unwrap().shared.as_deref(),
            Some("/home/shop/shop.test/shared")
        );
    }

    #[test]
    fn a_run_is_named_by_a_prefix_of_either_half() {
        let snapshots = parse(LISTING.as_bytes()).unwrap();
        let last = runs(&snapshots, "shop").pop().unwrap();
        assert!(last.named_by("cccc2222"));
        assert!(last.named_by("aaaa"));
        assert!(!last.named_by("aa"), "too short to name anything");
        assert!(!last.named_by("eeee3333"));
    }

    #[test]
    fn a_listing_after_a_warning_line_still_reads() {
        let text = format!("some warning\n{LISTING}");
        assert_eq!(parse(text.as_bytes()).unwrap().len(), 4);
    }
}
