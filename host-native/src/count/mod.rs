//! Counting the Identity Server database (SPEC §4): one module per database.
//!
//! Both counters follow the same steps: open one consistent snapshot, read `T` from the
//! database's own clock, ask the core for the cut-offs ([`ttn_telemetry_core::cutoffs`]), and make
//! one pass over each table with the cut-offs as query parameters. The result is plain
//! [`EntitiesCount`] for the core to build a report from.
//!
//! Semantics (both databases): soft-deleted rows (`deleted_at` not null) do not exist; a
//! gateway counts once for each distinct non-empty plan id it lists, and a gateway without a plan
//! counts only in the total; a device is active when `last_seen_at` is set, and in a window when
//! `last_seen_at > cut-off`.

pub mod postgres;
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ttn_telemetry_core::{EntitiesCount, mask_secrets, redact_uri, uri_secrets};

/// The counts of one snapshot and the database time they are valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// `T`: the database's current time when the snapshot was taken, Unix microseconds (UTC).
    pub at: i64,
    /// The counts.
    pub counts: EntitiesCount,
}

/// Counting failed. Names the database (password masked) and the step that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountError {
    /// The database URI with its password masked.
    pub database: String,
    /// What was being done: `connecting`, `counting end_devices`, …
    pub step: String,
    /// What the database or driver said.
    pub detail: String,
}

impl CountError {
    pub(crate) fn new(uri: &str, step: impl Into<String>, detail: impl fmt::Display) -> Self {
        CountError {
            database: redact_uri(uri),
            step: step.into(),
            // Driver messages do not carry the URI, but mask it anyway should one ever do.
            detail: scrub(&detail.to_string(), uri),
        }
    }
}

fn scrub(detail: &str, uri: &str) -> String {
    let one_line = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_line = if uri.is_empty() {
        one_line
    } else {
        one_line.replace(uri, &redact_uri(uri))
    };
    mask_secrets(&one_line, &uri_secrets(uri))
}

impl fmt::Display for CountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IS database {}: {} failed: {}",
            self.database, self.step, self.detail
        )
    }
}

impl std::error::Error for CountError {}

/// Counts the database named by `uri`: `sqlite:PATH`, or PostgreSQL as a `postgres://…` /
/// `postgresql://…` URI or a `key=value` conninfo string.
pub fn count(uri: &str) -> Result<Counted, CountError> {
    if let Some(path) = uri.strip_prefix("sqlite:") {
        sqlite::count_path(std::path::Path::new(path), uri)
    } else if ttn_telemetry_core::is_postgres_uri(uri) || !uri.contains("://") {
        postgres::count_uri(uri)
    } else {
        Err(CountError::new(
            uri,
            "choosing a database driver",
            "expected a postgresql://… uri, key=value conninfo, or sqlite:PATH",
        ))
    }
}

/// The distinct non-empty plan ids of one gateway's `frequency_plan_id` (space separated).
pub fn plan_ids(frequency_plan_id: &str) -> BTreeSet<&str> {
    frequency_plan_id
        .split(' ')
        .filter(|t| !t.is_empty())
        .collect()
}

/// Adds `gateways` gateways that all have this `frequency_plan_id` text to a per-plan count.
pub(crate) fn add_plans(map: &mut BTreeMap<String, u64>, frequency_plan_id: &str, gateways: u64) {
    for id in plan_ids(frequency_plan_id) {
        *map.entry(id.to_owned()).or_default() += gateways;
    }
}

pub(crate) fn to_u64(n: i64) -> u64 {
    // count(*) is never negative.
    u64::try_from(n).unwrap_or_default()
}

/// Formats Unix microseconds as RFC 3339 UTC with six fraction digits
/// (`2026-03-31T12:00:00.000000Z`): the timestamp form of the SQLite schema, and how `T` is
/// shown to people.
pub fn format_timestamp(micros: i64) -> String {
    ttn_telemetry_core::format_rfc3339_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttn_telemetry_core::civil_to_unix_micros;

    #[test]
    fn plan_ids_drop_empty_tokens_and_duplicates() {
        let got: Vec<_> = plan_ids("  EU_863_870  EU_863_870 US_902_928_FSB_2 ")
            .into_iter()
            .collect();
        assert_eq!(got, ["EU_863_870", "US_902_928_FSB_2"]);
        assert!(plan_ids("").is_empty());
        assert!(plan_ids("   ").is_empty());
    }

    #[test]
    fn timestamps_round_trip_through_the_core_calendar() {
        for (y, m, d, us) in [
            (1970, 1, 1, 0),
            (2024, 2, 29, 43_200_000_001),
            (2026, 12, 31, 86_399_999_999),
            (1969, 12, 31, 1),
        ] {
            let t = civil_to_unix_micros(y, m, d, us);
            let s = format_timestamp(t);
            let secs = us / 1_000_000;
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                us % 1_000_000
            );
            assert_eq!(s, want);
        }
    }

    #[test]
    fn errors_mask_the_password() {
        let uri = "postgresql://root:hunter2@db:5432/is";
        let e = CountError::new(uri, "connecting", format!("oops {uri}\nsecond line"));
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            shown,
            "IS database postgresql://root:***@db:5432/is: connecting failed: oops postgresql://root:***@db:5432/is second line"
        );
    }
}
