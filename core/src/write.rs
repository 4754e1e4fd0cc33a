//! Writing a report: its exact wire bytes and, when asked, its field view, in one pass.
//!
//! The functions at the end of this module are the one place that says, key by key, what a
//! report looks like on the wire (SPEC §2). They write through a small [`Writer`] that adds
//! separators and, when it records, notes each leaf value's path and byte span as it writes
//! it. So the field view is exact by construction: a span is where the writer put the bytes,
//! and no JSON is read back to find it. The parser (`parse.rs`) is the other side: it accepts
//! any spelling of a report, where the writer produces the one canonical spelling.
//!
//! A leaf is a value with no members: a string, a count, `null` (the absent payload), or an
//! empty map or array (`{}`, `[]`), which would otherwise vanish from the view.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ops::Range;

use crate::fields::{FieldDoc, field_doc};
use crate::json::{write_str, write_u64};
use crate::wire::{CliUsage, EntitiesCount, OsInfo, Payload, Report};

/// One leaf field of a report, as the core's writer wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Where the field is: keys joined by `.`, array items as `[i]`. A map entry's key is a
    /// segment as it is (not escaped): `entities_count.gateways.gateways_by_frequency_plan_id.EU_863_870`,
    /// `cli.commands[0].command_path`.
    pub path: String,
    /// The byte range of the value's exact wire text in [`FieldView::bytes`].
    pub span: Range<usize>,
    /// The row of the core's table ([`crate::FIELDS`]) that says what the field means: its own,
    /// or for a map entry or array item, its collection's.
    pub doc: &'static FieldDoc,
}

/// A report's exact wire bytes and every leaf field in them, in wire order.
///
/// ```
/// # use ttn_telemetry_core::*;
/// let inputs = br#"{"uid_elements":["foo","bar"],
///   "os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},
///   "entities_count":{"gateways":{"total":1,"gateways_by_frequency_plan_id":{"EU_863_870":1}},
///     "end_devices":{"total":0,"activate_end_devices":{"total":0,"last_day":0,"last_week":0,"last_month":0}},
///     "applications":{"total":0},"accounts":{"users":{"standard":0,"admin":1},"organizations":{"total":0}}}}"#;
/// let view = Inputs::from_json(inputs).unwrap().build().unwrap().field_view();
/// let plan = &view.fields[7];
/// assert_eq!(plan.path, "entities_count.gateways.gateways_by_frequency_plan_id.EU_863_870");
/// assert_eq!(view.text(plan), "1");
/// assert_eq!(plan.doc.path, "entities_count.gateways.gateways_by_frequency_plan_id");
/// assert_eq!((view.fields[5].path.as_str(), view.text(&view.fields[5])), ("cli", "null"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldView {
    /// The exact wire bytes, equal to [`Report::to_bytes`].
    pub bytes: Vec<u8>,
    /// The report's UID as a plain string (its wire text is the `uid` field's).
    pub uid: String,
    /// Every leaf, in the order its bytes appear.
    pub fields: Vec<Field>,
}

impl FieldView {
    /// The exact wire text of `field` (a JSON string keeps its quotes and escapes).
    pub fn text(&self, field: &Field) -> &str {
        // Spans start and end at token boundaries of UTF-8 the writer produced.
        self.bytes
            .get(field.span.clone())
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The view as compact JSON, for hosts that take data as JSON (the plugin ABI's
    /// `ttn_build_report_view`):
    /// `{"report":"<the bytes as a string>","uid":"…","fields":[{"path","text","start","end","doc","meaning"},…]}`,
    /// where `start`/`end` are byte offsets in the report and `doc` is the path of the
    /// table row that gives `meaning`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::with_capacity(4 * self.bytes.len()), false);
        w.object(|w| {
            // The writer emits UTF-8 only.
            let report = core::str::from_utf8(&self.bytes).unwrap_or_default();
            w.member("report", |w| w.string(report));
            w.member("uid", |w| w.string(&self.uid));
            w.member("fields", |w| {
                w.array(&self.fields, |w, f| {
                    w.object(|w| {
                        w.member("path", |w| w.string(&f.path));
                        w.member("text", |w| w.string(self.text(f)));
                        w.member("start", |w| w.count(f.span.start as u64));
                        w.member("end", |w| w.count(f.span.end as u64));
                        w.member("doc", |w| w.string(f.doc.path));
                        w.member("meaning", |w| w.string(f.doc.meaning));
                    })
                })
            });
        });
        w.finish().0
    }
}

/// The row a field falls back to if the table lacks it; a unit test proves none does.
const UNDOCUMENTED: FieldDoc = FieldDoc {
    path: "",
    meaning: "(not in the core's table of field meanings)",
};

impl Report {
    /// Returns the exact wire bytes: compact JSON, Go's key order and escaping.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::with_capacity(512), false);
        write_report(&mut w, self);
        w.finish().0
    }

