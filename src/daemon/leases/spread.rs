//! Which daemon should hold which site: rendezvous hashing over the live daemons, so every
//! daemon computes the same answer from the same list with no leader, and a daemon joining or
//! leaving moves only its own share of the sites.

use std::collections::{BTreeMap, BTreeSet};

/// The daemon of `live` that `site` belongs with (the highest score); `None` when none is live.
pub fn preferred<'a>(site: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .max_by_key(|daemon| (score(site, daemon), daemon.as_str()))
        .map(String::as_str)
}

/// What one round of a daemon does with the leases.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Sites to take: those that belong with this daemon (free or ended leases).
    pub claim: Vec<String>,
    /// Sites to take only when their lease ended a whole lease ago (their daemon does not
    /// take them: it may not know them yet).
    pub rescue: Vec<String>,
    /// Held sites that now belong with another live daemon and are not running here: given up
    /// so that it takes them (a daemon joined), or that no spec names any more.
    pub hand_over: Vec<String>,
}

/// The round of daemon `me`, given the sites the specs name, the live daemons, the sites it
/// holds and those it is reconciling now.
pub fn round(
    me: &str,
    sites: &BTreeSet<String>,
    live: &[String],
    held: &BTreeMap<String, i64>,
    running: &BTreeSet<String>,
) -> Round {
    let mut plan = Round::default();
    for site in sites {
        if held.contains_key(site) {
            continue;
        }
        match preferred(site, live) {
            Some(daemon) if daemon == me => plan.claim.push(site.clone()),
            _ => plan.rescue.push(site.clone()),
        }
    }
    for site in held.keys() {
        if running.contains(site) {
            continue;
        }
        let elsewhere = preferred(site, live).is_some_and(|daemon| daemon != me);
        if elsewhere || !sites.contains(site) {
            plan.hand_over.push(site.clone());
        }
    }
    plan
}

/// A stable 64-bit score of a (site, daemon) pair: FNV-1a of both, then a SplitMix64 finish.
fn score(site: &str, daemon: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in site.bytes().chain([0xff]).chain(daemon.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn sites_spread_over_the_live_daemons_and_a_leaving_one_moves_only_its_own() {
        let daemons = names("d", 3);
        let sites = names("site-", 300);
        let owner = |live: &[String]| -> Vec<String> {
            sites
                .iter()
                .map(|s| preferred(s, live).unwrap().to_owned())
                .collect()
        };
        let before = owner(&daemons);
        for daemon in &daemons {
            let share = before.iter().filter(|o| *o == daemon).count();
            assert!((70..=130).contains(&share), "{daemon} has {share} of 300");
        }
        let after = owner(&daemons[1..]);
        for (was, now) in before.iter().zip(&after) {
            if was != "d0" {
                assert_eq!(was, now, "a site of a surviving daemon moved");
            }
        }
        assert!(after.iter().all(|o| o != "d0"));
    }

    #[test]
    fn a_round_claims_its_own_rescues_the_rest_and_hands_over_what_belongs_elsewhere() {
        let live = names("d", 2);
        let sites: BTreeSet<String> = names("s", 40).into_iter().collect();
        let mine: Vec<&String> = sites
            .iter()
            .filter(|s| preferred(s, &live) == Some("d0"))
            .collect();
        let theirs: Vec<&String> = sites
            .iter()
            .filter(|s| preferred(s, &live) == Some("d1"))
            .collect();
        let mut held = BTreeMap::new();
        held.insert(theirs[0].clone(), 7);
        held.insert(theirs[1].clone(), 8);
        held.insert("gone".to_owned(), 9);
        let running: BTreeSet<String> = [theirs[1].clone()].into_iter().collect();
        let plan = round("d0", &sites, &live, &held, &running);
        assert_eq!(plan.claim.len(), mine.len());
        assert_eq!(plan.rescue.len(), theirs.len() - 2);
        assert_eq!(
            plan.hand_over,
            vec!["gone".to_owned(), theirs[0].clone()]
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn with_no_live_daemon_listed_nothing_is_preferred() {
        assert_eq!(preferred("a", &[]), None);
    }
}
