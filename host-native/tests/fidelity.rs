//! Issue 10: the real binary reads configuration exactly as `ttn-lw-stack` does (lorawan-stack
//! `pkg/config` on viper 1.19, pflag 1.0.5 and cast 1.7). Every test runs the binary with an
//! empty environment plus its own `HOME`, `XDG_CONFIG_HOME` and working directory (temp dirs),
//! so the operator's own files never leak in.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Reply, Sink};
use ttn_telemetry_core::compute_uid;

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");
const DEFAULT_BASE: &str = "http://localhost:1885/api/v3";

/// One test's own machine: a home, a user config dir and a working directory.
struct Machine {
    root: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let m = Machine {
            root: tempfile::tempdir().unwrap(),
        };
        for d in ["home", "xdg", "work"] {
            std::fs::create_dir_all(m.root.path().join(d)).unwrap();
        }
        m
    }
    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }
    fn xdg(&self) -> PathBuf {
        self.root.path().join("xdg")
    }
    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }
    /// Writes `text` to `dir/name` and returns the path.
    fn write(&self, dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// The binary in `work`, with `HOME`, `XDG_CONFIG_HOME`, `PWD` and `env` only.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.xdg())
            .env("PWD", self.work());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
    /// `run` that must succeed; returns stdout.
    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let o = self.run(args, env);
        assert!(
            o.status.success(),
            "{args:?} {env:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// The UID the binary computes.
    fn uid(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut a = args.to_vec();
        a.push("uid");
        self.ok(&a, env).trim_end().to_owned()
    }
    /// The `status` output.
    fn status(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut a = args.to_vec();
        a.push("status");
        self.ok(&a, env)
    }
}

fn uid_of(elements: &[&str]) -> String {
    compute_uid(elements).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The status line of one setting.
fn setting<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("status lacks {key}:\n{status}"))
}

fn is_on(status: &str) -> bool {
    let first = status.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("telemetry: on") || first.starts_with("telemetry: off"),
        "{status}"
    );
    first.starts_with("telemetry: on")
}

fn file_yml(name: &str) -> String {
    format!("telemetry:\n  uid-elements: [{name}]\n")
}

