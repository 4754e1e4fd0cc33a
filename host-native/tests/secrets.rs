//! No secret in any output (SPEC §5, issue 11 item 8): every command of the real binary, on its
//! success and error paths, with every secret given as a flag, as an environment variable and
//! in a config file; no secret string may appear on standard output or standard error.
//!
//! Secrets: database passwords holding raw `?` and `#` (which libpq reads as part of the
//! password) or a raw `/` (which makes the URI unreadable), a quoted conninfo password with a
//! space, `/`, `#` and `?`, the credentials of the target URL (valid and malformed), the Redis
//! password and the admin token.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, Sink, TestDb, admin_url, with_dbname, with_password};

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");

/// Raw `?` and `#` in a URI's user info: libpq reads them as part of the password.
const DB_PW: &str = "Db?Pw#5530x";
/// A raw `/` ends the host part of a URI: the URI cannot be read.
const DB_PW_SLASH: &str = "Db/Pw-7741x";
/// A quoted conninfo password.
const CONN_PW: &str = "c0nn Pw/#?-8812";
const TGT_PW: &str = "Tgt-Pw-6621x";
const REDIS_PW: &str = "R3dis-Pw-4415";
const TOKEN: &str = "Adm1n-T0ken-9913";
const ALL: &[&str] = &[DB_PW, DB_PW_SLASH, CONN_PW, TGT_PW, REDIS_PW, TOKEN];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Flag,
    Env,
    File,
}

/// One configuration of secrets, and whether commands that load it should succeed.
struct Scenario {
    name: &'static str,
    keys: Vec<(&'static str, String)>,
    /// `preview` and `send` succeed (exit 0).
    works: bool,
    /// The configuration itself is refused (exit 2).
    refused: bool,
    /// `run` delivers a report.
    runs: bool,
}

struct World {
    _db: TestDb,
    sink: Sink,
    db_uri: String,
    conninfo_base: String,
}

impl World {
    fn new() -> World {
        let db = TestDb::create("secrets");
        db.load_schema();
        let url = with_dbname(&admin_url(), &db.name);
        let settings = ttn_telemetry_core::parse_conninfo(&url).unwrap();
        let get = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let conninfo_base = format!(
            "host={} port={} user={} dbname={}",
            get("host").unwrap_or_else(|| "127.0.0.1".into()),
            get("port").unwrap_or_else(|| "5432".into()),
            get("user").unwrap_or_else(|| "postgres".into()),
            db.name
        );
        World {
            db_uri: with_password(&url, DB_PW),
            conninfo_base,
            _db: db,
            sink: Sink::start(Vec::new(), Reply::Receipt(202)),
        }
    }

    fn target(&self) -> String {
        format!("http://agent:{TGT_PW}@{}/collect", self.sink.addr)
    }

