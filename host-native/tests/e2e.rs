//! End to end, agent → collector (issue 6), as processes: `ttn-lw-telemetry collect` on a fresh
//! store (embedded SQLite, and PostgreSQL through `TTN_TEST_PG_URL`), then `ttn-lw-telemetry send`
//! counting a seeded SQLite Identity Server database. The delivered report must be the one
//! `preview` prints, the receipt must match, `/api/v1/stats` must total its counts, and the
//! store must hold its exact bytes.

mod collect_util;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use collect_util::{Backend, fresh_store};
use serde_json::Value;
use ttn_lw_telemetry::cmd::demo::create_example;
use ttn_lw_telemetry::collect::store::Store;
use ttn_telemetry_core::sha256_hex;

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

/// Starts `collect` on a free loopback port with `--k-anonymity 1` (one deployment reports
/// here, and its values are compared with the stats); returns the process and its base URL.
// The child is returned to the caller, which waits for it in `stop`; the failure path waits too.
#[allow(clippy::zombie_processes)]
fn start_collector(dir: &Path, uri: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "collect",
            "--listen",
            "127.0.0.1:0",
            "--database-uri",
            uri,
            "--k-anonymity",
            "1",
        ])
        .current_dir(dir)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("collect ended ({status:?}) before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stderr so the collector never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return (child, url);
        }
    }
}

fn stop(mut child: Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "collect exits 0 on SIGTERM: {status}");
}

fn get_json(url: &str) -> Value {
    let text = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn agent_to_collector(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (uri, _guard) = rt.block_on(fresh_store(backend, "e2e"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("is.sqlite");
    create_example(&db).unwrap();
    let is = format!("sqlite:{}", db.display());
    let state = d.join("state");
    let state = state.to_str().unwrap();

    let (collector, base) = start_collector(d, &uri);
    let target = format!("{base}/collect");

    let preview = run(d, &["--is.database-uri", &is, "preview"]);
    assert!(
        preview.status.success(),
        "{}",
        String::from_utf8_lossy(&preview.stderr)
    );
    let bytes = preview.stdout.strip_suffix(b"\n").unwrap().to_vec();
    let sha = sha256_hex(&bytes);

    let flags = [
        "--is.database-uri",
        &is,
        "--telemetry.target",
        &target,
        "--telemetry.state-dir",
        state,
    ];
    let send = run(d, &[&flags[..], &["send", "--deadline", "30s"]].concat());
    let out = String::from_utf8_lossy(&send.stdout);
    assert!(
        send.status.success(),
        "send: {out}{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(out.contains(&sha), "send names the preview's digest: {out}");
    assert!(out.contains("receipt matched"), "{out}");

    let history = run(d, &[&flags[..], &["history"]].concat());
    let history = String::from_utf8_lossy(&history.stdout);
    let last = history
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap();
    assert!(
        last.contains("delivered HTTP 200") && last.contains("receipt matched"),
        "{history}"
    );
    assert!(last.contains(&sha), "{history}");

    // The dashboard's aggregates are the counts of the report preview printed.
    let report: Value = serde_json::from_slice(&bytes).unwrap();
    let e = &report["entities_count"];
    let stats = get_json(&format!("{base}/api/v1/stats"));
    assert_eq!(stats["reports_stored"], 1, "{stats}");
    assert_eq!(
        stats["k_anonymity"], 1,
        "the option reaches the stats: {stats}"
    );
    let totals = &stats["entities"];
    assert_eq!(totals["gateways"], e["gateways"]["total"], "{stats}");
    assert_eq!(totals["end_devices"], e["end_devices"]["total"]);
    assert_eq!(totals["applications"], e["applications"]["total"]);
    assert_eq!(
        totals["organizations"],
        e["accounts"]["organizations"]["total"]
    );
    assert_eq!(totals["users_admin"], e["accounts"]["users"]["admin"]);
    assert_eq!(totals["users_standard"], e["accounts"]["users"]["standard"]);
    assert_eq!(
        stats["active_end_devices"],
        e["end_devices"]["activate_end_devices"]
    );
    let plans: serde_json::Map<String, Value> = stats["gateways_by_frequency_plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["count"].clone()))
        .collect();
    assert_eq!(
        Value::Object(plans),
        e["gateways"]["gateways_by_frequency_plan_id"]
    );
    assert!(e["end_devices"]["total"].as_u64().unwrap() > 0);

    stop(collector);
    // The store holds the exact bytes, across the collector's restart-free shutdown.
    let stored = rt.block_on(async {
        let store = Store::open(Some(&uri)).await.unwrap();
        let all = store.all_reports().await.unwrap();
        store.close().await;
        all
    });
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sha256, sha);
    assert_eq!(
        stored[0].body, bytes,
        "the stored body is the preview bytes"
    );
}

#[test]
fn agent_to_collector_with_embedded_sqlite() {
    agent_to_collector(Backend::Sqlite);
}

#[test]
fn agent_to_collector_with_postgres() {
    agent_to_collector(Backend::Postgres);
}