/// Item 1: `./.ttn-lw-stack.yml`, `~/.ttn-lw-stack.yml`, `<user config dir>/.ttn-lw-stack.yml`
/// are read when present, the one listed first (working dir, then home, then config dir)
/// taking precedence, and only when neither `-c` nor `TTN_LW_CONFIG` names files.
#[test]
fn default_files_are_read_in_the_reference_order() {
    let m = Machine::new();
    const F: &str = ".ttn-lw-stack.yml";
    assert_eq!(m.uid(&[], &[]), uid_of(&[DEFAULT_BASE; 5]));
    assert!(m.status(&[], &[]).contains("config files: none"));

    // The user config dir alone: `telemetry: {enable: false}` there turns telemetry off.
    let xdg_file = m.write(
        &m.xdg(),
        F,
        "telemetry:\n  enable: false\n  uid-elements: [xdg]\n  target: https://xdg.example/collect\n",
    );
    let s = m.status(&[], &[]);
    assert!(!is_on(&s), "{s}");
    assert!(
        setting(&s, "telemetry.enable").ends_with(&format!("[file {}]", xdg_file.display())),
        "{s}"
    );
    assert_eq!(m.uid(&[], &[]), uid_of(&["xdg"]));

    // Home beats the config dir; what home does not set still comes from the config dir.
    let home_file = m.write(&m.home(), F, &file_yml("home"));
    assert_eq!(m.uid(&[], &[]), uid_of(&["home"]));
    let s = m.status(&[], &[]);
    assert!(!is_on(&s), "enable still from the config dir: {s}");
    assert!(setting(&s, "telemetry.target").contains("https://xdg.example/collect"));

    // The working directory beats both.
    let work_file = m.write(
        &m.work(),
        F,
        "telemetry:\n  uid-elements: [work]\n  enable: true\n",
    );
    assert_eq!(m.uid(&[], &[]), uid_of(&["work"]));
    let s = m.status(&[], &[]);
    assert!(is_on(&s), "{s}");
    assert!(
        s.contains(&format!(
            "config files (the first listed takes precedence): {} (default location), {} (default location), {} (default location)",
            work_file.display(),
            home_file.display(),
            xdg_file.display()
        )),
        "{s}"
    );

    // -c or TTN_LW_CONFIG: the default files are not read at all.
    let named = m.write(
        &m.root.path().join("etc"),
        "named.yml",
        "console:\n  ui:\n    is:\n      base-url: https://named.example/api/v3\n",
    );
    let named_s = named.to_str().unwrap();
    let mut want = [DEFAULT_BASE; 5];
    want[0] = "https://named.example/api/v3";
    assert_eq!(m.uid(&["-c", named_s], &[]), uid_of(&want));
    assert_eq!(m.uid(&[], &[("TTN_LW_CONFIG", named_s)]), uid_of(&want));
    // TTN_LW_CONFIG set but empty names no file, and so turns the default files off too.
    assert_eq!(
        m.uid(&[], &[("TTN_LW_CONFIG", "")]),
        uid_of(&[DEFAULT_BASE; 5])
    );

    // Without XDG_CONFIG_HOME the config dir is $HOME/.config (Go os.UserConfigDir).
    let m = Machine::new();
    m.write(
        &m.home().join(".config"),
        F,
        "telemetry:\n  enable: false\n",
    );
    let o = Command::new(BIN)
        .arg("status")
        .current_dir(m.work())
        .env_clear()
        .env("HOME", m.home())
        .output()
        .unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(
        s.starts_with("telemetry: off (telemetry.enable is false)"),
        "{s}"
    );

    // A default file that is not YAML stops start-up, as in ttn-lw-stack (only a missing one is
    // skipped).
    let m = Machine::new();
    m.write(&m.home(), F, "telemetry: [\n");
    let o = m.run(&["uid"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(".ttn-lw-stack.yml"));
}

/// Item 2: `TTN_LW_CONFIG` names files, split on white space (viper `GetStringSlice` of a
/// string, `strings.Fields`), the first listed winning; a named file that is missing is an
/// error, and a comma does not separate files.
#[test]
fn ttn_lw_config_names_files_split_on_white_space() {
    let m = Machine::new();
    let a = m.write(&m.root.path().join("etc"), "a.yml", &file_yml("a"));
    let b = m.write(&m.root.path().join("etc"), "b.yml", &file_yml("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert_eq!(
        m.uid(&[], &[("TTN_LW_CONFIG", &format!("{a} {b}"))]),
        uid_of(&["a"])
    );
    assert_eq!(
        m.uid(&[], &[("TTN_LW_CONFIG", &format!(" {b}\t{a} "))]),
        uid_of(&["b"])
    );
    // -c replaces TTN_LW_CONFIG.
    assert_eq!(m.uid(&["-c", b], &[("TTN_LW_CONFIG", a)]), uid_of(&["b"]));
    for value in [format!("{a},{b}"), format!("{a} /nonexistent/c.yml")] {
        let o = m.run(&["uid"], &[("TTN_LW_CONFIG", &value)]);
        assert_eq!(o.status.code(), Some(2), "{value}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot be read"), "{}", stderr(&o));
    }
}

/// Item 3: with `-c a.yml -c b.yml` the file listed first wins; `-c a.yml,b.yml` is a pflag
/// string slice (CSV); the help says so.
#[test]
fn config_flag_first_listed_wins_and_is_a_string_slice() {
    let m = Machine::new();
    let etc = m.root.path().join("etc");
    let a = m.write(&etc, "a.yml", &file_yml("a"));
    let b = m.write(&etc, "b.yml", &file_yml("b"));
    let comma = m.write(&etc, "x,y.yml", &file_yml("comma"));
    let (a, b, comma) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        comma.to_str().unwrap(),
    );
    assert_eq!(m.uid(&["-c", a, "-c", b], &[]), uid_of(&["a"]));
    assert_eq!(m.uid(&["-c", b, "--config", a], &[]), uid_of(&["b"]));
    assert_eq!(m.uid(&["-c", &format!("{a},{b}")], &[]), uid_of(&["a"]));
    assert_eq!(m.uid(&[&format!("--config={b},{a}")], &[]), uid_of(&["b"]));
    // Before and after the command, in order.
    let o = m.run(&["-c", b, "uid", "-c", a], &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end(),
        uid_of(&["b"])
    );
    // CSV quoting keeps a comma inside a file name.
    assert_eq!(
        m.uid(&["-c", &format!("\"{comma}\"")], &[]),
        uid_of(&["comma"])
    );
    // The help tells the rule.
    let help = m.ok(&["--help"], &[]);
    assert!(
        help.contains("the file listed first takes precedence"),
        "{help}"
    );
    assert!(!help.contains("later wins"), "{help}");
}