    fn scenarios(&self) -> Vec<Scenario> {
        let base = |db: String, target: String| {
            vec![
                ("is.database-uri", db),
                ("telemetry.target", target),
                ("redis.password", REDIS_PW.to_owned()),
                ("telemetry.admin.token", TOKEN.to_owned()),
            ]
        };
        let redis =
            std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis_address = redis.trim_start_matches("redis://").trim_end_matches('/');
        vec![
            Scenario {
                name: "uri with raw ? and # in the password",
                keys: base(self.db_uri.clone(), self.target()),
                works: true,
                refused: false,
                runs: true,
            },
            Scenario {
                name: "conninfo with a quoted password",
                keys: base(
                    format!(
                        "{} password='{CONN_PW}' sslmode=disable",
                        self.conninfo_base
                    ),
                    self.target(),
                ),
                works: true,
                refused: false,
                runs: true,
            },
            Scenario {
                name: "uri with a raw / in the password",
                keys: base(
                    format!("postgresql://postgres:{DB_PW_SLASH}@127.0.0.1:5432/is"),
                    self.target(),
                ),
                works: false,
                refused: true,
                runs: false,
            },
            Scenario {
                name: "conninfo the driver refuses",
                keys: base(
                    format!("host=127.0.0.1 password='{CONN_PW}' sslmode=bogus"),
                    self.target(),
                ),
                works: false,
                refused: true,
                runs: false,
            },
            Scenario {
                name: "malformed target url with credentials",
                keys: base(
                    self.db_uri.clone(),
                    format!("http://agent:{TGT_PW}@ho st/collect"),
                ),
                works: false,
                refused: true,
                runs: false,
            },
            Scenario {
                name: "database that refuses connections",
                keys: base(
                    format!("postgresql://postgres:{DB_PW}@127.0.0.1:1/is?connect_timeout=2"),
                    self.target(),
                ),
                works: false,
                refused: false,
                runs: false,
            },
            Scenario {
                name: "redis that refuses the password",
                keys: {
                    let mut k = base(self.db_uri.clone(), self.target());
                    k.push(("redis.address", redis_address.to_owned()));
                    k
                },
                works: true,
                refused: false,
                runs: false,
            },
        ]
    }
}

/// `key: value` nested as ttn-lw-stack writes it, in JSON (which YAML reads).
fn yaml(keys: &[(&'static str, String)]) -> String {
    let mut root = serde_json::Map::new();
    for (key, value) in keys {
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut root;
        for p in &parts[..parts.len() - 1] {
            node = node
                .entry((*p).to_owned())
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .unwrap();
        }
        node.insert(
            parts[parts.len() - 1].to_owned(),
            serde_json::Value::String(value.clone()),
        );
    }
    serde_json::Value::Object(root).to_string()
}

fn env_name(key: &str) -> String {
    ttn_telemetry_core::env_var_name(key)
}

/// The command line and environment that give `keys` through `via`, plus the settings every
/// run needs (state directory, interval, admin listener) as flags.
fn invocation(
    dir: &Path,
    via: Via,
    keys: &[(&'static str, String)],
    command: &[&str],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
    let mut env = vec![("HOME".to_owned(), dir.display().to_string())];
    match via {
        Via::Flag => {
            for (k, v) in keys {
                args.push(format!("--{k}"));
                args.push(v.clone());
            }
        }
        Via::Env => env.extend(keys.iter().map(|(k, v)| (env_name(k), v.clone()))),
        Via::File => {
            let file = dir.join("config.yml");
            std::fs::write(&file, yaml(keys)).unwrap();
            args.push("-c".into());
            args.push(file.display().to_string());
        }
    }
    for (k, v) in [
        (
            "telemetry.state-dir",
            dir.join("state").display().to_string(),
        ),
        ("telemetry.entity-count-telemetry.interval", "1s".to_owned()),
        ("telemetry.admin.listen", "127.0.0.1:0".to_owned()),
    ] {
        args.push(format!("--{k}"));
        args.push(v);
    }
    (args, env)
}

fn command(dir: &Path, args: &[String], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `run` until it exits by itself, delivers, or logs a failure; then stops it.
fn run_agent(dir: &Path, args: &[String], env: &[(String, String)], sink: &Sink) -> (Output, bool) {
    let (out, err) = (dir.join("run.out"), dir.join("run.err"));
    let before = sink.requests().len();
    let mut child: Child = command(dir, args, env)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        // Stop at the agent's decision: the line that says how its report went ("telemetry
        // report delivered: …" or "… not delivered: …"), or a failure it logs.
        let log = std::fs::read_to_string(&err).unwrap_or_default();
        if log.contains("telemetry report ")
            || log.contains("failed")
            || log.contains("error")
            || Instant::now() > end
        {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = status.unwrap_or_else(|| {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    });
    let delivered = sink.requests().len() > before;
    let o = Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    };
    (o, delivered)
}

fn assert_no_secret(what: &str, o: &Output) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for secret in ALL {
            assert!(
                !text.contains(secret),
                "{what}: {stream} shows the secret {secret:?}:\n{text}"
            );
        }
    }
}

fn every_command_hides_every_secret(via: Via) {
    let world = World::new();
    for scenario in world.scenarios() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for cmd in [
            &["uid"][..],
            &["preview"],
            &["preview", "--pretty"],
            &["status"],
            &["send", "--deadline", "10s"],
            &["history"],
            &["report", "--inputs", "absent.json"],
            &["run"],
        ] {
            let what = format!("{:?} {} via {via:?}", cmd, scenario.name);
            let (args, env) = invocation(d, via, &scenario.keys, cmd);
            let o = if cmd[0] == "run" {
                let (o, delivered) = run_agent(d, &args, &env, &world.sink);
                assert_eq!(
                    delivered,
                    scenario.runs,
                    "{what}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                o
            } else {
                command(d, &args, &env).output().unwrap()
            };
            assert_no_secret(&what, &o);
            let err = String::from_utf8_lossy(&o.stderr);
            match cmd[0] {
                "report" => assert_eq!(o.status.code(), Some(2), "{what}: {err}"),
                _ if scenario.refused => {
                    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
                    assert!(
                        err.contains("***"),
                        "{what}: the refused value is not shown masked: {err}"
                    );
                }
                "preview" | "send" => {
                    assert_eq!(o.status.success(), scenario.works, "{what}: {err}")
                }
                "uid" | "status" | "history" => {
                    assert!(o.status.success(), "{what}: {err}")
                }
                _ => {}
            }
        }
        // What was delivered carries no secret either, and went to the sink with its credentials
        // in the Authorization header only.
        for r in world.sink.requests() {
            let body = String::from_utf8_lossy(&r.body);
            for secret in ALL {
                assert!(
                    !body.contains(secret),
                    "{}: body holds {secret}",
                    scenario.name
                );
            }
        }
    }
}

#[test]
fn every_command_hides_secrets_given_as_flags() {
    every_command_hides_every_secret(Via::Flag);
}

#[test]
fn every_command_hides_secrets_given_in_the_environment() {
    every_command_hides_every_secret(Via::Env);
}

#[test]
fn every_command_hides_secrets_given_in_a_config_file() {
    every_command_hides_every_secret(Via::File);
}

/// The collector's `--database-uri` and a usage error that quotes an argument.
#[test]
fn collector_and_usage_errors_hide_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "collect".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--database-uri".into(),
            format!("postgresql://u:{DB_PW}@127.0.0.1:1/x?connect_timeout=2"),
        ],
        vec![
            "collect".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--database-uri".into(),
            format!("host=127.0.0.1 port=1 password='{CONN_PW}' connect_timeout=2"),
        ],
        vec!["uid".into(), format!("postgresql://u:{DB_PW}@db/x")],
    ];
    for args in cases {
        let o = command(d, &args, &[]).output().unwrap();
        assert!(!o.status.success(), "{args:?}");
        assert_no_secret(&format!("{args:?}"), &o);
    }
}
