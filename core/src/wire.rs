//! Wire types of a telemetry report (SPEC §2). Field names are the wire names; the encoding is
//! in `write.rs` and the parser in `parse.rs`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Build and platform facts of the reporting binary.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayCounts {
    /// Live (not soft-deleted) gateways.
    pub total: u64,
    /// Live gateways per frequency plan id; a gateway counts once for each distinct id it lists.
    pub gateways_by_frequency_plan_id: BTreeMap<String, u64>,
}

/// End devices that have been seen, in total and within recent windows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndDeviceCounts {
    /// All end devices.
    pub total: u64,
    /// Devices that have been seen. The misspelled key is the real one.
    pub activate_end_devices: ActiveEndDevices,
}

/// A single total.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Total {
    /// The number of live entities.
    pub total: u64,
}

/// User counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserCounts {
    /// Live users that are not administrators.
    pub standard: u64,
    /// Live administrators.
    pub admin: u64,
}

/// Account counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountCounts {
    /// Users by role.
    pub users: UserCounts,
    /// Live organizations.
    pub organizations: Total,
}

/// Everything an Identity Server report counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandUsage {
    /// Command words, space-separated (`end-devices list`).
    pub command_path: String,
    /// Runs since the last successful report.
    pub execution_count: u64,
    /// Last run, in Unix seconds.
    pub last_used_at: u64,
}

/// How often an alias of a command was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasUsage {
    /// The command the alias stands for.
    pub command_name: String,
    /// The alias typed.
    pub alias: String,
    /// Uses since the last successful report.
    pub usage_count: u64,
}

/// Usage of a command-line tool since its last successful report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
