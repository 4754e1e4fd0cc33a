//! The collector's validator against hostile and malformed bodies: each case names the field
//! and the problem.

use ttn_telemetry_core::{Payload, ReportError, limits, parse_report};
use ttn_telemetry_tests::golden_vectors;

fn valid() -> String {
    let g = golden_vectors()
        .into_iter()
        .find(|g| g.name == "spec_example")
        .unwrap();
    String::from_utf8(g.expected).unwrap()
}

fn cli() -> String {
    let g = golden_vectors()
        .into_iter()
        .find(|g| g.name == "cli_report")
        .unwrap();
    String::from_utf8(g.expected).unwrap()
}

fn err(body: &[u8]) -> String {
    parse_report(body).expect_err("must be refused").to_string()
}

#[test]
fn malformed_bodies_name_field_and_problem() {
    let v = valid();
    let cases: Vec<(String, &str)> = vec![
        (
            v.replace(r#""total":2"#, r#""total":-2"#),
            "`entities_count.gateways.total`: expected an unsigned integer without fraction or exponent",
        ),
        (
            v.replace(r#""total":2"#, r#""total":2.0"#),
            "`entities_count.gateways.total`: expected an unsigned integer without fraction or exponent",
        ),
        (
            v.replace(r#""total":2"#, r#""total":2e0"#),
            "`entities_count.gateways.total`: expected an unsigned integer without fraction or exponent",
        ),
        (
            v.replace(r#""total":2"#, r#""total":18446744073709551616"#),
            "`entities_count.gateways.total`: number exceeds 18446744073709551615",
        ),
        (
            v.replace(r#""total":2"#, r#""total":"2""#),
            "`entities_count.gateways.total`: expected an unsigned integer",
        ),
        (
            v.replace(r#""arch":"amd64""#, r#""arch":5"#),
            "`os.arch`: expected a string",
        ),
        (
            v.replace(r#""arch":"amd64""#, r#""arch":"amd64","kernel":"6.1""#),
            "`os.kernel`: unknown key",
        ),
        (v.replace(r#""arch":"amd64","#, ""), "`os.arch`: missing"),
        (
            v.replace(r#""arch":"amd64""#, r#""arch":"amd64","arch":"arm64""#),
            "`os.arch`: duplicate key",
        ),
        (
            v.replace(r#""applications":{"total":1}"#, r#""applications":[1]"#),
            "`entities_count.applications`: expected an object",
        ),
        (
            v.replace(r#""US_902_928_FSB_1":1"#, r#""":1"#),
            "`entities_count.gateways.gateways_by_frequency_plan_id.`: must not be empty",
        ),
        (
            v.replace(r#""US_902_928_FSB_1":1"#, r#""US_902_928_FSB_2":1"#),
            "`entities_count.gateways.gateways_by_frequency_plan_id.US_902_928_FSB_2`: duplicate key",
        ),
        (
            v.replace(r#""US_902_928_FSB_1":1"#, r#""US_902_928_FSB_1":3"#),
            "`entities_count.gateways.gateways_by_frequency_plan_id.US_902_928_FSB_1`: exceeds gateways.total (a gateway counts once per plan)",
        ),
        (
            v.replace(r#""last_day":1"#, r#""last_day":3"#),
            "`entities_count.end_devices.activate_end_devices.last_day`: exceeds last_week",
        ),
        (
            v.replace(r#"{"total":4,"#, r#"{"total":6,"#),
            "`entities_count.end_devices.activate_end_devices.total`: exceeds end_devices.total",
        ),
        (
            v.replace("wBs9", "wBs"),
            "`uid`: expected 88 characters of padded standard base64 (64 bytes)",
        ),
        (
            v.replace(r#""cli":null"#, r#""cli":{"commands":[],"aliases":[]}"#),
            "`cli` and `entities_count` are both set",
        ),
        (v.replace(r#""cli":null,"#, ""), "`cli`: missing"),
        (String::from("[]"), "`(root)`: expected an object"),
        (
            String::from(""),
            "invalid json at byte 0: expected a json value",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(err(body.as_bytes()), expected, "body: {body}");
    }
    // Syntax errors give the byte offset of the problem.
    let at = |body: &str, needle: &str, skip: usize| body.find(needle).unwrap() + skip;
    let syntax: Vec<(String, &str)> = vec![
        (v.replace(r#""total":2"#, r#""total":02"#), "a json number"),
        (v.replace("}}}}", "}}}"), "`,` or `}`"),
        (format!("{v} x"), "end of input"),
        (v.replace("US_902_928_FSB_1", "US\\x"), "a valid escape"),
        (
            v.replace("US_902_928_FSB_1", "US\\ud800"),
            "a low surrogate escape",
        ),
        (
            v.replace("US_902_928_FSB_1", "US\u{1}"),
            "no raw control characters in a string",
        ),
    ];
    let offsets = [
        at(&syntax[0].0, ":02", 1),
        syntax[1].0.len(),
        v.len() + 1,
        at(&syntax[3].0, "\\x", 1),
        at(&syntax[4].0, "\\ud800", 6),
        at(&syntax[5].0, "\u{1}", 0),
    ];
    for ((body, expected), offset) in syntax.iter().zip(offsets) {
        assert_eq!(
            err(body.as_bytes()),
            format!("invalid json at byte {offset}: expected {expected}")
        );
    }
    let c = cli();
    let cli_cases: Vec<(String, &str)> = vec![
        (
            c.replace("0b6f1c2e-58a4", "0b6f1c2e_58a4"),
            "`uid`: expected a lower-case uuid v4 (8-4-4-4-12 hex)",
        ),
        (
            c.replace(r#""alias":"dev""#, r#""alias":"""#),
            "`cli.aliases[0].alias`: must not be empty",
        ),
        (
            c.replace(r#""execution_count":12"#, r#""execution_count":true"#),
            "`cli.commands[0].execution_count`: expected an unsigned integer",
        ),
        (
            c.replace(
                r#""entities_count":null"#,
                r#""entities_count":null,"extra":1"#,
            ),
            "`extra`: unknown key",
        ),
        (
            c.replace(r#""cli":{"#, r#""cli":null,"x":{"#)
                .replace(r#""entities_count":null"#, r#""y":null"#),
            "`x`: unknown key",
        ),
    ];
    for (body, expected) in cli_cases {
        assert_eq!(err(body.as_bytes()), expected, "body: {body}");
    }
    let none = r#"{"uid":"00000000-0000-4000-8000-000000000000","os":{"operating_system":"l","arch":"a","binary_version":"v","golang_version":"g"},"cli":null,"entities_count":null}"#;
    assert_eq!(parse_report(none.as_bytes()), Err(ReportError::NoPayload));
}

#[test]
fn hostile_input_is_bounded() {
    // Too large.
    let big = vec![b' '; limits::MAX_REPORT_BYTES + 1];
    assert_eq!(
        parse_report(&big),
        Err(ReportError::TooLarge {
            limit: limits::MAX_REPORT_BYTES
        })
    );
    // Deep nesting inside a field that must be a string, and inside the plan map.
    let deep = format!(r#"{{"uid":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    assert_eq!(err(deep.as_bytes()), "`uid`: expected a string");
    let v = valid();
    let deep_map = v.replace(
        r#""US_902_928_FSB_1":1"#,
        &format!(r#""a":{}1{}"#, "{\"a\":".repeat(20), "}".repeat(20)),
    );
    assert!(
        err(deep_map.as_bytes()).contains("expected an unsigned integer"),
        "{}",
        err(deep_map.as_bytes())
    );
    // Many map keys: refused at the limit, before the body limit matters (no body cap here).
    let many: String = (0..100_000).map(|i| format!(r#""p{i}":0,"#)).collect();
    let body = v.replace(r#""US_902_928_FSB_1":1,"#, &many);
    assert!(body.len() > limits::MAX_REPORT_BYTES);
    assert!(matches!(
        parse_report(body.as_bytes()),
        Err(ReportError::TooLarge { .. })
    ));
    let keys: String = (0..limits::MAX_OBJECT_KEYS)
        .map(|i| format!(r#""p{i}":0,"#))
        .collect();
    let body = v.replace(r#""US_902_928_FSB_1":1,"#, &keys);
    assert!(body.len() <= limits::MAX_REPORT_BYTES);
    assert_eq!(
        err(body.as_bytes()),
        format!(
            "`entities_count.gateways.gateways_by_frequency_plan_id`: more than {} entries",
            limits::MAX_OBJECT_KEYS
        )
    );
    // Long strings.
    let long = v.replace(
        "US_902_928_FSB_1",
        &"x".repeat(limits::MAX_STRING_BYTES + 1),
    );
    assert_eq!(
        err(long.as_bytes()),
        format!(
            "`entities_count.gateways.gateways_by_frequency_plan_id`: string longer than {} bytes",
            limits::MAX_STRING_BYTES
        )
    );
    // Invalid UTF-8 in a string.
    let mut bytes = v.clone().into_bytes();
    let at = v.find("US_902_928_FSB_1").unwrap();
    bytes[at] = 0xff;
    assert_eq!(err(&bytes), format!("invalid utf-8 at byte {at}"));
    // Numbers far beyond u64.
    let huge = v.replace(r#""total":2"#, &format!(r#""total":{}"#, "9".repeat(500)));
    assert_eq!(
        err(huge.as_bytes()),
        "`entities_count.gateways.total`: number exceeds 18446744073709551615"
    );
}

#[test]
fn any_json_spelling_of_a_valid_report_is_accepted() {
    let v = valid();
    let pretty: serde_json::Value = serde_json::from_str(&v).unwrap();
    let pretty = serde_json::to_string_pretty(&pretty).unwrap();
    let escaped = v.replace("US_902_928_FSB_1", "US_902_928_FSB_\\u0031");
    for body in [pretty, escaped] {
        let report = parse_report(body.as_bytes()).unwrap();
        assert_eq!(report.to_bytes(), v.as_bytes());
    }
}

fn reference_cli() -> String {
    let g = golden_vectors()
        .into_iter()
        .find(|g| g.name == "cli_reference_form")
        .unwrap();
    String::from_utf8(g.expected).unwrap()
}

/// The real ttn-lw-cli sends `"cli":{}` (its `CLITelemetry` has no fields): a CLI report without
/// usage data. It is accepted, kept apart from empty usage lists, and re-encodes to its bytes.
#[test]
fn the_reference_cli_form_is_accepted() {
    let body = r#"{"uid":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","os":{"operating_system":"linux","arch":"amd64","binary_version":"3.34.0","golang_version":"go1.23.4"},"cli":{},"entities_count":null}"#;
    let r = parse_report(body.as_bytes()).unwrap();
    assert_eq!(r.payload, Payload::CliWithoutUsage);
    assert_eq!(r.to_bytes(), body.as_bytes());
    // Any spelling of `{}` is the same report.
    let spaced = body.replace(r#""cli":{}"#, "\"cli\" : { \n }");
    assert_eq!(parse_report(spaced.as_bytes()).unwrap(), r);
    // Usage lists stay a different report, and half a usage object is still refused.
    let lists = body.replace(r#""cli":{}"#, r#""cli":{"commands":[],"aliases":[]}"#);
    assert_ne!(parse_report(lists.as_bytes()).unwrap(), r);
    let half = body.replace(r#""cli":{}"#, r#""cli":{"commands":[]}"#);
    assert_eq!(err(half.as_bytes()), "`cli.aliases`: missing");
    // Its uid is a CLI uid, never an IS one.
    let is_uid = body.replace(
        "6ba7b810-9dad-41d1-80b4-00c04fd430c8",
        &format!("{}==", "A".repeat(86)),
    );
    assert_eq!(
        err(is_uid.as_bytes()),
        "`uid`: expected a lower-case uuid v4 (8-4-4-4-12 hex)"
    );
    // The golden vector of this form builds from plain inputs with `"cli":{}` as well.
    let g = reference_cli();
    assert_eq!(
        parse_report(g.as_bytes()).unwrap().payload,
        Payload::CliWithoutUsage
    );
}

/// NUL is refused in every string field, naming the field; other control characters are kept.
#[test]
fn nul_is_refused_in_every_string_field() {
    let v = valid();
    let c = cli();
    let cases: Vec<(String, &str)> = vec![
        (
            v.replace(r#""linux""#, r#""li\u0000nux""#),
            "`os.operating_system`: must not contain U+0000 (NUL)",
        ),
        (
            v.replace(r#""amd64""#, r#""amd64\u0000""#),
            "`os.arch`: must not contain U+0000 (NUL)",
        ),
        (
            v.replace(r#""0.1.0""#, r#""a\u0000b""#),
            "`os.binary_version`: must not contain U+0000 (NUL)",
        ),
        (
            v.replace(r#""rustc 1.95.0""#, r#""\u0000""#),
            "`os.golang_version`: must not contain U+0000 (NUL)",
        ),
        (
            v.replace(r#""US_902_928_FSB_1":1"#, r#""US\u0000":1"#),
            "`entities_count.gateways.gateways_by_frequency_plan_id.US\\0`: must not contain U+0000 (NUL)",
        ),
        (
            c.replace("ttn-lw-cli end-devices list", "end\\u0000devices"),
            "`cli.commands[0].command_path`: must not contain U+0000 (NUL)",
        ),
        (
            c.replace(
                r#""command_name":"end-devices""#,
                r#""command_name":"\u0000""#,
            ),
            "`cli.aliases[0].command_name`: must not contain U+0000 (NUL)",
        ),
        (
            c.replace(r#""alias":"dev""#, r#""alias":"d\u0000""#),
            "`cli.aliases[0].alias`: must not contain U+0000 (NUL)",
        ),
    ];
    for (body, expected) in cases {
        assert_ne!(body, v);
        assert_eq!(err(body.as_bytes()), expected, "body: {body}");
    }
    // Every other control character is a valid value, kept exactly.
    let ctl = v.replace(r#""0.1.0""#, r#""a\u0001\u001f\u007f\u0085\n""#);
    let r = parse_report(ctl.as_bytes()).unwrap();
    assert_eq!(r.os.binary_version, "a\u{1}\u{1f}\u{7f}\u{85}\n");
    assert_eq!(parse_report(&r.to_bytes()).unwrap(), r);
}

/// One installation has one spelling of its uid: upper case, other UUID versions and other
/// variants are refused, so no installation counts twice.
#[test]
fn cli_uids_have_one_spelling() {
    let c = cli();
    let uid = "0b6f1c2e-58a4-4c2d-9f3e-7a1b2c3d4e5f";
    assert!(parse_report(c.as_bytes()).is_ok());
    for bad in [
        "0B6F1C2E-58A4-4C2D-9F3E-7A1B2C3D4E5F",
        "0b6f1c2e-58a4-4C2D-9f3e-7a1b2c3d4e5f",
        "0b6f1c2e-58a4-1c2d-9f3e-7a1b2c3d4e5f",
        "0b6f1c2e-58a4-5c2d-9f3e-7a1b2c3d4e5f",
        "0b6f1c2e-58a4-4c2d-7f3e-7a1b2c3d4e5f",
        "0b6f1c2e-58a4-4c2d-cf3e-7a1b2c3d4e5f",
        "{0b6f1c2e-58a4-4c2d-9f3e-7a1b2c3d4e5}",
    ] {
        assert_eq!(
            err(c.replace(uid, bad).as_bytes()),
            "`uid`: expected a lower-case uuid v4 (8-4-4-4-12 hex)",
            "{bad}"
        );
    }
}

/// Plain inputs (what the wasm faces and `report --inputs` take) read and write `"cli":{}` too,
/// and the report built from them carries it unchanged.
#[test]
fn reference_cli_form_round_trips_through_plain_inputs() {
    let g = golden_vectors()
        .into_iter()
        .find(|g| g.name == "cli_reference_form")
        .unwrap();
    let ours = ttn_telemetry_core::Inputs::from_json(&g.inputs).unwrap();
    assert_eq!(ours.payload, Payload::CliWithoutUsage);
    let back = ours.to_json();
    assert!(
        back.windows(9).any(|w| w == br#""cli":{}}"#),
        "{}",
        String::from_utf8_lossy(&back)
    );
    assert_eq!(ttn_telemetry_core::Inputs::from_json(&back).unwrap(), ours);
    let report = ours.build().unwrap();
    assert_eq!(report.payload, Payload::CliWithoutUsage);
    assert_eq!(parse_report(&report.to_bytes()).unwrap(), report);
}
