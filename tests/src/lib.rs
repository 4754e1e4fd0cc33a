//! Shared helpers for the cross-host tests.

pub mod corpus;

use std::path::PathBuf;

/// One golden vector: plain inputs and the exact bytes they must become.
#[derive(Debug)]
pub struct Golden {
    /// File stem, e.g. `spec_example`.
    pub name: String,
    /// The plain-inputs JSON.
    pub inputs: Vec<u8>,
    /// The exact expected report bytes.
    pub expected: Vec<u8>,
}

/// Directory of the golden vectors (`tests/golden`).
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Every golden vector, sorted by name. Panics if the corpus is missing or incomplete, so a
/// test over it can never pass vacuously.
pub fn golden_vectors() -> Vec<Golden> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".inputs.json") else {
            continue;
        };
        let expected_path = path.with_file_name(format!("{stem}.expected"));
        out.push(Golden {
            name: stem.to_owned(),
            inputs: std::fs::read(&path).expect("read inputs"),
            expected: std::fs::read(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 9,
        "golden corpus incomplete: {} vectors",
        out.len()
    );
    out
}

/// The native core's field view of `report` as the faces return it, without the report bytes
/// (the browser's `buildReportView` has them as `bytes`, the plugin's output as `report`):
/// `{"uid","fields":[{"path","text","start","end","doc","meaning"}]}`.
pub fn view_json(report: &ttn_telemetry_core::Report) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(&report.field_view().to_json()).expect("the core writes JSON");
    v.as_object_mut().expect("an object").remove("report");
    v
}
