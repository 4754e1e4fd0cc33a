//! Captures the compiler that builds this binary, for the report's `os.golang_version` field
//! (the key keeps its Go-era name and carries `rustc X.Y.Z`).

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
}
