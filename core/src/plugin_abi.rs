//! The numbers and names of the plugin ABI (`host-wasm/README.md`), defined once: the plugin
//! module (`host-wasm/plugin`) answers with them and the hosts that run it
//! (`ttn_lw_telemetry::plugin`, the parity tests) check them.

/// Version of the ABI; a host refuses a module that answers `ttn_abi_version` with another.
/// Bumped on an incompatible change only: a module may gain an export without a bump.
pub const ABI_VERSION: i32 = 1;

/// Status of a successful operation: the output holds the result.
pub const STATUS_OK: i32 = 0;

/// Status of an operation the core refused: the output holds `{"error":"<the core's message>"}`.
pub const STATUS_ERROR: i32 = 1;

/// Every export of a plugin module, as in the README's table.
pub const EXPORTS: &[&str] = &[
    "memory",
    "ttn_abi_version",
    "ttn_alloc",
    "ttn_free",
    "ttn_build_report",
    "ttn_build_report_view",
    "ttn_compute_uid",
    "ttn_fields",
    "ttn_version",
    "ttn_output_ptr",
    "ttn_output_len",
];
