//! The real binary: commands, their output bytes, exit codes, and error lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ttn_lw_telemetry::os::os_info;
use ttn_telemetry_core::{
    EntitiesCount, Identity, Inputs, Payload, build_report_bytes, compute_uid, parse_report,
};

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");
const DEFAULT_BASE: &str = "http://localhost:1885/api/v3";

fn stack_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ttn-lw-stack.yml")
}

/// Runs the binary in `dir` with only the given environment.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn uid_line(elements: &[&str]) -> String {
    format!("{}\n", compute_uid(elements).unwrap())
}

#[test]
fn uid_prints_one_line_from_the_right_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = run(d, &["uid"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), uid_line(&[DEFAULT_BASE; 5]));

    let file = stack_file();
    let file = file.to_str().unwrap();
    let o = run(d, &["-c", file, "uid"], &[]);
    assert_eq!(
        stdout(&o),
        uid_line(&["https://lorawan.example.net/api/v3"; 5])
    );

    // env beats the file, flags beat env; env lists split on spaces; flags repeat.
    let env = [("TTN_LW_TELEMETRY_UID_ELEMENTS", "e1 e2")];
    let o = run(d, &["-c", file, "uid"], &env);
    assert_eq!(stdout(&o), uid_line(&["e1", "e2"]));
    let o = run(
        d,
        &[
            "-c",
            file,
            "--telemetry.uid-elements",
            "f1",
            "uid",
            "--telemetry.uid-elements=f2",
        ],
        &env,
    );
    assert_eq!(stdout(&o), uid_line(&["f1", "f2"]));
    // The §3 test vector.
    let o = run(
        d,
        &[
            "uid",
            "--telemetry.uid-elements",
            "foo",
            "--telemetry.uid-elements",
            "bar",
        ],
        &[],
    );
    assert_eq!(
        stdout(&o),
        "wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q==\n"
    );
}

/// Arguments, environment, and what stderr must contain (nothing: the run must succeed).
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// Each bad input: exit 2, one line on stderr naming the key (or file), the value and the form.
#[test]
fn bad_configuration_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let wrong_type = write("wrong-type.yml", "telemetry:\n  enable: maybe\n");
    let bad_db = write("redis.yml", "redis:\n  database: two\n");
    let all_empty = write("empty-uid.yml", "telemetry:\n  uid-elements: ['', '']\n");
    let bad_url = write(
        "url.yml",
        "console:\n  ui:\n    is:\n      base-url: localhost:1885\n",
    );
    let unparseable = write("broken.yml", "telemetry:\n  enable: [true\n");
    let mapping = write("mapping.yml", "telemetry:\n  target:\n    url: https://x\n");
    let missing = d.join("missing.yml").to_str().unwrap().to_owned();

    let cases: Vec<Case> = vec![
        // Not a boolean ttn-lw-stack reads: off with a warning, never exit 2 (SPEC §5 "Off is
        // off"; tests/fidelity.rs checks the warning).
        (vec!["-c", &wrong_type, "uid"], vec![], vec![]),
        (
            vec!["-c", &bad_db, "uid"],
            vec![],
            vec!["redis.database", "\"two\"", "expected a whole number"],
        ),
        (
            vec!["uid"],
            vec![("TTN_LW_TELEMETRY_ENTITY_COUNT_TELEMETRY_INTERVAL", "1day")],
            vec![
                "telemetry.entity-count-telemetry.interval",
                "\"1day\"",
                "expected a positive duration",
                "TTN_LW_TELEMETRY_ENTITY_COUNT_TELEMETRY_INTERVAL",
            ],
        ),
        (
            vec!["uid", "--telemetry.entity-count-telemetry.interval", "-5m"],
            vec![],
            vec![
                "telemetry.entity-count-telemetry.interval",
                "\"-5m\"",
                "expected a positive duration",
            ],
        ),
        (
            vec!["uid", "--telemetry.target", "not a url"],
            vec![],
            vec![
                "telemetry.target",
                "\"not a url\"",
                "expected an http:// or https:// url",
                "command line",
            ],
        ),
        (
            vec!["-c", &bad_url, "uid"],
            vec![],
            vec![
                "console.ui.is.base-url",
                "\"localhost:1885\"",
                "expected an http://",
            ],
        ),
        (
            vec!["-c", &all_empty, "uid"],
            vec![],
            vec![
                "telemetry.uid-elements",
                "expected at least one non-empty element",
            ],
        ),
        (
            vec!["uid"],
            vec![("TTN_LW_TELEMETRY_UID_ELEMENTS", "   ")],
            // Spaces only split into no elements: the §3 fallback applies, so this is valid.
            vec![],
        ),
        (
            vec!["-c", &missing, "uid"],
            vec![],
            vec![&missing, "cannot be read", "expected a readable YAML file"],
        ),
        (
            vec!["-c", &unparseable, "uid"],
            vec![],
            vec![&unparseable, "cannot be parsed", "expected YAML"],
        ),
        (
            vec!["-c", &mapping, "uid"],
            vec![],
            vec!["telemetry.target is a mapping", "expected an http://"],
        ),
        (
            vec!["uid", "--is.database-uri", "mysql://root:pw-secret-1@db/is"],
            vec![],
            vec![
                "is.database-uri",
                "mysql://root:***@db/is",
                "expected a postgresql://",
            ],
        ),
        (
            vec![
                "uid",
                "--is.database-uri",
                "postgresql://root:pw-secret-1@db:54x2/is",
            ],
            vec![],
            vec![
                "is.database-uri",
                "postgresql://root:***@db:54x2/is",
                "as PostgreSQL reads it",
            ],
        ),
        (
            vec!["uid", "--no-such-key", "x"],
            vec![],
            vec!["--no-such-key"],
        ),
    ];
    for (args, env, wants) in cases {
        let o = run(d, &args, &env);
        let err = stderr(&o);
        if wants.is_empty() {
            assert!(o.status.success(), "{args:?}: {err}");
            continue;
        }
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        // clap's usage errors come with a usage block; everything of ours is one line.
        if !args.contains(&"--no-such-key") {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with("ttn-lw-telemetry: "), "{err}");
        }
        for want in wants {
            assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        }
        assert!(!err.contains("pw-secret-1"), "{err}");
    }
}

