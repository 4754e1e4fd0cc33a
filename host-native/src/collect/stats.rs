//! The aggregates behind `/api/v1/stats` and the dashboard, computed from a store snapshot.
//!
//! Definitions (where SPEC §9 is silent, these are the choices):
//! - A *deployment* is an Identity Server uid; a *CLI installation* is a CLI uid. Each counts by
//!   its latest report.
//! - "Reporting in the last day/week/month": the latest report was received at or after the
//!   core's cut-offs (T − 1 day, T − 7 days, T − 1 calendar month), T being the stats time.
//! - Entity totals, gateways per frequency plan and active devices sum the latest report of
//!   every deployment ever seen, exactly (128-bit: a report of `u64::MAX` gateways counts as
//!   that, and JSON carries the exact integer; readers that parse JSON numbers as doubles see
//!   them rounded).
//! - Versions, OS and arch count deployments (and, separately, CLI installations) by their
//!   latest report. Long tails are cut to the [`TOP`] largest entries plus `other` (ties by
//!   name, in byte order); the store reads only those entries, whatever the tail's length.
//! - A CLI report without usage data (`"cli":{}`, what the reference ttn-lw-cli sends) counts as
//!   a CLI installation like any other, and `cli.without_usage` says how many installations'
//!   latest report was of that form.
//! - Daily totals: for each UTC day, the latest report of each deployment received that day,
//!   summed. The last [`DAYS`] days that have any report are returned, oldest first.
//! - **Verified** (issue 14 §2): how many deployments (and CLI installations) have a pinned
//!   key, that is, signed their reports; every report of such a uid since its pin is verified.
//!   The share is `verified.deployments / deployments.total`. It is a total with no category
//!   value, so k-anonymity leaves it as it is.
//! - **k-anonymity** (issue 14 §4). The period is the stats' own window: the latest report of
//!   each deployment (or CLI installation). A frequency-plan id, version, OS or arch reported by
//!   fewer than `k` distinct uids in that window is folded into `other`, which carries its
//!   counts, so every total stays exact. For versions, OS and arch the entry's count *is* its
//!   number of uids; for plans the store keeps a separate count of deployments per plan id
//!   (scope `plan_deployments`), read for the top plans only. A reporter's own value `other`
//!   is folded into the bucket as well. Daily totals
//!   carry no category value, so the threshold leaves them as they are.

use std::collections::BTreeMap;

use serde::Serialize;
use ttn_telemetry_core::{cutoffs, format_rfc3339};

use super::store::{DAY_FIELDS, Snapshot, day_of};

/// Every aggregate is an exact 128-bit sum (see the module docs).
pub type Count = i128;

/// Most entries of one spread (versions, plans…) returned; the rest are summed as `other`.
pub const TOP: usize = 50;
/// Most days of daily totals returned.
pub const DAYS: usize = 400;

/// Everything `/api/v1/stats` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// When these stats were computed (RFC 3339, UTC).
    pub generated_at: String,
    /// The k-anonymity threshold applied: a value seen from fewer uids is counted as `other`.
    pub k_anonymity: u64,
    /// Every report ever accepted.
    pub reports_stored: Count,
    /// Identity Server deployments by their latest report.
    pub deployments: Windows,
    /// CLI installations by their latest report.
    pub cli_installations: Windows,
    /// How many of them sign their reports (have a pinned key).
    pub verified: VerifiedCounts,
    /// Entity totals over the latest report of each deployment.
    pub entities: Entities,
    /// Active end devices over the latest report of each deployment.
    pub active_end_devices: Active,
    /// Gateways per frequency plan, largest first.
    pub gateways_by_frequency_plan: Vec<Entry>,
    /// Deployments by binary version, largest first.
    pub binary_versions: Vec<Entry>,
    /// Deployments by operating system.
    pub operating_systems: Vec<Entry>,
    /// Deployments by architecture.
    pub architectures: Vec<Entry>,
    /// CLI installations by binary version, OS and arch.
    pub cli: CliSpread,
    /// Daily totals, oldest first.
    pub daily: Vec<Day>,
}

