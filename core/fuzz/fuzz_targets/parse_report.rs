//! The collector's parser faces the network: it must never panic, and whatever it accepts must
//! re-encode to canonical bytes that parse to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = ttn_telemetry_core::parse_report(data) {
        let canonical = report.to_bytes();
        let again = ttn_telemetry_core::parse_report(&canonical).expect("canonical bytes parse");
        assert_eq!(again, report);
        assert_eq!(again.to_bytes(), canonical);
    }
});
