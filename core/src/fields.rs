//! The one table of field meanings, shown by the Console preview, `demo` and `preview --pretty`
//! next to each field of the report's field view ([`crate::FieldView`]).

/// What one wire field is and why it is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDoc {
    /// Dotted path of the field in the report (`entities_count.gateways.total`).
    pub path: &'static str,
    /// One sentence: what the value is and why it is collected.
    pub meaning: &'static str,
}

/// Every field of a report, in wire order.
pub const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        path: "uid",
        meaning: "An anonymous deployment id: a SHA-512 hash of the UID elements (or a random UUID for a CLI), so reports from one deployment can be told apart without saying whose it is.",
    },
    FieldDoc {
        path: "os",
        meaning: "Facts about the binary that reports, so maintainers know which platforms and releases to support.",
    },
    FieldDoc {
        path: "os.operating_system",
        meaning: "The operating system the binary runs on (Go's name: linux, darwin, windows…), to know which platforms matter.",
    },
    FieldDoc {
        path: "os.arch",
        meaning: "The CPU architecture (Go's name: amd64, arm64…), to know which builds to ship.",
    },
    FieldDoc {
        path: "os.binary_version",
        meaning: "The version of the reporting software, to see how fast deployments upgrade.",
    },
    FieldDoc {
        path: "os.golang_version",
        meaning: "The compiler that built the binary (the key keeps its Go-era name), to know which toolchains are in use.",
    },
    FieldDoc {
        path: "cli",
        meaning: "Command-line tool usage since its last report; null in a deployment's report.",
    },
    FieldDoc {
        path: "cli.commands",
        meaning: "How often each command path was run and when it was last used, to learn which commands people rely on.",
    },
    FieldDoc {
        path: "cli.aliases",
        meaning: "How often each command alias was used, to learn which spellings to keep.",
    },
    FieldDoc {
        path: "entities_count",
        meaning: "How many entities the Identity Server database holds; null in a CLI's report.",
    },
    FieldDoc {
        path: "entities_count.gateways.total",
        meaning: "Gateways that are not deleted, to measure the size of the network.",
    },
    FieldDoc {
        path: "entities_count.gateways.gateways_by_frequency_plan_id",
        meaning: "Gateways per frequency plan (a gateway counts once for each plan it lists), to know which regions and plans are in use.",
    },
    FieldDoc {
        path: "entities_count.end_devices.total",
        meaning: "All end devices registered, to measure the size of deployments.",
    },
    FieldDoc {
        path: "entities_count.end_devices.activate_end_devices.total",
        meaning: "End devices that have ever been seen, to tell registered devices from ones in use.",
    },
    FieldDoc {
        path: "entities_count.end_devices.activate_end_devices.last_day",
        meaning: "End devices seen in the last day, to measure daily activity.",
    },
    FieldDoc {
        path: "entities_count.end_devices.activate_end_devices.last_week",
        meaning: "End devices seen in the last 7 days, to measure weekly activity.",
    },
    FieldDoc {
        path: "entities_count.end_devices.activate_end_devices.last_month",
        meaning: "End devices seen in the last calendar month, to measure monthly activity.",
    },
    FieldDoc {
        path: "entities_count.applications.total",
        meaning: "Applications that are not deleted, to measure how deployments are organised.",
    },
    FieldDoc {
        path: "entities_count.accounts.users.standard",
        meaning: "User accounts without administrator rights that are not deleted, to measure how many people use a deployment.",
    },
    FieldDoc {
        path: "entities_count.accounts.users.admin",
        meaning: "Administrator accounts that are not deleted, to see how deployments are run.",
    },
    FieldDoc {
        path: "entities_count.accounts.organizations.total",
        meaning: "Organizations that are not deleted, to see how teams share a deployment.",
    },
];

/// The meaning of the field at `path`, if the report has such a field.
pub fn field_meaning(path: &str) -> Option<&'static str> {
    FIELDS.iter().find(|f| f.path == path).map(|f| f.meaning)
}

/// The row that documents the field at `path`: its own, or else its nearest documented
/// ancestor's. So a map entry (`…gateways_by_frequency_plan_id.EU_863_870`) or an array item
/// (`cli.commands[0].command_path`) has its collection's meaning.
///
/// ```
/// # use ttn_telemetry_core::field_doc;
/// assert_eq!(field_doc("os.arch").unwrap().path, "os.arch");
/// assert_eq!(field_doc("cli.aliases[3].alias").unwrap().path, "cli.aliases");
/// assert!(field_doc("nope").is_none());
/// ```
pub fn field_doc(path: &str) -> Option<&'static FieldDoc> {
    let mut path = path;
    loop {
        if let Some(doc) = FIELDS.iter().find(|f| f.path == path) {
            return Some(doc);
        }
        path = &path[..path.rfind(['.', '['])?];
    }
}