/// Counts of a kind of reporter: in total and within the recent windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Windows {
    /// Ever seen.
    pub total: Count,
    /// Latest report within the last day.
    pub last_day: Count,
    /// Within the last 7 days.
    pub last_week: Count,
    /// Within the last calendar month.
    pub last_month: Count,
}

/// Uids with a pinned key (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifiedCounts {
    /// Deployments whose reports are signed.
    pub deployments: Count,
    /// CLI installations whose reports are signed.
    pub cli_installations: Count,
}

/// Entity totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Entities {
    /// Gateways.
    pub gateways: Count,
    /// End devices.
    pub end_devices: Count,
    /// Applications.
    pub applications: Count,
    /// Standard users.
    pub users_standard: Count,
    /// Admin users.
    pub users_admin: Count,
    /// Organizations.
    pub organizations: Count,
}

/// Active end devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Active {
    /// Ever seen.
    pub total: Count,
    /// Seen in the last day (as each deployment counted it).
    pub last_day: Count,
    /// Seen in the last week.
    pub last_week: Count,
    /// Seen in the last month.
    pub last_month: Count,
}

/// One bar of a spread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// What is counted (a version, an OS, a frequency-plan id) exactly as reported, or `other`.
    pub name: String,
    /// How many.
    pub count: Count,
}

/// The spread of CLI installations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CliSpread {
    /// By binary version.
    pub binary_versions: Vec<Entry>,
    /// By OS.
    pub operating_systems: Vec<Entry>,
    /// By arch.
    pub architectures: Vec<Entry>,
    /// Installations whose latest report had no usage data (`"cli":{}`).
    pub without_usage: Count,
}

/// Totals of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Deployments that reported that day.
    pub deployments: Count,
    /// CLI installations that reported that day.
    pub cli_installations: Count,
    /// Gateways.
    pub gateways: Count,
    /// End devices.
    pub end_devices: Count,
    /// End devices active in the day before each report.
    pub active_last_day: Count,
    /// … in the week before.
    pub active_last_week: Count,
    /// … in the month before.
    pub active_last_month: Count,
    /// Applications.
    pub applications: Count,
    /// Users (standard and admin).
    pub users: Count,
    /// Organizations.
    pub organizations: Count,
}

