//! The SQLite store's index of reports by uid, kept in memory (see [`super::sqlite`]).
//!
//! A B-tree index by uid costs one page at a random place per stored report, written whole to
//! the WAL at its commit and again by the checkpoint: with it, SQLite ingest reached 0.35 of a
//! bare append; without it, 0.66 (`./task bench floor`). The SQLite store serves one process,
//! so the index lives in its memory instead: built from `reports` when the store opens (a scan
//! of the index by received time, which holds the uid), changed after each commit, and so
//! always what the table holds. It costs about 16 bytes per report and one string per uid in
//! memory, and a scan of that index at start (a million reports: about 100 MB read once).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher as _, RandomState};

/// `(received_at, id)` of a report: the order in which reports replace each other.
pub type At = (i64, i64);

/// How many hash maps the uids are spread over. A hash map grows by moving every entry at
/// once, and the writer holds the index meanwhile: with one map, growing past 57k, 115k and
/// 229k uids stalled the writer for 10, 20 and 60–140 ms, and every request of the moment
/// with it: that set the p99 of `./task bench floor` (50–60 ms in 8 s runs; 5–9 ms since).
/// Each shard grows alone and moves 1/256 of the uids: at a million uids about 4k entries, well
/// under a millisecond.
const SHARDS: usize = 256;

/// Every stored report's `(received_at, id)` by uid, and each uid's latest by kind and time.
#[derive(Debug)]
pub struct UidIndex {
    /// [`SHARDS`] maps; a uid lives in the one [`UidIndex::shard`] picks.
    by_uid: Vec<HashMap<String, Reports>>,
    /// Picks a uid's shard. Its own keys: a map's buckets are picked from the same hash bits
    /// otherwise, and every uid of a shard would share them.
    spread: RandomState,
    /// `(kind, received_at, id)` of each uid's latest report: the partial-day counts.
    latest: BTreeSet<(String, i64, i64)>,
}

impl Default for UidIndex {
    fn default() -> UidIndex {
        UidIndex {
            by_uid: (0..SHARDS).map(|_| HashMap::new()).collect(),
            spread: RandomState::new(),
            latest: BTreeSet::new(),
        }
    }
}

#[derive(Debug)]
struct Reports {
    kind: String,
    /// Ascending.
    at: Vec<At>,
}

impl UidIndex {
    fn shard(&self, uid: &str) -> usize {
        // The high bits: `SHARDS` is a power of two, and all 64 bits are mixed.
        (self.spread.hash_one(uid) >> (64 - SHARDS.trailing_zeros())) as usize
    }

    fn reports(&self, uid: &str) -> Option<&Reports> {
        self.by_uid[self.shard(uid)].get(uid)
    }

    /// Adds a stored report.
    pub fn add(&mut self, uid: &str, kind: &str, at: At) {
        let i = self.shard(uid);
        let shard = &mut self.by_uid[i];
        let r = match shard.get_mut(uid) {
            Some(r) => r,
            None => shard.entry(uid.to_owned()).or_insert(Reports {
                kind: kind.to_owned(),
                at: Vec::new(),
            }),
        };
        let before = r.at.last().copied();
        match r.at.binary_search(&at) {
            Ok(_) => return,
            Err(i) => r.at.insert(i, at),
        }
        if before != r.at.last().copied() {
            if let Some((t, id)) = before {
                self.latest.remove(&(r.kind.clone(), t, id));
            }
            self.latest.insert((r.kind.clone(), at.0, at.1));
        }
    }

    /// Removes stored reports of `uid` by id.
    pub fn remove(&mut self, uid: &str, ids: &[i64]) {
        let i = self.shard(uid);
        let shard = &mut self.by_uid[i];
        let Some(r) = shard.get_mut(uid) else {
            return;
        };
        let before = r.at.last().copied();
        r.at.retain(|(_, id)| !ids.contains(id));
        let after = r.at.last().copied();
        if before != after {
            if let Some((t, id)) = before {
                self.latest.remove(&(r.kind.clone(), t, id));
            }
            if let Some((t, id)) = after {
                self.latest.insert((r.kind.clone(), t, id));
            }
        }
        if r.at.is_empty() {
            shard.remove(uid);
        }
    }

    /// The latest report of `uid`.
    pub fn latest(&self, uid: &str) -> Option<At> {
        self.reports(uid).and_then(|r| r.at.last().copied())
    }

    /// The latest report of `uid` received in `[from, to)`.
    pub fn latest_in(&self, uid: &str, from: i64, to: i64) -> Option<At> {
        let r = self.reports(uid)?;
        let end = r.at.partition_point(|&(t, _)| t < to);
        r.at[..end].last().copied().filter(|&(t, _)| t >= from)
    }

    /// The ids of every stored report of `uid`, ascending.
    pub fn ids(&self, uid: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .reports(uid)
            .map(|r| r.at.iter().map(|&(_, id)| id).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Each uid's latest report.
    pub fn latest_reports(&self) -> impl Iterator<Item = At> + '_ {
        self.latest.iter().map(|&(_, t, id)| (t, id))
    }

    /// How many uids of `kind` have their latest report received in `[from, to)`.
    pub fn latest_between(&self, kind: &str, from: i64, to: i64) -> i64 {
        let lo = (kind.to_owned(), from, i64::MIN);
        let hi = (kind.to_owned(), to, i64::MIN);
        self.latest.range(lo..hi).count() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_uids_latest_through_adds_and_removes() {
        let mut x = UidIndex::default();
        x.add("a", "is", (10, 1));
        x.add("a", "is", (30, 3));
        // Received earlier, stored later: not the latest.
        x.add("a", "is", (20, 4));
        x.add("b", "cli", (15, 2));
        assert_eq!(x.latest("a"), Some((30, 3)));
        assert_eq!(x.latest_in("a", 0, 25), Some((20, 4)));
        assert_eq!(x.latest_in("a", 11, 20), None);
        assert_eq!(x.ids("a"), vec![1, 3, 4]);
        assert_eq!(x.latest_between("is", 0, 100), 1);
        assert_eq!(x.latest_between("is", 31, 100), 0);
        assert_eq!(x.latest_between("cli", 15, 16), 1);
        assert_eq!(
            x.latest_reports().collect::<Vec<_>>(),
            vec![(15, 2), (30, 3)]
        );
        x.remove("a", &[3]);
        assert_eq!(x.latest("a"), Some((20, 4)));
        assert_eq!(x.latest_between("is", 20, 21), 1);
        x.remove("a", &[1, 4]);
        assert_eq!(x.latest("a"), None);
        assert_eq!(x.latest_between("is", 0, 100), 0);
        assert!(x.ids("a").is_empty());
    }

    #[test]
    fn spreads_uids_over_the_shards() {
        let mut x = UidIndex::default();
        let n = 64 * SHARDS;
        for i in 0..n {
            x.add(&format!("uid-{i}"), "is", (1, i as i64));
        }
        let (fewest, most) = x
            .by_uid
            .iter()
            .map(HashMap::len)
            .fold((n, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
        // 64 a shard on average; a bad pick (a few bits, or the maps' own) lands them in a few.
        assert!(fewest >= 24 && most <= 128, "shard sizes {fewest}..={most}");
        assert_eq!(x.latest("uid-77"), Some((1, 77)));
        assert_eq!(x.latest_between("is", 0, 2), n as i64);
    }
}
