//! Plain inputs come from the agent's admin API and the operator's browser: building from any
//! bytes must not panic, a report that builds must pass the collector's parser, and its field
//! view must be the same bytes with every span inside them, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = ttn_telemetry_core::build_report_bytes(data) {
        let report = ttn_telemetry_core::parse_report(&bytes).expect("built reports parse");
        let view = report.field_view();
        assert_eq!(view.bytes, bytes);
        let mut end = 0;
        for f in &view.fields {
            assert!(f.span.start >= end && f.span.end > f.span.start && f.span.end <= bytes.len());
            assert!(!view.text(f).is_empty());
            end = f.span.end;
        }
    }
});
