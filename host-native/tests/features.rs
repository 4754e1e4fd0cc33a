//! Each audience builds only what it runs (issue 12 §3): a command-line tool that embeds CLI
//! telemetry links no HTTP server, no database driver and no Redis client.

use std::process::Command;

/// The packages of `cargo tree -e normal` for this crate with only `features`.
fn normal_dependencies(features: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--locked",
            "-e",
            "normal",
            "-p",
            "ttn-lw-telemetry",
            "--no-default-features",
            "--features",
            features,
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// HTTP servers and their stacks, database drivers, Redis clients.
const SERVER_DATABASE_REDIS: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "tokio",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "postgres-protocol",
    "redis",
    "wasmtime",
    // Signing (issue 14 §2) is the agent's and the collector's: CLI telemetry sends unsigned.
    "ed25519-dalek",
    "curve25519-dalek",
];

#[test]
fn cli_telemetry_alone_has_no_http_server_database_driver_or_redis_client() {
    let deps = normal_dependencies("cli-telemetry");
    let found: Vec<&String> = deps
        .iter()
        .filter(|d| SERVER_DATABASE_REDIS.contains(&d.as_str()))
        .collect();
    assert!(found.is_empty(), "a CLI-telemetry build pulls in {found:?}");
    // It is the real build, not an empty one: the core and the HTTP client are there.
    for want in ["ttn-lw-telemetry", "ttn-telemetry-core", "ureq"] {
        assert!(
            deps.iter().any(|d| d == want),
            "{want} missing from {deps:?}"
        );
    }
}

#[test]
fn the_default_build_has_the_agent_and_the_collector() {
    // The same query sees the servers and drivers when they are asked for, so the test above
    // is not blind to them.
    let deps = normal_dependencies("agent,collector,cli-telemetry");
    for want in [
        "axum",
        "hyper",
        "rusqlite",
        "postgres",
        "tokio-postgres",
        "redis",
        "ed25519-dalek",
    ] {
        assert!(
            deps.iter().any(|d| d == want),
            "{want} missing from {deps:?}"
        );
    }
}
