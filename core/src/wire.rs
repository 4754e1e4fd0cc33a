//! Wire types of a telemetry report (SPEC §2) and their exact encoding.
//!
//! Field names are the wire names, so the serde form of these types (used for plain inputs,
//! see [`crate::Inputs`]) has the same shape as the report itself.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::json::{write_key, write_str, write_u64};

/// Build and platform facts of the reporting binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsInfo {
    /// Operating system, by Go's name (`linux`, `darwin`, `windows`, `freebsd`, …).
    pub operating_system: String,
    /// CPU architecture, by Go's name (`amd64`, `arm64`, `386`, `arm`, …).
    pub arch: String,
    /// Version of the reporting package.
    pub binary_version: String,
    /// The compiler that built the binary; the key keeps its Go-era name (`rustc 1.95.0`).
    pub golang_version: String,
}

impl OsInfo {
    /// Maps Rust's `std::env::consts::OS` value to the name Go (and the collector) uses.
    pub fn go_os_name(rust_os: &str) -> &str {
        match rust_os {
            "macos" => "darwin",
            other => other,
        }
    }

    /// Maps Rust's `std::env::consts::ARCH` value to the name Go (and the collector) uses.
    pub fn go_arch_name(rust_arch: &str) -> &str {
        match rust_arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64",
            "mips64" => "mips64",
            "wasm32" | "wasm64" => "wasm",
            // `arm`, `riscv64`, `s390x`, `loongarch64` are spelled the same. Rust has no
            // separate `ppc64le`: a host that knows its endianness passes that itself.
            other => other,
        }
    }
}

/// Gateway counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayCounts {
    /// Live (not soft-deleted) gateways.
    pub total: u64,
    /// Live gateways per frequency plan id; a gateway counts once for each distinct id it lists.
    pub gateways_by_frequency_plan_id: BTreeMap<String, u64>,
}

/// End devices that have been seen, in total and within recent windows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveEndDevices {
    /// End devices with a `last_seen_at`.
    pub total: u64,
    /// Seen after T − 1 day.
    pub last_day: u64,
    /// Seen after T − 7 days.
    pub last_week: u64,
    /// Seen after T − 1 calendar month.
    pub last_month: u64,
}

/// End device counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndDeviceCounts {
    /// All end devices.
    pub total: u64,
    /// Devices that have been seen. The misspelled key is the real one.
    pub activate_end_devices: ActiveEndDevices,
}

/// A single total.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Total {
    /// The number of live entities.
    pub total: u64,
}

/// User counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCounts {
    /// Live users that are not administrators.
    pub standard: u64,
    /// Live administrators.
    pub admin: u64,
}

/// Account counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCounts {
    /// Users by role.
    pub users: UserCounts,
    /// Live organizations.
    pub organizations: Total,
}

/// Everything an Identity Server report counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitiesCount {
    /// Gateways.
    pub gateways: GatewayCounts,
    /// End devices.
    pub end_devices: EndDeviceCounts,
    /// Applications.
    pub applications: Total,
    /// Users and organizations.
    pub accounts: AccountCounts,
}

/// How often one command path of a CLI was run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandUsage {
    /// Command words, space-separated (`end-devices list`).
    pub command_path: String,
    /// Runs since the last successful report.
    pub execution_count: u64,
    /// Last run, in Unix seconds.
    pub last_used_at: u64,
}

/// How often an alias of a command was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasUsage {
    /// The command the alias stands for.
    pub command_name: String,
    /// The alias typed.
    pub alias: String,
    /// Uses since the last successful report.
    pub usage_count: u64,
}

/// Usage of a command-line tool since its last successful report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliUsage {
    /// Per command path.
    pub commands: Vec<CommandUsage>,
    /// Per alias.
    pub aliases: Vec<AliasUsage>,
}

/// What a report is about: an Identity Server's entities, or a CLI's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An Identity Server report (`"cli":null`).
    Entities(EntitiesCount),
    /// A CLI report (`"entities_count":null`).
    Cli(CliUsage),
    /// A CLI report without usage data, `"cli":{}`: what the reference ttn-lw-cli sends (its
    /// `CLITelemetry` struct has no fields). It is a CLI installation all the same; it differs
    /// from [`Payload::Cli`] with empty lists in its bytes, so it is its own variant and the
    /// bytes round-trip exactly.
    CliWithoutUsage,
}