    /// Appends the exact wire bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(core::mem::take(out), false);
        write_report(&mut w, self);
        *out = w.finish().0;
    }

    /// The exact wire bytes together with every leaf field's path, span and meaning, recorded
    /// by the writer while it wrote them.
    pub fn field_view(&self) -> FieldView {
        let mut w = Writer::new(Vec::with_capacity(512), true);
        write_report(&mut w, self);
        let (bytes, fields) = w.finish();
        FieldView {
            bytes,
            uid: self.uid.clone(),
            fields,
        }
    }
}

/// Compact JSON output that notes, when recording, each leaf's path and span.
pub(crate) struct Writer {
    out: Vec<u8>,
    /// The current object or array already holds a value: the next one needs a comma.
    comma: bool,
    view: Option<Recorder>,
}

struct Recorder {
    path: String,
    fields: Vec<Field>,
}

impl Writer {
    /// A writer appending to `out`; with `record`, it also builds the field view.
    pub(crate) fn new(out: Vec<u8>, record: bool) -> Self {
        Writer {
            out,
            comma: false,
            view: record.then(|| Recorder {
                path: String::new(),
                fields: Vec::new(),
            }),
        }
    }

    /// The bytes written, and the leaves recorded (none unless recording).
    pub(crate) fn finish(self) -> (Vec<u8>, Vec<Field>) {
        (self.out, self.view.map(|v| v.fields).unwrap_or_default())
    }

    /// `{…}`, with `members` written by [`Writer::member`] or [`Writer::entry`].
    pub(crate) fn object(&mut self, members: impl FnOnce(&mut Self)) {
        self.container(b'{', b'}', members);
    }

    /// `[…]` of `items`, each written by `each` at path segment `[i]`.
    pub(crate) fn array<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        self.container(b'[', b']', |w| {
            for (i, item) in items.into_iter().enumerate() {
                let mark = w.enter(Segment::Index(i));
                each(w, item);
                w.leave(mark);
            }
        });
    }

    /// `"key":value` for one of the report's own keys (plain ASCII, written as it is).
    pub(crate) fn member(&mut self, key: &'static str, value: impl FnOnce(&mut Self)) {
        let mark = self.enter(Segment::Key(key));
        value(self);
        self.leave(mark);
    }

    /// `"key":value` for a map entry: the key comes from the data and is escaped.
    pub(crate) fn entry(&mut self, key: &str, value: impl FnOnce(&mut Self)) {
        let mark = self.enter(Segment::Entry(key));
        value(self);
        self.leave(mark);
    }

    /// A JSON string, escaped as Go escapes it.
    pub(crate) fn string(&mut self, s: &str) {
        self.leaf(|out| write_str(out, s));
    }

    /// A count.
    pub(crate) fn count(&mut self, n: u64) {
        self.leaf(|out| write_u64(out, n));
    }

    /// `null`.
    pub(crate) fn null(&mut self) {
        self.leaf(|out| out.extend_from_slice(b"null"));
    }

    /// An object whose members are all counts, in this order.
    fn counts(&mut self, members: &[(&'static str, u64)]) {
        self.object(|w| {
            for &(key, n) in members {
                w.member(key, |w| w.count(n));
            }
        });
    }

    /// An object of counts by key; `BTreeMap<String, _>` iterates in byte order, the order
    /// Go sorts map keys in.
    fn count_map(&mut self, map: &BTreeMap<String, u64>) {
        self.object(|w| {
            for (key, n) in map {
                w.entry(key, |w| w.count(*n));
            }
        });
    }

    /// Starts a member or item: the separator, the key, and the recorded path's segment.
    /// Returns where the path goes back to in [`Writer::leave`].
    fn enter(&mut self, segment: Segment<'_>) -> usize {
        if self.comma {
            self.out.push(b',');
        }
        match segment {
            Segment::Key(key) => {
                self.out.push(b'"');
                self.out.extend_from_slice(key.as_bytes());
                self.out.extend_from_slice(b"\":");
            }
            Segment::Entry(key) => {
                write_str(&mut self.out, key);
                self.out.push(b':');
            }
            Segment::Index(_) => {}
        }
        let Some(v) = self.view.as_mut() else {
            return 0;
        };
        let mark = v.path.len();
        match segment {
            Segment::Key(key) | Segment::Entry(key) => {
                if !v.path.is_empty() {
                    v.path.push('.');
                }
                v.path.push_str(key);
            }
            Segment::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(v.path, "[{i}]");
            }
        }
        mark
    }

    fn leave(&mut self, mark: usize) {
        if let Some(v) = self.view.as_mut() {
            v.path.truncate(mark);
        }
    }

    fn container(&mut self, open: u8, close: u8, body: impl FnOnce(&mut Self)) {
        let start = self.out.len();
        let leaves = self.view.as_ref().map_or(0, |v| v.fields.len());
        self.out.push(open);
        self.comma = false;
        body(self);
        self.out.push(close);
        self.comma = true;
        // An empty map or array has no leaves of its own: it is one.
        if self.view.as_ref().is_some_and(|v| v.fields.len() == leaves) {
            self.record(start);
        }
    }

    fn leaf(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.out.len();
        write(&mut self.out);
        self.comma = true;
        self.record(start);
    }

    fn record(&mut self, start: usize) {
        if let Some(v) = self.view.as_mut() {
            v.fields.push(Field {
                doc: field_doc(&v.path).unwrap_or(&UNDOCUMENTED),
                path: v.path.clone(),
                span: start..self.out.len(),
            });
        }
    }
}