/// Item 4: keys are case-insensitive (viper lower-cases them).
#[test]
fn keys_are_case_insensitive() {
    let m = Machine::new();
    let f = m.write(&m.work(), "c.yml", "Telemetry:\n  Enable: false\n");
    let s = m.status(&["-c", f.to_str().unwrap()], &[]);
    assert!(
        s.starts_with("telemetry: off (telemetry.enable is false)"),
        "{s}"
    );
    let f = m.write(
        &m.work(),
        "d.yml",
        "TELEMETRY:\n  UID-Elements: [Mixed, CASE]\nConsole:\n  UI:\n    IS:\n      Base-URL: https://x.example/api/v3\n",
    );
    // Values keep their case; uid-elements wins over the Console URLs.
    assert_eq!(
        m.uid(&["-c", f.to_str().unwrap()], &[]),
        uid_of(&["Mixed", "CASE"])
    );
}

/// Item 5: list flags are pflag string slices (CSV), repeated flags append, and an empty value
/// is an empty list that still overrides the environment.
#[test]
fn list_flags_are_pflag_string_slices() {
    let m = Machine::new();
    let k = "--telemetry.uid-elements";
    assert_eq!(m.uid(&[&format!("{k}=a,b")], &[]), uid_of(&["a", "b"]));
    assert_eq!(m.uid(&[k, "a,b"], &[]), uid_of(&["a", "b"]));
    assert_eq!(
        m.uid(&[&format!("{k}=\"a,b\",c")], &[]),
        uid_of(&["a,b", "c"])
    );
    assert_eq!(
        m.uid(&[&format!("{k}=\"say \"\"hi\"\"\"")], &[]),
        uid_of(&["say \"hi\""])
    );
    assert_eq!(
        m.uid(&[&format!("{k}=a"), k, "b,c"], &[]),
        uid_of(&["a", "b", "c"])
    );
    // A value with spaces is one element (only commas separate).
    assert_eq!(m.uid(&[k, "x y"], &[]), uid_of(&["x y"]));
    // Empty: no element, so the Console URLs, even though the environment says otherwise.
    let env = [("TTN_LW_TELEMETRY_UID_ELEMENTS", "e1 e2")];
    assert_eq!(m.uid(&[], &env), uid_of(&["e1", "e2"]));
    assert_eq!(m.uid(&[&format!("{k}=")], &env), uid_of(&[DEFAULT_BASE; 5]));
    // pflag refuses a bare quote: a usage error, exit 2.
    let o = m.run(&[&format!("{k}=a\"b"), "uid"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--telemetry.uid-elements"),
        "{}",
        stderr(&o)
    );
}

/// Item 6: a bare boolean flag means true and never swallows the command; `=false` is false;
/// `--telemetry.enable false` leaves `false` as a stray argument (pflag), a usage error.
#[test]
fn bare_boolean_flags_mean_true() {
    let m = Machine::new();
    let off = m.write(&m.work(), "off.yml", "telemetry:\n  enable: false\n");
    let off = off.to_str().unwrap();
    let s = m.status(&["-c", off, "--telemetry.enable"], &[]);
    assert!(is_on(&s), "{s}");
    assert!(
        setting(&s, "telemetry.enable").ends_with("[command line]"),
        "{s}"
    );
    let s = m.status(&["-c", off], &[]);
    assert!(!is_on(&s), "{s}");
    // After the command too.
    let o = m.run(
        &[
            "-c",
            off,
            "status",
            "--telemetry.entity-count-telemetry.enable",
            "--telemetry.enable",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_on(&String::from_utf8_lossy(&o.stdout)));
    let s = m.status(&["--telemetry.enable=false"], &[]);
    assert!(!is_on(&s), "{s}");
    for args in [
        vec!["--telemetry.enable", "false", "status"],
        vec!["status", "--telemetry.enable", "false"],
    ] {
        let o = m.run(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
}

/// Item 7: what `enable` values mean, from a file, the environment and a flag. Whatever
/// ttn-lw-stack reads as false is off; what it would not read as true is off with one warning
/// line naming the key and the value; never exit 2.
#[test]
fn enable_values_are_read_as_the_reference_reads_them() {
    let m = Machine::new();
    // (YAML value, on?, warning?) — yaml.v3 types the value, then cast.ToBool reads it.
    let yaml_cases: &[(&str, bool, bool)] = &[
        ("true", true, false),
        ("True", true, false),
        ("1", true, false),
        ("2", true, false),   // an int: not zero
        ("0.5", true, false), // a float: not zero
        ("'t'", true, false), // ParseBool("t")
        ("false", false, false),
        ("FALSE", false, false),
        ("0", false, false),
        ("0.0", false, false),
        ("'0'", false, false),
        ("'F'", false, false),
        ("no", false, true), // yaml.v3: a string; ParseBool refuses it; ttn-lw-stack: false
        ("No", false, true),
        ("off", false, true),
        ("yes", false, true), // ttn-lw-stack reads false here too
        ("on", false, true),
        ("'2'", false, true),
        ("''", false, true),
        ("maybe", false, true),
        ("[true]", false, true),
    ];
    for (value, on, warns) in yaml_cases {
        let f = m.write(
            &m.work(),
            "e.yml",
            &format!("telemetry:\n  enable: {value}\n"),
        );
        let o = m.run(&["-c", f.to_str().unwrap(), "status"], &[]);
        assert!(o.status.success(), "{value}: {}", stderr(&o));
        let s = String::from_utf8(o.stdout.clone()).unwrap();
        assert_eq!(is_on(&s), *on, "enable: {value}\n{s}");
        let err = stderr(&o);
        if *warns {
            assert_eq!(err.lines().count(), 1, "enable: {value}: {err}");
            assert!(
                err.starts_with("ttn-lw-telemetry: warning: telemetry.enable: ")
                    && err.contains("is not a value ttn-lw-stack reads as true"),
                "{err}"
            );
            assert!(
                setting(&s, "telemetry.enable").contains("false (from "),
                "{s}"
            );
        } else {
            assert!(err.is_empty(), "enable: {value}: {err}");
        }
    }
    // The environment and flags carry text: strconv.ParseBool, no trimming.
    for (env, on) in [
        ("true", true),
        ("0", false),
        ("no", false),
        (" true", false),
        ("", false),
    ] {
        let o = m.run(&["status"], &[("TTN_LW_TELEMETRY_ENABLE", env)]);
        assert!(o.status.success());
        assert_eq!(
            is_on(&String::from_utf8_lossy(&o.stdout)),
            on,
            "env {env:?}"
        );
        let warned = stderr(&o).contains(&format!("telemetry.enable: {env:?} is not a value"));
        assert_eq!(warned, !on && env != "0", "env {env:?}: {}", stderr(&o));
    }
    let o = m.run(
        &["status", "--telemetry.entity-count-telemetry.enable=yes"],
        &[],
    );
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        s.starts_with("telemetry: off (telemetry.entity-count-telemetry.enable is false)"),
        "{s}"
    );
    assert!(
        stderr(&o).contains("warning: telemetry.entity-count-telemetry.enable: \"yes\""),
        "{}",
        stderr(&o)
    );
}

/// Item 7, "never a send": `send` with `enable: no` exits 0 after saying telemetry is off, and
/// the collector sees no connection; the same command with `enable: true` does reach it.
#[test]
fn an_unread_enable_value_never_sends() {
    let m = Machine::new();
    let db = m.root.path().join("is.sqlite");
    ttn_lw_telemetry::cmd::demo::create_example(&db).unwrap();
    let sink = Sink::start(vec![], Reply::Receipt(202));
    let target = sink.url();
    let db_uri = format!("sqlite:{}", db.display());
    let args = |file: &str| -> Vec<String> {
        [
            "-c",
            file,
            "--telemetry.target",
            &target,
            "--is.database-uri",
            &db_uri,
            "send",
            "--deadline",
            "10s",
        ]
        .map(String::from)
        .to_vec()
    };
    let no = m.write(&m.work(), "no.yml", "telemetry:\n  enable: no\n");
    let a = args(no.to_str().unwrap());
    let o = m.run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("telemetry is off (telemetry.enable is false)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("warning: telemetry.enable: \"no\""),
        "{}",
        stderr(&o)
    );
    // The process has exited after logging its decision: any connection would be recorded.
    assert_eq!(sink.connection_count(), 0);

    let yes = m.write(&m.work(), "true.yml", "telemetry:\n  enable: true\n");
    let a = args(yes.to_str().unwrap());
    let o = m.run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sink.requests().len(), 1, "the control case is delivered");
}

/// Item 8: the schedule's Redis comes from `cache.redis.*`, the whole `redis.*` block being the
/// fallback (ttn-lw-stack `InitializeFallbacks` + `NewIdentityServerTelemetryTaskRedis`).
#[test]
fn redis_comes_from_cache_redis_then_redis() {
    let m = Machine::new();
    // Telemetry off: status shows the choice and connects nowhere.
    let line = |yaml: &str| -> String {
        let f = m.write(&m.work(), "r.yml", yaml);
        let s = m.status(
            &["-c", f.to_str().unwrap(), "--telemetry.enable=false"],
            &[],
        );
        s.lines()
            .find(|l| l.starts_with("schedule coordination: "))
            .unwrap_or_else(|| panic!("{s}"))
            .to_owned()
    };
    assert_eq!(
        line("redis:\n  address: r:1\n  database: 2\n"),
        "schedule coordination: redis r:1 database 2 (from redis.*)"
    );
    assert_eq!(
        line("redis:\n  address: r:1\n  database: 2\ncache:\n  redis:\n    address: c:1\n"),
        "schedule coordination: redis c:1 database 0 (from cache.redis.*)"
    );
    assert_eq!(
        line("cache:\n  redis:\n    address: localhost:6379\nredis:\n  address: r:1\n"),
        "schedule coordination: redis r:1 database 0 (from redis.*)"
    );
    assert!(
        line("telemetry:\n  enable: false\n").starts_with("schedule coordination: state directory")
    );

    // Telemetry on, with the real Redis as cache.redis and a dead address as redis: status asks
    // the real one (and would say "unknown" had it asked the dead one).
    let redis_url =
        std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let addr = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let dead = common::closed_port().to_string();
    let f = m.write(
        &m.work(),
        "live.yml",
        &format!(
            "cache:\n  redis:\n    address: '{addr}'\n    database: 5\nredis:\n  address: '{dead}'\ntelemetry:\n  uid-elements: [fidelity-redis-{}]\n",
            std::process::id()
        ),
    );
    let s = m.status(&["-c", f.to_str().unwrap()], &[]);
    let next = s
        .lines()
        .find(|l| l.starts_with("next report due: "))
        .unwrap();
    assert!(
        next.contains(&format!("redis {addr} database 5")) && !next.contains("unknown"),
        "{s}"
    );
}

/// Item 9: `status` names the file that decided each setting, default files included.
#[test]
fn status_names_the_file_that_decided_each_setting() {
    let m = Machine::new();
    let home_file = m.write(
        &m.home(),
        ".ttn-lw-stack.yml",
        "telemetry:\n  target: https://home.example/collect\n",
    );
    let work_file = m.write(
        &m.work(),
        ".ttn-lw-stack.yml",
        "Telemetry:\n  entity-count-telemetry:\n    interval: 2h\n",
    );
    let s = m.status(&[], &[("TTN_LW_TELEMETRY_ADMIN_LISTEN", "127.0.0.1:9")]);
    for (key, value, source) in [
        (
            "telemetry.target",
            "https://home.example/collect".to_owned(),
            format!("[file {}]", home_file.display()),
        ),
        (
            "telemetry.entity-count-telemetry.interval",
            "2h0m0s".to_owned(),
            format!("[file {}]", work_file.display()),
        ),
        (
            "telemetry.admin.listen",
            "127.0.0.1:9".to_owned(),
            "[env TTN_LW_TELEMETRY_ADMIN_LISTEN]".to_owned(),
        ),
        (
            "telemetry.enable",
            "true".to_owned(),
            "[default]".to_owned(),
        ),
    ] {
        let l = setting(&s, key);
        assert!(
            l.contains(&value) && l.ends_with(&source),
            "{key}: {l}\n{s}"
        );
    }
}
