//! Captures the compiler that builds this binary, for the report's `os.golang_version` field
//! (the key keeps its Go-era name and carries `rustc X.Y.Z`), and embeds the Console widget's
//! wasm-bindgen output (`web-preview/pkg/`, built by `scripts/wasm-build.sh`) when it exists, for
//! the admin listener's `/console/telemetry/pkg/` (see `src/console.rs`). Without it the binary
//! still builds, and the page says the widget's assets are missing.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        // `rustc 1.95.0 (hash date)` → `rustc 1.95.0`.
        .map(|s| s.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .filter(|s| s.starts_with("rustc "))
        .unwrap_or_else(|| "rustc unknown".to_owned());
    println!("cargo:rustc-env=TTN_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    console_pkg();
}

fn console_pkg() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    // Only the agent serves the Console page: other builds embed nothing and watch nothing.
    if std::env::var_os("CARGO_FEATURE_AGENT").is_none() {
        std::fs::write(
            out.join("console_pkg.rs"),
            "/// No Console page in this build.\npub const PKG: &[(&str, &[u8])] = &[];\n",
        )
        .expect("writing console_pkg.rs");
        return;
    }
    let manifest =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("../web-preview");
    let pkg = web.join("pkg");
    // The directory always exists (it holds the widget's sources): watching it notices `pkg/`
    // appearing, changing or going away.
    if web.is_dir() {
        println!("cargo:rerun-if-changed={}", web.display());
    }
    let mut entries = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&pkg) {
        for e in dir.flatten() {
            let path = e.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if path.is_file() && !name.starts_with('.') {
                entries.push((name, path));
            }
        }
    }
    entries.sort();
    let mut code = String::from(
        "/// The files of `web-preview/pkg/` at build time (name, bytes).\npub const PKG: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &entries {
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("console_pkg.rs"), code).expect("writing console_pkg.rs");
}