#[test]
fn passwords_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = stack_file();
    // The stack file's database host does not resolve here, and port 1 refuses: both fail to
    // connect, and the error names the database with its password masked.
    let o = run(
        dir.path(),
        &[
            "-c",
            file.to_str().unwrap(),
            "preview",
            "--is.database-uri",
            "postgresql://root:Sup3rS3cret@127.0.0.1:1/ttn_lorawan",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "ttn-lw-telemetry: IS database postgresql://root:***@127.0.0.1:1/ttn_lorawan: connecting failed: "
        ),
        "{err}"
    );
    for secret in ["Sup3rS3cret", "R3disPass", "M4ilP4ss"] {
        assert!(!err.contains(secret), "{err}");
        assert!(!stdout(&o).contains(secret));
    }
}

/// The numbers of the demo's example database (deterministic by design).
fn demo_counts() -> EntitiesCount {
    let mut e = EntitiesCount::default();
    e.gateways.total = 45;
    for (plan, n) in [
        ("AS_923", 4),
        ("AS_923_2", 3),
        ("AU_915_928_FSB_2", 4),
        ("EU_863_870", 7),
        ("EU_863_870_TTN", 14),
        ("IN_865_867", 3),
        ("US_902_928_FSB_2", 10),
    ] {
        e.gateways
            .gateways_by_frequency_plan_id
            .insert(plan.into(), n);
    }
    e.end_devices.total = 640;
    let a = &mut e.end_devices.activate_end_devices;
    (a.total, a.last_day, a.last_week, a.last_month) = (544, 160, 288, 416);
    e.applications.total = 12;
    e.accounts.users.standard = 30;
    e.accounts.users.admin = 4;
    e.accounts.organizations.total = 5;
    e
}

