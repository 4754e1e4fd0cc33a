//! Property tests: for any valid report x, parse(build(x)) == x, the bytes are stable, and
//! the field view is exact.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use ttn_telemetry_core::*;

fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    // Any Unicode scalar values, control characters and `<>&` included, except NUL, which no
    // valid report holds (`Report::validate`).
    vec(
        any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        min..max,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>())
    .prop_filter("within the string limit", |s| {
        s.len() <= limits::MAX_STRING_BYTES
    })
}

fn os() -> impl Strategy<Value = OsInfo> {
    (text(0, 12), text(0, 12), text(0, 12), text(0, 20)).prop_map(|(a, b, c, d)| OsInfo {
        operating_system: a,
        arch: b,
        binary_version: c,
        golang_version: d,
    })
}

fn entities() -> impl Strategy<Value = EntitiesCount> {
    (
        any::<u64>(),
        btree_map(text(1, 24), any::<u64>(), 0..24),
        [
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ],
        any::<u64>(),
        [any::<u64>(); 3],
    )
        .prop_map(|(gw_total, plans, mut ed, apps, [standard, admin, orgs])| {
            // One snapshot's invariants: day ≤ week ≤ month ≤ seen ≤ all; a plan ≤ gateways.
            ed.sort_unstable();
            let bound = |n: u64| {
                if gw_total == u64::MAX {
                    n
                } else {
                    n % (gw_total + 1)
                }
            };
            EntitiesCount {
                gateways: GatewayCounts {
                    total: gw_total,
                    gateways_by_frequency_plan_id: plans
                        .into_iter()
                        .map(|(k, v)| (k, bound(v)))
                        .collect(),
                },
                end_devices: EndDeviceCounts {
                    total: ed[4],
                    activate_end_devices: ActiveEndDevices {
                        total: ed[3],
                        last_day: ed[0],
                        last_week: ed[1],
                        last_month: ed[2],
                    },
                },
                applications: Total { total: apps },
                accounts: AccountCounts {
                    users: UserCounts { standard, admin },
                    organizations: Total { total: orgs },
                },
            }
        })
}

fn cli() -> impl Strategy<Value = CliUsage> {
    let command = (text(1, 30), any::<u64>(), any::<u64>()).prop_map(
        |(command_path, execution_count, last_used_at)| CommandUsage {
            command_path,
            execution_count,
            last_used_at,
        },
    );
    let alias =
        (text(1, 16), text(1, 8), any::<u64>()).prop_map(|(command_name, alias, usage_count)| {
            AliasUsage {
                command_name,
                alias,
                usage_count,
            }
        });
    (vec(command, 0..8), vec(alias, 0..8))
        .prop_map(|(commands, aliases)| CliUsage { commands, aliases })
}