impl Stats {
    /// Computes the stats at `now` (Unix microseconds) from a store snapshot, folding values
    /// seen from fewer than `k` uids into `other`.
    pub fn from_snapshot(now: i64, snap: Snapshot, k: u64) -> anyhow::Result<Stats> {
        let cut = cutoffs(now)?;
        let mut scopes: BTreeMap<&str, Vec<(&str, Count)>> = BTreeMap::new();
        for (scope, name, value) in &snap.counters {
            scopes
                .entry(scope.as_str())
                .or_default()
                .push((name.as_str(), *value));
        }
        let get = |scope: &str, name: &str| -> Count {
            scopes
                .get(scope)
                .and_then(|v| v.iter().find(|(n, _)| *n == name))
                .map_or(0, |(_, v)| *v)
        };
        let windows = |kind: &str, total: Count| -> Windows {
            let seen: Vec<(i64, Count)> = scopes
                .get(format!("{kind}_seen_day").as_str())
                .map(|v| {
                    v.iter()
                        .filter_map(|(d, n)| Some((d.parse().ok()?, *n)))
                        .collect()
                })
                .unwrap_or_default();
            let count = |cutoff: i64| {
                let day = day_of(cutoff);
                let whole: Count = seen.iter().filter(|(d, _)| *d > day).map(|(_, n)| n).sum();
                whole
                    + Count::from(
                        snap.partial
                            .get(&(kind.to_owned(), cutoff))
                            .copied()
                            .unwrap_or(0),
                    )
            };
            Windows {
                total,
                last_day: count(cut.last_day),
                last_week: count(cut.last_week),
                last_month: count(cut.last_month),
            }
        };
        let spread = |scope: &str| -> Vec<Entry> {
            // How many uids reported each name: the entry itself, but for plans (gateways).
            let uids = |name: &str, count: Count| -> Count {
                if scope == "plan" {
                    scopes
                        .get("plan_deployments")
                        .and_then(|v| v.iter().find(|(n, _)| *n == name))
                        .map_or(0, |(_, v)| *v)
                } else {
                    count
                }
            };
            let mut v: Vec<Entry> = scopes
                .get(scope)
                .map(|v| {
                    v.iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(name, n)| Entry {
                            name: (*name).to_owned(),
                            count: *n,
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            let all: Count = v.iter().map(|e| e.count).sum();
            // The store reads the top entries only; the rest is the spread's sum less them.
            let total = if v.len() > TOP {
                get("sum", scope)
            } else {
                all
            };
            v.truncate(TOP);
            // Every shown entry was reported by at least one uid: k ≤ 1 folds nothing.
            v.retain(|e| e.name != "other" && (k <= 1 || uids(&e.name, e.count) >= Count::from(k)));
            let other = total - v.iter().map(|e| e.count).sum::<Count>();
            if other != 0 {
                v.push(Entry {
                    name: "other".into(),
                    count: other,
                });
            }
            v
        };
        let mut daily: Vec<Day> = Vec::new();
        for (scope, fields) in scopes.range("day:"..="day;") {
            let Some(day) = scope
                .strip_prefix("day:")
                .and_then(|d| d.parse::<i64>().ok())
            else {
                continue;
            };
            let f = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, v)| *v)
            };
            daily.push(Day {
                date: date_of_day(day),
                deployments: f("deployments"),
                cli_installations: f("cli_installations"),
                gateways: f("gateways"),
                end_devices: f("end_devices"),
                active_last_day: f("active_last_day"),
                active_last_week: f("active_last_week"),
                active_last_month: f("active_last_month"),
                applications: f("applications"),
                users: f("users"),
                organizations: f("organizations"),
            });
        }
        daily.retain(|d| d.deployments > 0 || d.cli_installations > 0);
        if daily.len() > DAYS {
            daily.drain(..daily.len() - DAYS);
        }
        Ok(Stats {
            generated_at: format_rfc3339(now, 0),
            k_anonymity: k,
            reports_stored: get("meta", "reports"),
            deployments: windows("is", get("latest", "deployments")),
            cli_installations: windows("cli", get("latest", "cli_installations")),
            verified: VerifiedCounts {
                deployments: get("latest", "verified_deployments"),
                cli_installations: get("latest", "verified_cli_installations"),
            },
            entities: Entities {
                gateways: get("latest", "gateways"),
                end_devices: get("latest", "end_devices"),
                applications: get("latest", "applications"),
                users_standard: get("latest", "users_standard"),
                users_admin: get("latest", "users_admin"),
                organizations: get("latest", "organizations"),
            },
            active_end_devices: Active {
                total: get("latest", "active_total"),
                last_day: get("latest", "active_last_day"),
                last_week: get("latest", "active_last_week"),
                last_month: get("latest", "active_last_month"),
            },
            gateways_by_frequency_plan: spread("plan"),
            binary_versions: spread("is_version"),
            operating_systems: spread("is_os"),
            architectures: spread("is_arch"),
            cli: CliSpread {
                binary_versions: spread("cli_version"),
                operating_systems: spread("cli_os"),
                architectures: spread("cli_arch"),
                without_usage: get("latest", "cli_without_usage"),
            },
            daily,
        })
    }
}

/// The columns of the open data (`/api/v1/daily.csv` and `.json`), in order: the date, then
/// each day counter of the store ([`DAY_FIELDS`]); see [`Day`].
pub fn daily_columns() -> Vec<&'static str> {
    std::iter::once("date").chain(DAY_FIELDS).collect()
}

/// The open data document (`/api/v1/daily.json`).
#[derive(Serialize)]
struct DailyDoc<'a> {
    generated_at: &'a str,
    k_anonymity: u64,
    columns: &'a [&'a str],
    days: &'a [Day],
}

