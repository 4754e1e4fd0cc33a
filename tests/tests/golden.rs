//! Golden vectors: plain inputs → exact bytes, checked against an independent oracle
//! (`golden/oracle.py`, run here with `python3`), and parsed back by the collector's validator.

use ttn_telemetry_core::{Inputs, build_report_bytes, parse_report};
use ttn_telemetry_tests::{golden_dir, golden_vectors};

/// The files under `golden/` are exactly what the Python oracle writes, so the vectors below are
/// two independent implementations agreeing, not the core checked against its own output.
#[test]
fn golden_files_are_the_oracles() {
    let out = std::process::Command::new("python3")
        .arg("oracle.py")
        .arg("--check")
        .current_dir(golden_dir())
        .output()
        .unwrap_or_else(|e| panic!("running python3 golden/oracle.py (install python3): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the golden files differ from the oracle's:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every vector the tests below read is one the oracle wrote (inputs and expected bytes).
    let files = 2 * golden_vectors().len();
    assert!(
        text.contains(&format!("{files} of {files} files agree")),
        "{text}"
    );
}

#[test]
fn inputs_build_the_exact_expected_bytes() {
    for g in golden_vectors() {
        let bytes = build_report_bytes(&g.inputs).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&g.expected),
            "golden vector {}",
            g.name
        );
    }
}

#[test]
fn expected_bytes_parse_back_to_the_built_report() {
    for g in golden_vectors() {
        let built = Inputs::from_json(&g.inputs).unwrap().build().unwrap();
        let parsed = parse_report(&g.expected).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(parsed, built, "{}", g.name);
        assert_eq!(parsed.to_bytes(), g.expected, "{}", g.name);
    }
}

#[test]
fn plain_inputs_roundtrip_through_json() {
    for g in golden_vectors() {
        let inputs = Inputs::from_json(&g.inputs).unwrap();
        assert_eq!(
            Inputs::from_json(&inputs.to_json()).unwrap(),
            inputs,
            "{}",
            g.name
        );
    }
}

#[test]
fn spec_vectors() {
    let spec = golden_vectors()
        .into_iter()
        .find(|g| g.name == "spec_example")
        .unwrap();
    // The example of SPEC §2, with the UID of SPEC §3's test vector.
    assert_eq!(
        String::from_utf8(spec.expected).unwrap(),
        concat!(
            r#"{"uid":"wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q==","#,
            r#""os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},"cli":null,"#,
            r#""entities_count":{"gateways":{"total":2,"gateways_by_frequency_plan_id":{"US_902_928_FSB_1":1,"US_902_928_FSB_2":1}},"#,
            r#""end_devices":{"total":5,"activate_end_devices":{"total":4,"last_day":1,"last_week":2,"last_month":3}},"#,
            r#""applications":{"total":1},"accounts":{"users":{"standard":3,"admin":1},"organizations":{"total":0}}}}"#
        )
    );
}

#[test]
fn inputs_errors_are_clear() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"os":{"operating_system":"l","arch":"a","binary_version":"v","golang_version":"g"},"cli":{"commands":[],"aliases":[]}}"#,
            "inputs: give exactly one of `uid_elements` and `uid`",
        ),
        (
            r#"{"uid_elements":["a"],"os":{"operating_system":"l","arch":"a","binary_version":"v","golang_version":"g"}}"#,
            "inputs: give exactly one of `entities_count` and `cli`",
        ),
        (
            r#"{"uid_elements":["",""],"os":{"operating_system":"l","arch":"a","binary_version":"v","golang_version":"g"},"cli":{"commands":[],"aliases":[]}}"#,
            "inputs: uid elements are all empty: every such deployment would share one id",
        ),
        (
            r#"{"uid":"not-a-uuid","os":{"operating_system":"l","arch":"a","binary_version":"v","golang_version":"g"},"cli":{"commands":[],"aliases":[]}}"#,
            "inputs: `uid`: expected a lower-case uuid v4 (8-4-4-4-12 hex)",
        ),
    ];
    for (json, msg) in cases {
        assert_eq!(
            build_report_bytes(json.as_bytes()).unwrap_err().to_string(),
            *msg
        );
    }
    let err = build_report_bytes(br#"{"uid":"x","bogus":1}"#).unwrap_err();
    assert_eq!(err.to_string(), "inputs: `bogus`: unknown key");
    let err = build_report_bytes(br#"{"uid":"x"}"#).unwrap_err();
    assert_eq!(err.to_string(), "inputs: `os`: missing");
    let err = build_report_bytes(br#"{"uid":"x","os":{}} trailing"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("inputs: `os.operating_system`: missing"),
        "{err}"
    );
    let long = format!(
        r#"{{"uid_elements":["{}"]}}"#,
        "x".repeat(ttn_telemetry_core::MAX_UID_ELEMENT_BYTES + 1)
    );
    let err = build_report_bytes(long.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inputs: `uid_elements[0]`: string longer than 2048 bytes"
    );
}
