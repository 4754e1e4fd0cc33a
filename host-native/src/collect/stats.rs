//! The aggregates behind `/api/v1/stats` and the dashboard, computed from a store snapshot.
//!
//! Definitions (where SPEC §9 is silent, these are the choices):
//! - A *deployment* is an Identity Server uid; a *CLI installation* is a CLI uid. Each counts by
//!   its latest report.
//! - "Reporting in the last day/week/month": the latest report was received at or after the
//!   core's cut-offs (T − 1 day, T − 7 days, T − 1 calendar month), T being the stats time.
//! - Entity totals, gateways per frequency plan and active devices sum the latest report of
//!   every deployment ever seen. Each count is clamped to [`AGGREGATE_CLAMP`] first.
//! - Versions, OS and arch count deployments (and, separately, CLI installations) by their
//!   latest report. Long tails are cut to the [`TOP`] largest entries plus `other`.
//! - Daily totals: for each UTC day, the latest report of each deployment received that day,
//!   summed. The last [`DAYS`] days that have any report are returned, oldest first.
//!
//! [`AGGREGATE_CLAMP`]: super::store::AGGREGATE_CLAMP

use std::collections::BTreeMap;

use serde::Serialize;
use ttn_telemetry_core::{cutoffs, format_rfc3339};

use super::store::{Snapshot, day_of};

/// Most entries of one spread (versions, plans…) returned; the rest are summed as `other`.
pub const TOP: usize = 50;
/// Most days of daily totals returned.
pub const DAYS: usize = 400;

/// Everything `/api/v1/stats` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// When these stats were computed (RFC 3339, UTC).
    pub generated_at: String,
    /// Every report ever accepted.
    pub reports_stored: i64,
    /// Identity Server deployments by their latest report.
    pub deployments: Windows,
    /// CLI installations by their latest report.
    pub cli_installations: Windows,
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
    pub total: i64,
    /// Latest report within the last day.
    pub last_day: i64,
    /// Within the last 7 days.
    pub last_week: i64,
    /// Within the last calendar month.
    pub last_month: i64,
}

/// Entity totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Entities {
    /// Gateways.
    pub gateways: i64,
    /// End devices.
    pub end_devices: i64,
    /// Applications.
    pub applications: i64,
    /// Standard users.
    pub users_standard: i64,
    /// Admin users.
    pub users_admin: i64,
    /// Organizations.
    pub organizations: i64,
}

/// Active end devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Active {
    /// Ever seen.
    pub total: i64,
    /// Seen in the last day (as each deployment counted it).
    pub last_day: i64,
    /// Seen in the last week.
    pub last_week: i64,
    /// Seen in the last month.
    pub last_month: i64,
}

/// One bar of a spread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// What is counted (a version, an OS, a frequency-plan id) exactly as reported, or `other`.
    pub name: String,
    /// How many.
    pub count: i64,
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
}

/// Totals of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Deployments that reported that day.
    pub deployments: i64,
    /// CLI installations that reported that day.
    pub cli_installations: i64,
    /// Gateways.
    pub gateways: i64,
    /// End devices.
    pub end_devices: i64,
    /// End devices active in the day before each report.
    pub active_last_day: i64,
    /// … in the week before.
    pub active_last_week: i64,
    /// … in the month before.
    pub active_last_month: i64,
    /// Applications.
    pub applications: i64,
    /// Users (standard and admin).
    pub users: i64,
    /// Organizations.
    pub organizations: i64,
}

impl Stats {
    /// Computes the stats at `now` (Unix microseconds) from a store snapshot.
    pub fn from_snapshot(now: i64, snap: Snapshot) -> anyhow::Result<Stats> {
        let cut = cutoffs(now)?;
        let mut scopes: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
        for (scope, name, value) in &snap.counters {
            scopes
                .entry(scope.as_str())
                .or_default()
                .push((name.as_str(), *value));
        }
        let get = |scope: &str, name: &str| -> i64 {
            scopes
                .get(scope)
                .and_then(|v| v.iter().find(|(n, _)| *n == name))
                .map_or(0, |(_, v)| *v)
        };
        let windows = |kind: &str, total: i64| -> Windows {
            let seen: Vec<(i64, i64)> = scopes
                .get(format!("{kind}_seen_day").as_str())
                .map(|v| {
                    v.iter()
                        .filter_map(|(d, n)| Some((d.parse().ok()?, *n)))
                        .collect()
                })
                .unwrap_or_default();
            let count = |cutoff: i64| {
                let day = day_of(cutoff);
                let whole: i64 = seen.iter().filter(|(d, _)| *d > day).map(|(_, n)| n).sum();
                whole
                    + snap
                        .partial
                        .get(&(kind.to_owned(), cutoff))
                        .copied()
                        .unwrap_or(0)
            };
            Windows {
                total,
                last_day: count(cut.last_day),
                last_week: count(cut.last_week),
                last_month: count(cut.last_month),
            }
        };
        let spread = |scope: &str| -> Vec<Entry> {
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
            if v.len() > TOP {
                let other: i64 = v[TOP..].iter().map(|e| e.count).sum();
                v.truncate(TOP);
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
            reports_stored: get("meta", "reports"),
            deployments: windows("is", get("latest", "deployments")),
            cli_installations: windows("cli", get("latest", "cli_installations")),
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
            },
            daily,
        })
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
        for i in 0..(TOP as i64 + 10) {
            snap.counters
                .push(("plan".into(), format!("plan-{i:03}"), 1000 - i));
        }
        snap.counters.push(("plan".into(), "gone".into(), -1));
        let now = civil_to_unix_micros(2026, 1, 1, 0);
        let s = Stats::from_snapshot(now, snap).unwrap();
        let plans = &s.gateways_by_frequency_plan;
        assert_eq!(plans.len(), TOP + 1);
        assert_eq!(plans[0].name, "plan-000");
        assert_eq!(plans[TOP - 1].count, 1000 - (TOP as i64 - 1));
        assert_eq!(plans[TOP].name, "other");
        assert_eq!(
            plans[TOP].count,
            (TOP as i64..TOP as i64 + 10).map(|i| 1000 - i).sum::<i64>()
        );
        assert!(s.daily.is_empty());
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