impl Stats {
    /// `/api/v1/daily.json`: the threshold, the column names and one object per day.
    pub fn daily_json(&self) -> String {
        serde_json::to_string(&DailyDoc {
            generated_at: &self.generated_at,
            k_anonymity: self.k_anonymity,
            columns: &daily_columns(),
            days: &self.daily,
        })
        .unwrap_or_default()
    }

    /// `/api/v1/daily.csv`: a header row of [`daily_columns`], then one row per day, oldest
    /// first (every field is a date or an integer, so nothing needs quoting).
    pub fn daily_csv(&self) -> String {
        let mut out = daily_columns().join(",");
        out.push_str("\r\n");
        for d in &self.daily {
            let row = [
                d.deployments,
                d.cli_installations,
                d.gateways,
                d.end_devices,
                d.active_last_day,
                d.active_last_week,
                d.active_last_month,
                d.applications,
                d.users,
                d.organizations,
            ];
            out.push_str(&d.date);
            for v in row {
                out.push(',');
                out.push_str(&v.to_string());
            }
            out.push_str("\r\n");
        }
        out
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = ttn_telemetry_core::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttn_telemetry_core::civil_to_unix_micros;

    #[test]
    fn long_tails_fold_into_other() {
        let mut snap = Snapshot::default();
        for i in 0..(TOP as Count + 10) {
            snap.counters
                .push(("plan".into(), format!("plan-{i:03}"), 1000 - i));
        }
        let sum = (0..(TOP as Count + 10)).map(|i| 1000 - i).sum();
        snap.counters.push(("sum".into(), "plan".into(), sum));
        snap.counters.push(("plan".into(), "gone".into(), -1));
        let now = civil_to_unix_micros(2026, 1, 1, 0);
        let s = Stats::from_snapshot(now, snap, 1).unwrap();
        let plans = &s.gateways_by_frequency_plan;
        assert_eq!(plans.len(), TOP + 1);
        assert_eq!(plans[0].name, "plan-000");
        assert_eq!(plans[TOP - 1].count, 1000 - (TOP as Count - 1));
        assert_eq!(plans[TOP].name, "other");
        assert_eq!(
            plans[TOP].count,
            (TOP as Count..TOP as Count + 10)
                .map(|i| 1000 - i)
                .sum::<Count>()
        );
        assert!(s.daily.is_empty());
    }

    #[test]
    fn values_from_fewer_than_k_uids_fold_into_other() {
        let mut snap = Snapshot::default();
        for (scope, name, v) in [
            ("plan", "COMMON", 100),
            ("plan_deployments", "COMMON", 5),
            ("plan", "RARE", 1000),
            ("plan_deployments", "RARE", 4),
            ("is_version", "3.34.0", 5),
            ("is_version", "9.9.9-custom", 4),
            ("is_version", "other", 7),
        ] {
            snap.counters.push((scope.into(), name.into(), v));
        }
        let now = civil_to_unix_micros(2026, 1, 1, 0);
        let s = Stats::from_snapshot(now, snap, 5).unwrap();
        let e = |name: &str, count: Count| Entry {
            name: name.into(),
            count,
        };
        assert_eq!(s.k_anonymity, 5);
        assert_eq!(
            s.gateways_by_frequency_plan,
            [e("COMMON", 100), e("other", 1000)]
        );
        assert_eq!(s.binary_versions, [e("3.34.0", 5), e("other", 11)]);
    }

    #[test]
    fn dates() {
        for (y, m, d) in [(1970, 1, 1), (2024, 2, 29), (2026, 11, 21), (2000, 12, 31)] {
            let day = day_of(civil_to_unix_micros(y, m, d, 0));
            assert_eq!(date_of_day(day), format!("{y:04}-{m:02}-{d:02}"));
        }
        assert_eq!(
            format_rfc3339(civil_to_unix_micros(2026, 11, 21, 3_723_000_000), 0),
            "2026-11-21T01:02:03Z"
        );
    }
}
