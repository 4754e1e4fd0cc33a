//! Plain inputs come from the agent's admin API and the operator's browser: building from any
//! bytes must not panic, and a report that builds must pass the collector's parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = ttn_telemetry_core::build_report_bytes(data) {
        ttn_telemetry_core::parse_report(&bytes).expect("built reports parse");
    }
});