/// A complete report, ready to encode.
///
/// Build one from [`crate::Inputs::build`] (which computes and checks the UID) or get one from
/// [`crate::parse_report`]. Both guarantee [`Report::validate`] passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Deployment id (IS) or installation UUID (CLI).
    pub uid: String,
    /// Build and platform facts.
    pub os: OsInfo,
    /// Entity counts or CLI usage.
    pub payload: Payload,
}

impl Report {
    /// Returns the exact wire bytes: compact JSON, Go's key order and escaping.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write(&mut out);
        out
    }

    /// Appends the exact wire bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        write_key(out, "uid");
        write_str(out, &self.uid);
        out.push(b',');
        write_key(out, "os");
        write_os(out, &self.os);
        out.push(b',');
        write_key(out, "cli");
        match &self.payload {
            Payload::Cli(cli) => write_cli(out, cli),
            Payload::CliWithoutUsage => out.extend_from_slice(b"{}"),
            Payload::Entities(_) => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        write_key(out, "entities_count");
        match &self.payload {
            Payload::Entities(e) => write_entities(out, e),
            Payload::Cli(_) | Payload::CliWithoutUsage => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// Writes `{"k1":v1,"k2":v2,…}` for fields that are all counts.
fn write_counts(out: &mut Vec<u8>, fields: &[(&str, u64)]) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, k);
        write_u64(out, *v);
    }
    out.push(b'}');
}

pub(crate) fn write_os(out: &mut Vec<u8>, os: &OsInfo) {
    let fields = [
        ("operating_system", &os.operating_system),
        ("arch", &os.arch),
        ("binary_version", &os.binary_version),
        ("golang_version", &os.golang_version),
    ];
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, k);
        write_str(out, v);
    }
    out.push(b'}');
}

pub(crate) fn write_entities(out: &mut Vec<u8>, e: &EntitiesCount) {
    out.extend_from_slice(b"{\"gateways\":{\"total\":");
    write_u64(out, e.gateways.total);
    out.extend_from_slice(b",\"gateways_by_frequency_plan_id\":{");
    // BTreeMap<String, _> iterates in byte order, which is the order Go sorts map keys in.
    for (i, (plan, n)) in e.gateways.gateways_by_frequency_plan_id.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, plan);
        write_u64(out, *n);
    }
    out.extend_from_slice(b"}},\"end_devices\":{\"total\":");
    write_u64(out, e.end_devices.total);
    out.extend_from_slice(b",\"activate_end_devices\":");
    let a = &e.end_devices.activate_end_devices;
    write_counts(
        out,
        &[
            ("total", a.total),
            ("last_day", a.last_day),
            ("last_week", a.last_week),
            ("last_month", a.last_month),
        ],
    );
    out.extend_from_slice(b"},\"applications\":");
    write_counts(out, &[("total", e.applications.total)]);
    out.extend_from_slice(b",\"accounts\":{\"users\":");
    let u = &e.accounts.users;
    write_counts(out, &[("standard", u.standard), ("admin", u.admin)]);
    out.extend_from_slice(b",\"organizations\":");
    write_counts(out, &[("total", e.accounts.organizations.total)]);
    out.extend_from_slice(b"}}");
}

pub(crate) fn write_cli(out: &mut Vec<u8>, cli: &CliUsage) {
    out.extend_from_slice(b"{\"commands\":[");
    for (i, c) in cli.commands.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        write_key(out, "command_path");
        write_str(out, &c.command_path);
        out.extend_from_slice(b",\"execution_count\":");
        write_u64(out, c.execution_count);
        out.extend_from_slice(b",\"last_used_at\":");
        write_u64(out, c.last_used_at);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"aliases\":[");
    for (i, a) in cli.aliases.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        write_key(out, "command_name");
        write_str(out, &a.command_name);
        out.push(b',');
        write_key(out, "alias");
        write_str(out, &a.alias);
        out.extend_from_slice(b",\"usage_count\":");
        write_u64(out, a.usage_count);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}