/// Any valid report: an IS report with a computed UID, or a CLI report with a UUID.
pub fn report() -> impl Strategy<Value = Report> {
    prop_oneof![
        (vec(text(0, 40), 1..6), os(), entities()).prop_filter_map(
            "elements not all empty",
            |(el, os, e)| {
                Some(Report {
                    uid: compute_uid(&el).ok()?,
                    os,
                    payload: Payload::Entities(e),
                })
            }
        ),
        (any::<[u8; 16]>(), os(), cli()).prop_map(|(b, os, c)| Report {
            uid: uuid_v4_from_bytes(b),
            os,
            payload: Payload::Cli(c)
        }),
        // The reference ttn-lw-cli's form, `"cli":{}`.
        (any::<[u8; 16]>(), os()).prop_map(|(b, os)| Report {
            uid: uuid_v4_from_bytes(b),
            os,
            payload: Payload::CliWithoutUsage,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_of_build_is_identity(x in report()) {
        x.validate().unwrap();
        let bytes = x.to_bytes();
        prop_assert_eq!(parse_report(&bytes).unwrap(), x.clone());
        // Compact, one line, and what serde_json reads is the same value tree.
        prop_assert!(!bytes.contains(&b'\n'));
        let tree: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(tree["uid"].as_str().unwrap(), x.uid.as_str());
    }

    #[test]
    fn the_field_view_is_every_leaf_at_its_exact_span(x in report()) {
        // Checked against serde_json's reading of the bytes, independent of the core's writer:
        // the same bytes; one field per leaf (an empty map or array, `null` included) with
        // the same path and value; spans in wire order, each span's text that value; each
        // meaning a table row at or above the field.
        let view = x.field_view();
        prop_assert_eq!(&view.bytes, &x.to_bytes());
        let tree: serde_json::Value = serde_json::from_slice(&view.bytes).unwrap();
        let mut want = Vec::new();
        collect_leaves(&tree, String::new(), &mut want);
        let mut got = Vec::new();
        let mut end = 0;
        for f in &view.fields {
            prop_assert!(f.span.start >= end && f.span.end > f.span.start);
            end = f.span.end;
            let value: serde_json::Value = serde_json::from_str(view.text(f)).unwrap();
            got.push((f.path.clone(), value.to_string()));
            prop_assert!(f.path.starts_with(f.doc.path) && field_meaning(f.doc.path).is_some());
        }
        // serde_json's maps are sorted, not in wire order: compare as sorted lists.
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn inputs_roundtrip_and_build(x in report()) {
        let inputs = Inputs { identity: Identity::Uid(x.uid.clone()), os: x.os.clone(), payload: x.payload.clone() };
        let back = Inputs::from_json(&inputs.to_json()).unwrap();
        prop_assert_eq!(&back, &inputs);
        prop_assert_eq!(back.build().unwrap().to_bytes(), x.to_bytes());
    }

    #[test]
    fn cutoffs_are_ordered(t in -62_000_000_000_000_000i64..253_000_000_000_000_000i64) {
        let c = cutoffs(t).unwrap();
        prop_assert!(c.last_month < c.last_week && c.last_week < c.last_day && c.last_day < c.now);
        // One calendar month back is 28 to 31 days, time of day kept.
        let days = (c.now - c.last_month) / MICROS_PER_DAY;
        prop_assert!((28..=31).contains(&days));
        prop_assert_eq!((c.now - c.last_month) % MICROS_PER_DAY, 0);
    }

    #[test]
    fn mutated_reports_are_refused_or_canonical(x in report(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        // Flip one byte of a valid body: the parser must not panic, and whatever it still
        // accepts must be a valid report that round-trips through its canonical bytes.
        let mut bytes = x.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(r) = parse_report(&bytes) {
            prop_assert!(r.validate().is_ok());
            prop_assert_eq!(parse_report(&r.to_bytes()).unwrap(), r);
        } else {
            prop_assert!(bytes != x.to_bytes());
        }
    }

    #[test]
    fn passwords_never_survive_redaction(pw in "[ -~]{4,24}") {
        // Raw in a URI's user info, whatever it holds (`/`, `?`, `#`, `@`, `:`…).
        let uri = format!("postgresql://ttn:{pw}@db.example:5432/is?sslmode=require");
        prop_assume!(!"postgresql://ttn:@db.example:5432/is?sslmode=require".contains(&pw));
        let shown = redact_uri(&uri);
        prop_assert!(!shown.contains(&pw), "{} -> {}", uri, shown);
        prop_assert!(uri_secrets(&uri).contains(&pw));

        // Quoted in a conninfo string, as the driver reads it back.
        let quoted = pw.replace('\\', "\\\\").replace('\'', "\\'");
        let kv = format!("host=db.example password='{quoted}' dbname=is sslmode=require");
        prop_assume!(!"host=db.example password='' dbname=is sslmode=require".contains(&pw));
        prop_assume!(!"driver said ".contains(&pw));
        let settings = parse_conninfo(&kv).unwrap();
        prop_assert!(settings.contains(&("password".to_owned(), pw.clone())));
        let shown = redact_uri(&kv);
        prop_assert!(!shown.contains(&pw), "{} -> {}", kv, shown);
        let said = format!("driver said {pw}");
        prop_assert_eq!(mask_secrets(&said, &uri_secrets(&kv)), "driver said ***");

        // Percent-encoded in a URI: the driver reads the password back.
        let encoded: String = pw.bytes().map(|b| format!("%{b:02X}")).collect();
        let uri = format!("postgres://ttn:{encoded}@db/is");
        let settings = parse_conninfo(&uri).unwrap();
        prop_assert!(settings.contains(&("password".to_owned(), pw.clone())));
        prop_assert!(uri_secrets(&uri).contains(&pw));
    }
}

/// The leaves of a JSON value (scalars, `null`, empty objects or arrays) with their paths,
/// spelt as the field view spells them: keys joined by `.`, array items as `[i]`.
fn collect_leaves(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_leaves(c, p, out);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            for (i, c) in a.iter().enumerate() {
                collect_leaves(c, format!("{path}[{i}]"), out);
            }
        }
        leaf => out.push((path, leaf.to_string())),
    }
}