#[test]
fn demo_then_preview_prints_the_exact_core_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = run(d, &["demo", "--once"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        ".ttn-lw-telemetry/demo/is.sqlite",
        "POST https://telemetry.thethingsstack.io/collect every 24h",
        "How to turn it off",
        "DO_NOT_TRACK=1",
        "TTN_LW_TELEMETRY_ENABLE=false",
        "--telemetry.enable=false",
        "Delivered, as the agent delivers, to the collector the demo runs on loopback (http://127.0.0.1:",
        "delivered: HTTP 200, receipt matched",
        "signed by the deployment key ",
        ".ttn-lw-telemetry/demo/signing-key.pem, mode 0600), which the collector pinned",
        "The Telemetry Dashboard (the collector, store .ttn-lw-telemetry/demo/collector.sqlite3): http://127.0.0.1:",
        "/api/v1/stats",
        "/console/telemetry",
        "Nothing left this machine",
        "Soft-deleted rows are not counted",
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    assert!(!text.contains("until Ctrl-C"), "--once does not serve on");
    assert!(d.join(".ttn-lw-telemetry/demo/collector.sqlite3").is_file());
    let key = std::fs::metadata(d.join(".ttn-lw-telemetry/demo/signing-key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    let want = Inputs {
        identity: Identity::Elements(vec![DEFAULT_BASE.into(); 5]),
        os: os_info(),
        payload: Payload::Entities(demo_counts()),
    }
    .build()
    .unwrap()
    .to_bytes();
    // The demo shows the same bytes that preview prints, and each field of the core's view.
    assert!(text.contains(std::str::from_utf8(&want).unwrap()));
    let view = parse_report(&want).unwrap().field_view();
    for f in &view.fields {
        let shown = format!("\n   {} = {}\n", f.path, view.text(f));
        assert!(
            text.contains(&shown),
            "demo output lacks {shown:?}:\n{text}"
        );
        assert!(text.contains(&format!("\n       {}\n", f.doc.meaning)));
    }
    assert!(text.contains(
        "\n   entities_count.gateways.gateways_by_frequency_plan_id.EU_863_870_TTN = 14\n"
    ));

    let uri = "sqlite:.ttn-lw-telemetry/demo/is.sqlite";
    let o = run(d, &["preview", "--is.database-uri", uri], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut line = want.clone();
    line.push(b'\n');
    assert_eq!(o.stdout, line);
    assert!(parse_report(&want).is_ok());
    assert!(stderr(&o).contains("nothing was sent"), "{}", stderr(&o));

    // Off: the same report, and stderr says nothing is sent.
    for (args, env, reason) in [
        (
            vec!["preview"],
            vec![("DO_NOT_TRACK", "1")],
            "DO_NOT_TRACK is set",
        ),
        (
            vec!["preview", "--telemetry.enable=false"],
            vec![],
            "telemetry.enable is false",
        ),
    ] {
        let mut args = args;
        args.extend(["--is.database-uri", uri]);
        let o = run(d, &args, &env);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(o.stdout, line);
        assert!(
            stderr(&o).contains(&format!("telemetry is off ({reason}): nothing is sent")),
            "{}",
            stderr(&o)
        );
    }

    // Pretty: for people, and says so: the core's field view of the same report, one
    // `path = wire text` line per field, each followed (once per run) by its meaning.
    let o = run(d, &["preview", "--pretty", "--is.database-uri", uri], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wire form"), "{}", stderr(&o));
    let text = stdout(&o);
    let fields: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_once(" = ").unwrap())
        .collect();
    let view = parse_report(&want).unwrap().field_view();
    let want_fields: Vec<(&str, &str)> = view
        .fields
        .iter()
        .map(|f| (f.path.as_str(), view.text(f)))
        .collect();
    assert_eq!(fields, want_fields);
    let meanings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    let mut want_meanings: Vec<&str> = view.fields.iter().map(|f| f.doc.meaning).collect();
    want_meanings.dedup();
    assert_eq!(meanings, want_meanings);
}

#[test]
fn report_builds_the_core_bytes_from_an_inputs_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut counts = EntitiesCount::default();
    counts.gateways.total = 2;
    counts
        .gateways
        .gateways_by_frequency_plan_id
        .insert("EU_863_870<&>".into(), 2);
    let inputs = Inputs {
        identity: Identity::Elements(vec!["foo".into(), "bar".into()]),
        os: os_info(),
        payload: Payload::Entities(counts),
    };
    let json = inputs.to_json();
    std::fs::write(d.join("inputs.json"), &json).unwrap();
    let o = run(d, &["report", "--inputs", "inputs.json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut want = build_report_bytes(&json).unwrap();
    assert!(want.windows(6).any(|w| w == br"\u003c"));
    want.push(b'\n');
    assert_eq!(o.stdout, want);

    std::fs::write(d.join("bad.json"), b"{\"uid_elements\":[\"a\"]}").unwrap();
    for (file, want) in [
        ("bad.json", "inputs file bad.json: inputs:"),
        ("absent.json", "inputs file absent.json: cannot be read"),
    ] {
        let o = run(d, &["report", "--inputs", file], &[]);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn help_lists_every_key_as_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["preview", "--help"], &[]);
    assert!(o.status.success());
    let text = stdout(&o);
    for spec in ttn_telemetry_core::KEYS {
        assert!(text.contains(&format!("--{}", spec.key)), "{}", spec.key);
    }
    assert!(text.contains("--pretty"));
}

#[test]
fn collect_help_lists_only_the_collectors_options() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["collect", "--help"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let flags: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .collect();
    let mut want = vec!["--config".to_owned(), "--help".to_owned()];
    want.extend(
        ttn_lw_telemetry::cmd::collect::COLLECTOR_KEYS
            .iter()
            .map(|k| format!("--{}", k.key)),
    );
    assert_eq!(flags, want, "{text}");
    assert!(!text.contains("telemetry."), "no agent key: {text}");
    // A bad trusted-proxy list (given with the flag of earlier releases, a hidden alias) is
    // bad input naming the source, the key and the bad member.
    let o = run(
        dir.path(),
        &["collect", "--trusted-proxies", "10.0.0.0/8,192.0.2.0/33"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "command line: invalid value \"10.0.0.0/8,192.0.2.0/33\" for collector.trusted-proxies"
        ) && stderr(&o).contains("\"192.0.2.0/33\": the prefix length must be 0 to 32"),
        "{}",
        stderr(&o)
    );
    // The same from the environment and from a file name their source.
    let o = run(
        dir.path(),
        &["collect"],
        &[("TTN_LW_COLLECTOR_LIMITS_BODY_TIMEOUT", "soon")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("env TTN_LW_COLLECTOR_LIMITS_BODY_TIMEOUT: invalid value \"soon\" for collector.limits.body-timeout"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path().join("c.yml"), "collector:\n  listen: nowhere\n").unwrap();
    // `-c` works before the command too, as for the agent's commands.
    for args in [&["collect", "-c", "c.yml"], &["-c", "c.yml", "collect"]] {
        let o = run(dir.path(), args, &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains(
                "file c.yml: invalid value \"nowhere\" for collector.listen: expected host:port"
            ),
            "{}",
            stderr(&o)
        );
    }
    // Agent configuration before `collect` would be ignored, so it is a usage error.
    for args in [
        &[
            "--telemetry.target",
            "http://127.0.0.1:9/collect",
            "collect",
        ][..],
        &["--telemetry.enable=false", "collect"][..],
    ] {
        let o = run(dir.path(), args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("`collect` takes no agent configuration"),
            "{}",
            stderr(&o)
        );
    }
}

/// The URL after `label` on a line of the demo's output.
fn url_after(text: &str, label: &str) -> String {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    text[at + label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn demo_serves_the_dashboard_and_the_console_until_stopped() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("demo")
        .current_dir(dir.path())
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !text.contains("Serving both until Ctrl-C") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended early:\n{text}"
        );
        text.push_str(&line);
    }
    let dashboard = url_after(&text, "/collector.sqlite3): ");
    let console = url_after(&text, "(the agent's admin listener): ");
    let stats: serde_json::Value = ureq::get(format!("{dashboard}api/v1/stats"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(stats["reports_stored"], 1, "{stats}");
    let page = ureq::get(&dashboard)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );
    let mut r = ureq::get(&console).call().unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.body_mut().read_to_string().unwrap().contains("Telemetry"));
    let inputs: serde_json::Value =
        ureq::get(console.replace("/console/telemetry", "/api/v1/telemetry/inputs"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
    assert_eq!(inputs["enabled"], true);
    assert_eq!(
        inputs["last_send"]["status"],
        "delivered: HTTP 200, receipt matched"
    );
    assert!(
        inputs["target"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exits 0 on SIGTERM: {status}");
}
