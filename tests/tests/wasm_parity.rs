//! Native core ↔ plugin under wasmtime ↔ browser build: identical bytes, identical refusals,
//! identical field views.
//!
//! Needs the wasm builds, so it runs from `scripts/test.d/50-wasm.sh` (feature `wasm`), which
//! builds them and sets:
//! - `TTN_PLUGIN_WASM`: the plugin module (`ttn_telemetry_plugin.wasm`);
//! - `TTN_WEB_PKG`: the `wasm-bindgen --target web` output directory of `ttn-telemetry-wasm`.
//!
//! The browser path runs in node (`web-preview/tools/parity.mjs`), loading exactly the files
//! the Console page loads.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ttn_lw_telemetry::plugin::{Plugin, PluginError};
use ttn_telemetry_tests::corpus::{Case, Draw as _, corpus, golden_cases, golden_dir};
use wasmparser::{Parser, Payload};

/// Fixed seed: a failure names `generated/<seed>/<index>`, reproducible anywhere.
const SEED: u64 = 0x7474_6e5f_7761_736d;
const GENERATED: u64 = 1_200;

/// What the plugin may import (host-wasm/README.md, "Imports"): nothing.
const ALLOWED_IMPORTS: &[(&str, &str)] = &[];
/// Globals that rustc's linker exports from every wasm32 cdylib; not part of the ABI.
const LINKER_EXPORTS: &[&str] = &["__data_end", "__heap_base"];

fn env_path(var: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run scripts/test.d/50-wasm.sh, which builds the wasm modules")
    });
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn web_preview_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-preview")
}

#[test]
fn plugin_imports_nothing_outside_the_abi_table_and_exports_exactly_it() {
    let wasm = std::fs::read(env_path("TTN_PLUGIN_WASM")).unwrap();
    let mut imports = Vec::new();
    let mut exports = BTreeSet::new();
    for payload in Parser::new(0).parse_all(&wasm) {
        match payload.expect("the plugin module parses") {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.expect("import entry parses");
                    imports.push((import.module.to_owned(), import.name.to_owned()));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    exports.insert(export.expect("export entry parses").name.to_owned());
                }
            }
            _ => {}
        }
    }
    let outside: Vec<_> = imports
        .iter()
        .filter(|(m, n)| !ALLOWED_IMPORTS.contains(&(m.as_str(), n.as_str())))
        .collect();
    assert!(
        outside.is_empty(),
        "the plugin imports {outside:?}, outside the documented table {ALLOWED_IMPORTS:?}"
    );
    // What the plugin exports (host-wasm/README.md, "Exports"): exactly the core's list.
    let documented: BTreeSet<String> = ttn_telemetry_core::plugin_abi::EXPORTS
        .iter()
        .chain(LINKER_EXPORTS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        exports, documented,
        "exports differ from the documented ABI table"
    );
}

/// One path's answer: the bytes, or the refusal's message.
type Outcome = Result<Vec<u8>, String>;

/// The field view of the report built from `case`, in the native core's JSON shape
/// ([`ttn_telemetry_tests::view_json`]); `None` when the core refuses the inputs.
fn native_view(case: &Case) -> Option<serde_json::Value> {
    let report = ttn_telemetry_core::Inputs::from_json(case.inputs_json.as_bytes())
        .and_then(|i| i.build())
        .ok()?;
    Some(ttn_telemetry_tests::view_json(&report))
}

fn native(case: &Case) -> Outcome {
    ttn_telemetry_core::build_report_bytes(case.inputs_json.as_bytes()).map_err(|e| e.to_string())
}

fn plugin(p: &mut Plugin, case: &Case) -> Outcome {
    match p.build_report(case.inputs_json.as_bytes()) {
        Ok(b) => Ok(b),
        Err(PluginError::Refused(m)) => Err(m),
        Err(e) => panic!("{}: the plugin failed instead of answering: {e}", case.name),
    }
}

