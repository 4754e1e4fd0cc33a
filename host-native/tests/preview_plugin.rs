//! `preview --plugin FILE` (feature `plugin`): the report built by the core's wasm plugin module
//! under wasmtime is byte for byte the report plain `preview` prints, on a seeded database.
//! Run by scripts/test.d/50-wasm.sh, which builds the module and sets `TTN_PLUGIN_WASM`.
#![cfg(feature = "plugin")]

use std::path::Path;
use std::process::{Command, Output};

use ttn_lw_telemetry::cmd::demo::create_example;

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

fn plugin_wasm() -> String {
    let path = std::env::var("TTN_PLUGIN_WASM").unwrap_or_default();
    assert!(
        !path.is_empty() && Path::new(&path).is_file(),
        "TTN_PLUGIN_WASM must name the built plugin module (run scripts/test.d/50-wasm.sh), got {path:?}"
    );
    path
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn preview_through_the_plugin_prints_the_same_bytes() {
    let wasm = plugin_wasm();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("is.sqlite");
    let ex = create_example(&db).unwrap();
    assert!(ex.end_devices > 0);
    let uri = format!("sqlite:{}", db.display());
    let base = ["--is.database-uri", &uri, "preview"];

    let plain = run(dir.path(), &base);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let with_plugin = run(dir.path(), &[&base[..], &["--plugin", &wasm]].concat());
    assert!(
        with_plugin.status.success(),
        "{}",
        String::from_utf8_lossy(&with_plugin.stderr)
    );
    assert!(plain.stdout.len() > 100);
    assert_eq!(
        String::from_utf8_lossy(&with_plugin.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert_eq!(with_plugin.stdout, plain.stdout);

    // Other UID elements: still the same bytes through both paths.
    let uid = [
        "--telemetry.uid-elements",
        "https://eu1.cloud.example/api/v3",
    ];
    let plain = run(dir.path(), &[&uid[..], &base[..]].concat());
    let with_plugin = run(
        dir.path(),
        &[&uid[..], &base[..], &["--plugin", &wasm]].concat(),
    );
    assert!(plain.status.success() && with_plugin.status.success());
    assert_eq!(with_plugin.stdout, plain.stdout);
}

#[test]
fn a_file_that_is_not_a_plugin_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("is.sqlite");
    create_example(&db).unwrap();
    let uri = format!("sqlite:{}", db.display());
    let bogus = dir.path().join("not.wasm");
    std::fs::write(&bogus, b"not wasm").unwrap();
    let o = run(
        dir.path(),
        &[
            "--is.database-uri",
            &uri,
            "preview",
            "--plugin",
            bogus.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "nothing is printed on failure");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("loading the plugin"), "{err}");
    assert!(err.contains("not.wasm"), "{err}");
}