/// One step of a field's path.
#[derive(Clone, Copy)]
enum Segment<'a> {
    /// One of the report's own keys.
    Key(&'a str),
    /// A map entry's key, from the data.
    Entry(&'a str),
    /// An array item.
    Index(usize),
}

// The report's shape, key by key, in wire order (SPEC §2).

fn write_report(w: &mut Writer, r: &Report) {
    w.object(|w| {
        w.member("uid", |w| w.string(&r.uid));
        w.member("os", |w| write_os(w, &r.os));
        w.member("cli", |w| match &r.payload {
            Payload::Cli(cli) => write_cli(w, cli),
            // The reference CLI's `{}`: a leaf of its own in the view.
            Payload::CliWithoutUsage => w.object(|_| {}),
            Payload::Entities(_) => w.null(),
        });
        w.member("entities_count", |w| match &r.payload {
            Payload::Entities(e) => write_entities(w, e),
            Payload::Cli(_) | Payload::CliWithoutUsage => w.null(),
        });
    });
}

pub(crate) fn write_os(w: &mut Writer, os: &OsInfo) {
    w.object(|w| {
        w.member("operating_system", |w| w.string(&os.operating_system));
        w.member("arch", |w| w.string(&os.arch));
        w.member("binary_version", |w| w.string(&os.binary_version));
        w.member("golang_version", |w| w.string(&os.golang_version));
    });
}

pub(crate) fn write_entities(w: &mut Writer, e: &EntitiesCount) {
    let a = &e.end_devices.activate_end_devices;
    let u = &e.accounts.users;
    w.object(|w| {
        w.member("gateways", |w| {
            w.object(|w| {
                w.member("total", |w| w.count(e.gateways.total));
                w.member("gateways_by_frequency_plan_id", |w| {
                    w.count_map(&e.gateways.gateways_by_frequency_plan_id)
                });
            })
        });
        w.member("end_devices", |w| {
            w.object(|w| {
                w.member("total", |w| w.count(e.end_devices.total));
                w.member("activate_end_devices", |w| {
                    w.counts(&[
                        ("total", a.total),
                        ("last_day", a.last_day),
                        ("last_week", a.last_week),
                        ("last_month", a.last_month),
                    ])
                });
            })
        });
        w.member("applications", |w| {
            w.counts(&[("total", e.applications.total)])
        });
        w.member("accounts", |w| {
            w.object(|w| {
                w.member("users", |w| {
                    w.counts(&[("standard", u.standard), ("admin", u.admin)])
                });
                w.member("organizations", |w| {
                    w.counts(&[("total", e.accounts.organizations.total)])
                });
            })
        });
    });
}

pub(crate) fn write_cli(w: &mut Writer, cli: &CliUsage) {
    w.object(|w| {
        w.member("commands", |w| {
            w.array(&cli.commands, |w, c| {
                w.object(|w| {
                    w.member("command_path", |w| w.string(&c.command_path));
                    w.member("execution_count", |w| w.count(c.execution_count));
                    w.member("last_used_at", |w| w.count(c.last_used_at));
                })
            })
        });
        w.member("aliases", |w| {
            w.array(&cli.aliases, |w, a| {
                w.object(|w| {
                    w.member("command_name", |w| w.string(&a.command_name));
                    w.member("alias", |w| w.string(&a.alias));
                    w.member("usage_count", |w| w.count(a.usage_count));
                })
            })
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AliasUsage, CommandUsage};
    use alloc::string::ToString;
    use alloc::vec;

    fn is_report() -> Report {
        let mut e = EntitiesCount::default();
        e.gateways.total = 3;
        for (plan, n) in [("US_902_928_FSB_1", 1), ("EU<&>.x[0]\u{2028}", 2)] {
            e.gateways
                .gateways_by_frequency_plan_id
                .insert(plan.to_string(), n);
        }
        e.end_devices.total = u64::MAX;
        Report {
            uid: "u\"id".into(),
            os: OsInfo {
                operating_system: "linux".into(),
                arch: "amd64".into(),
                binary_version: "0.1.0".into(),
                golang_version: "rustc 1.95.0".into(),
            },
            payload: Payload::Entities(e),
        }
    }

    fn cli_report(cli: CliUsage) -> Report {
        Report {
            payload: Payload::Cli(cli),
            ..is_report()
        }
    }

    fn rows(view: &FieldView) -> Vec<(&str, &str, &str)> {
        view.fields
            .iter()
            .map(|f| (f.path.as_str(), view.text(f), f.doc.path))
            .collect()
    }

    #[test]
    fn the_view_is_the_wire_bytes_with_every_leaf_in_order() {
        let r = is_report();
        let view = r.field_view();
        assert_eq!(view.bytes, r.to_bytes());
        const P: &str = "entities_count.gateways.gateways_by_frequency_plan_id";
        let want = vec![
            ("uid", r#""u\"id""#, "uid"),
            ("os.operating_system", r#""linux""#, "os.operating_system"),
            ("os.arch", r#""amd64""#, "os.arch"),
            ("os.binary_version", r#""0.1.0""#, "os.binary_version"),
            (
                "os.golang_version",
                r#""rustc 1.95.0""#,
                "os.golang_version",
            ),
            ("cli", "null", "cli"),
            (
                "entities_count.gateways.total",
                "3",
                "entities_count.gateways.total",
            ),
            (
                "entities_count.gateways.gateways_by_frequency_plan_id.EU<&>.x[0]\u{2028}",
                r#"2"#,
                P,
            ),
            (
                "entities_count.gateways.gateways_by_frequency_plan_id.US_902_928_FSB_1",
                "1",
                P,
            ),
            (
                "entities_count.end_devices.total",
                "18446744073709551615",
                "entities_count.end_devices.total",
            ),
            (
                "entities_count.end_devices.activate_end_devices.total",
                "0",
                "entities_count.end_devices.activate_end_devices.total",
            ),
            (
                "entities_count.end_devices.activate_end_devices.last_day",
                "0",
                "entities_count.end_devices.activate_end_devices.last_day",
            ),
            (
                "entities_count.end_devices.activate_end_devices.last_week",
                "0",
                "entities_count.end_devices.activate_end_devices.last_week",
            ),
            (
                "entities_count.end_devices.activate_end_devices.last_month",
                "0",
                "entities_count.end_devices.activate_end_devices.last_month",
            ),
            (
                "entities_count.applications.total",
                "0",
                "entities_count.applications.total",
            ),
            (
                "entities_count.accounts.users.standard",
                "0",
                "entities_count.accounts.users.standard",
            ),
            (
                "entities_count.accounts.users.admin",
                "0",
                "entities_count.accounts.users.admin",
            ),
            (
                "entities_count.accounts.organizations.total",
                "0",
                "entities_count.accounts.organizations.total",
            ),
        ];
        assert_eq!(rows(&view), want);
        assert!(
            view.fields
                .iter()
                .all(|f| !f.doc.path.is_empty() && f.path.starts_with(f.doc.path))
        );
        // The map's key is escaped on the wire; the span covers the value only.
        let text = core::str::from_utf8(&view.bytes).unwrap();
        assert!(
            text.contains(r#""EU\u003c\u0026\u003e.x[0]\u2028":2"#),
            "{text}"
        );
    }

    #[test]
    fn empty_collections_and_the_null_payload_are_leaves() {
        let mut r = is_report();
        if let Payload::Entities(e) = &mut r.payload {
            e.gateways.gateways_by_frequency_plan_id.clear();
        }
        let view = r.field_view();
        let plans = rows(&view)
            .into_iter()
            .find(|(p, _, _)| p.ends_with("gateways_by_frequency_plan_id"))
            .unwrap();
        assert_eq!(plans.1, "{}");

        let view = cli_report(CliUsage::default()).field_view();
        let got: Vec<_> = rows(&view).into_iter().skip(5).collect();
        assert_eq!(
            got,
            vec![
                ("cli.commands", "[]", "cli.commands"),
                ("cli.aliases", "[]", "cli.aliases"),
                ("entities_count", "null", "entities_count"),
            ]
        );
    }

    #[test]
    fn array_items_are_indexed_and_share_their_collection_meaning() {
        let cli = CliUsage {
            commands: vec![
                CommandUsage {
                    command_path: "end-devices list".into(),
                    execution_count: 2,
                    last_used_at: 1_700_000_000,
                },
                CommandUsage {
                    command_path: "users get".into(),
                    execution_count: 1,
                    last_used_at: 7,
                },
            ],
            aliases: vec![AliasUsage {
                command_name: "end-devices".into(),
                alias: "dev".into(),
                usage_count: 3,
            }],
        };
        let r = cli_report(cli);
        let view = r.field_view();
        assert_eq!(view.bytes, r.to_bytes());
        let got: Vec<_> = rows(&view).into_iter().skip(5).collect();
        assert_eq!(
            got,
            vec![
                (
                    "cli.commands[0].command_path",
                    r#""end-devices list""#,
                    "cli.commands"
                ),
                ("cli.commands[0].execution_count", "2", "cli.commands"),
                ("cli.commands[0].last_used_at", "1700000000", "cli.commands"),
                (
                    "cli.commands[1].command_path",
                    r#""users get""#,
                    "cli.commands"
                ),
                ("cli.commands[1].execution_count", "1", "cli.commands"),
                ("cli.commands[1].last_used_at", "7", "cli.commands"),
                (
                    "cli.aliases[0].command_name",
                    r#""end-devices""#,
                    "cli.aliases"
                ),
                ("cli.aliases[0].alias", r#""dev""#, "cli.aliases"),
                ("cli.aliases[0].usage_count", "3", "cli.aliases"),
                ("entities_count", "null", "entities_count"),
            ]
        );
    }

    #[test]
    fn the_view_as_json_names_each_field_with_its_span() {
        let view = cli_report(CliUsage::default()).field_view();
        let json = String::from_utf8(view.to_json()).unwrap();
        assert!(
            json.starts_with(r#"{"report":"{\"uid\":\"u\\\"id\",\"os\":{"#),
            "{json}"
        );
        assert!(json.contains(r#","uid":"u\"id","fields":[{"path":"uid","text":"\"u\\\"id\"","start":7,"end":14,"doc":"uid","meaning":"An anonymous"#), "{json}");
        assert!(json.ends_with(r#"{"path":"entities_count","text":"null","start":173,"end":177,"doc":"entities_count","meaning":"How many entities the Identity Server database holds; null in a CLI's report."}]}"#), "{json}");
        assert_eq!(&view.bytes[173..177], b"null");
        assert_eq!(view.bytes.len(), 178);
    }

    #[test]
    fn write_appends_the_same_bytes() {
        let r = is_report();
        let mut out = b"prefix".to_vec();
        r.write(&mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], r.to_bytes().as_slice());
    }
}