/// Runs every case through the browser build in node; one outcome per case, in order, with
/// the browser's field view of each report built.
fn browser(cases: &[Case]) -> Vec<(Outcome, Option<serde_json::Value>)> {
    let pkg = env_path("TTN_WEB_PKG");
    let dir = tempdir();
    let input = dir.join("cases.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for c in cases {
        // Each line is the inputs text as a JSON string, so node gets the exact text.
        writeln!(f, "{}", serde_json::Value::String(c.inputs_json.clone())).unwrap();
    }
    drop(f);
    let out = Command::new("node")
        .arg(web_preview_dir().join("tools/parity.mjs"))
        .arg(&pkg)
        .arg(&input)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs (scripts/test.d/50-wasm.sh installs it)");
    assert!(out.status.success(), "node parity runner failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let outcomes: Vec<_> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match (v.get("hex").and_then(|h| h.as_str()), v.get("error")) {
                (Some(hex), _) => (Ok(from_hex(hex)), v.get("view").cloned()),
                (None, Some(e)) => (Err(e.as_str().unwrap().to_owned()), None),
                _ => panic!("unexpected line from node: {line}"),
            }
        })
        .collect();
    assert_eq!(
        outcomes.len(),
        cases.len(),
        "node answered a different number of cases"
    );
    let _ = std::fs::remove_dir_all(&dir);
    outcomes
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from node"))
        .collect()
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ttn-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(b) => format!("Ok({})", String::from_utf8_lossy(b)),
        Err(e) => format!("Err({e})"),
    }
}

#[test]
fn native_plugin_and_browser_build_give_identical_bytes() {
    let cases = corpus(SEED, GENERATED);
    let golden = golden_cases(&golden_dir()).len();
    assert_eq!(cases.len() as u64, golden as u64 + GENERATED);
    let mut p = Plugin::load(&env_path("TTN_PLUGIN_WASM")).expect("the plugin loads");
    let browser = browser(&cases);
    let (mut same_bytes, mut same_refusals) = (0, 0);
    for (case, (b, browser_view)) in cases.iter().zip(&browser) {
        let n = native(case);
        if let Some(expected) = &case.expected {
            assert_eq!(
                n.as_deref().ok(),
                Some(expected.as_slice()),
                "{}: the native core disagrees with the golden file",
                case.name
            );
        }
        let w = plugin(&mut p, case);
        assert!(
            n == w && n == *b,
            "{} differs:\n  native:  {}\n  plugin:  {}\n  browser: {}\n  inputs: {}",
            case.name,
            show(&n),
            show(&w),
            show(b),
            case.inputs_json
        );
        // The field view: the same paths, texts, spans and meanings on all three paths.
        let view = native_view(case);
        assert_eq!(
            *browser_view, view,
            "{}: the browser's field view differs",
            case.name
        );
        if let Some(view) = &view {
            let out = p
                .build_report_view(case.inputs_json.as_bytes())
                .unwrap_or_else(|e| panic!("{}: the plugin's view failed: {e}", case.name));
            let mut plugin_view: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let report = plugin_view["report"].take();
            assert_eq!(report.as_str().map(str::as_bytes), n.as_deref().ok());
            plugin_view.as_object_mut().unwrap().remove("report");
            assert_eq!(
                &plugin_view, view,
                "{}: the plugin's field view differs",
                case.name
            );
        }
        match n {
            Ok(_) => same_bytes += 1,
            Err(_) => same_refusals += 1,
        }
    }
    eprintln!(
        "parity: {} cases ({golden} golden, {GENERATED} generated, seed {SEED:#x}): \
         {same_bytes} identical reports, {same_refusals} identical refusals",
        cases.len()
    );
    // Most cases must be real reports, or the test would prove little.
    assert!(
        same_bytes >= 1_000,
        "only {same_bytes} cases built a report"
    );
    assert!(same_refusals > 0, "no refusal was exercised");
}

#[test]
fn plugin_uid_fields_and_version_match_the_core() {
    let mut p = Plugin::load(&env_path("TTN_PLUGIN_WASM")).expect("the plugin loads");
    for i in 0..200u64 {
        let mut rng = ttn_telemetry_tests::corpus::Rng::seeded(SEED + i);
        let elements: Vec<String> = (0..1 + rng.below(5)).map(|_| rng.text(10)).collect();
        let native = ttn_telemetry_core::compute_uid(&elements).map_err(|e| e.to_string());
        let wasm = match p.compute_uid(&elements) {
            Ok(u) => Ok(u),
            Err(PluginError::Refused(m)) => Err(m),
            Err(e) => panic!("plugin failed: {e}"),
        };
        assert_eq!(native, wasm, "elements {elements:?}");
    }
    let fields: serde_json::Value = serde_json::from_slice(&p.fields_json().unwrap()).unwrap();
    let fields = fields.as_array().unwrap();
    assert_eq!(fields.len(), ttn_telemetry_core::FIELDS.len());
    for (row, doc) in fields.iter().zip(ttn_telemetry_core::FIELDS) {
        assert_eq!(row["path"], doc.path);
        assert_eq!(row["meaning"], doc.meaning);
    }
    let v: serde_json::Value = serde_json::from_slice(&p.version_json().unwrap()).unwrap();
    assert_eq!(v["version"], ttn_telemetry_core::VERSION);
}
