//! Configuration loading through the library: precedence, sources, lists, DO_NOT_TRACK, and a
//! real `ttn-lw-stack` configuration file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ttn_lw_telemetry::config::{Args, FileOrigin, LoadError, Source, load};

fn stack_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ttn-lw-stack.yml")
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn flags(pairs: &[(&'static str, &[&str])]) -> Vec<(&'static str, Vec<String>)> {
    pairs
        .iter()
        .map(|(k, v)| (*k, v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[test]
fn a_real_stack_file_loads_unchanged() {
    let path = stack_file();
    let args = Args {
        files: Some(vec![path.clone()]),
        flags: vec![],
    };
    let loaded = load(&args, env_of(&[])).unwrap();
    let c = &loaded.config;
    let base = "https://lorawan.example.net/api/v3".to_owned();
    assert_eq!(c.console_base_urls, [(); 5].map(|()| base.clone()));
    assert_eq!(
        c.database_uri,
        "postgres://root:Sup3rS3cret@postgres:5432/ttn_lorawan?sslmode=disable"
    );
    assert_eq!(c.redis_address, "redis:6379");
    assert_eq!(c.redis_password, "R3disPass");
    assert_eq!(c.redis_database, 2);
    // No cache.redis block: the schedule uses the whole redis block, as the task queue does.
    let r = c.redis().unwrap();
    assert_eq!(
        (r.block, r.address.as_str(), r.password.as_str(), r.database),
        ("redis", "redis:6379", "R3disPass", 2)
    );
    assert!(c.enable && c.entity_count_enable && !c.do_not_track);
    assert_eq!(c.interval, Duration::from_secs(24 * 3600));
    assert_eq!(c.target, "https://telemetry.thethingsstack.io/collect");
    assert!(c.uid_elements.is_empty());
    assert_eq!(c.uid_elements(), vec![base; 5]);
    // Keys the file sets name the file; the others stay defaults.
    let file = Source::File(path);
    for key in [
        "is.database-uri",
        "console.ui.is.base-url",
        "console.ui.js.base-url",
        "redis.address",
        "redis.password",
        "redis.database",
        "telemetry.enable",
        "telemetry.entity-count-telemetry.interval",
    ] {
        assert_eq!(loaded.sources[key], file, "{key}");
    }
    for key in [
        "telemetry.uid-elements",
        "telemetry.state-dir",
        "telemetry.admin.listen",
    ] {
        assert_eq!(loaded.sources[key], Source::Default, "{key}");
    }
    assert_eq!(
        c.display("is.database-uri").unwrap(),
        "postgres://root:***@postgres:5432/ttn_lorawan?sslmode=disable"
    );
}

#[test]
fn defaults_files_env_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yml");
    let b = dir.path().join("b.yml");
    std::fs::write(
        &a,
        "telemetry:\n  target: https://a.example/collect\n  uid-elements: [from-a]\n  state-dir: /var/a\n",
    )
    .unwrap();
    std::fs::write(&b, "telemetry:\n  target: https://b.example/collect\n").unwrap();
    let files = Some(vec![a.clone(), b.clone()]);
    let env = [
        ("TTN_LW_TELEMETRY_TARGET", "https://env.example/collect"),
        ("TTN_LW_TELEMETRY_STATE_DIR", "/var/env"),
    ];

    // Files only: the file listed first wins for target (ttn-lw-stack merges them in reverse
    // order); the second still sets what the first does not.
    std::fs::write(
        &b,
        "telemetry:\n  target: https://b.example/collect\n  admin:\n    listen: 127.0.0.1:9\n",
    )
    .unwrap();
    let loaded = load(
        &Args {
            files: files.clone(),
            flags: vec![],
        },
        env_of(&[]),
    )
    .unwrap();
    assert_eq!(loaded.config.target, "https://a.example/collect");
    assert_eq!(loaded.sources["telemetry.target"], Source::File(a.clone()));
    assert_eq!(loaded.config.admin_listen, "127.0.0.1:9");
    assert_eq!(
        loaded.sources["telemetry.admin.listen"],
        Source::File(b.clone())
    );
    assert_eq!(loaded.config.uid_elements, ["from-a"]);
    assert_eq!(
        loaded.sources["telemetry.uid-elements"],
        Source::File(a.clone())
    );
    assert_eq!(
        loaded.files,
        vec![(a.clone(), FileOrigin::Flag), (b.clone(), FileOrigin::Flag)]
    );

    // Env beats files.
    let loaded = load(
        &Args {
            files: files.clone(),
            flags: vec![],
        },
        env_of(&env),
    )
    .unwrap();
    assert_eq!(loaded.config.target, "https://env.example/collect");
    assert_eq!(
        loaded.sources["telemetry.target"],
        Source::Env("TTN_LW_TELEMETRY_TARGET".into())
    );
    assert_eq!(loaded.config.state_dir, "/var/env");

    // Flags beat env; a scalar flag given twice keeps the last value.
    let loaded = load(
        &Args {
            files,
            flags: flags(&[(
                "telemetry.target",
                &["https://f1.example/collect", "https://f2.example/collect"],
            )]),
        },
        env_of(&env),
    )
    .unwrap();
    assert_eq!(loaded.config.target, "https://f2.example/collect");
    assert_eq!(loaded.sources["telemetry.target"], Source::Flag);
    assert_eq!(loaded.config.state_dir, "/var/env");
    assert_eq!(
        loaded.sources["telemetry.state-dir"],
        Source::Env("TTN_LW_TELEMETRY_STATE_DIR".into())
    );
    assert_eq!(loaded.sources["redis.address"], Source::Default);
}

#[test]
fn env_lists_split_on_spaces_and_list_flags_repeat() {
    let loaded = load(
        &Args::default(),
        env_of(&[("TTN_LW_TELEMETRY_UID_ELEMENTS", " one  two three ")]),
    )
    .unwrap();
    assert_eq!(loaded.config.uid_elements, ["one", "two", "three"]);

    let loaded = load(
        &Args {
            files: None,
            flags: flags(&[("telemetry.uid-elements", &["x y", "z"])]),
        },
        env_of(&[("TTN_LW_TELEMETRY_UID_ELEMENTS", "one two")]),
    )
    .unwrap();
    // A flag value is one element, spaces and all.
    assert_eq!(loaded.config.uid_elements, ["x y", "z"]);
}

#[test]
fn do_not_track_turns_telemetry_off_whatever_else_says() {
    for value in ["1", "true", "yes"] {
        let loaded = load(
            &Args {
                files: None,
                flags: flags(&[("telemetry.enable", &["true"])]),
            },
            env_of(&[("DO_NOT_TRACK", value)]),
        )
        .unwrap();
        assert!(loaded.config.do_not_track, "{value}");
        assert_eq!(loaded.config.off_reason(), Some("DO_NOT_TRACK is set"));
        assert_eq!(loaded.sources["telemetry.enable"], Source::DoNotTrack);
    }
    for value in ["", "0", "false"] {
        let loaded = load(&Args::default(), env_of(&[("DO_NOT_TRACK", value)])).unwrap();
        assert!(!loaded.config.do_not_track, "{value:?}");
        assert_eq!(loaded.config.off_reason(), None);
        assert_eq!(loaded.sources["telemetry.enable"], Source::Default);
    }
}

#[test]
fn the_first_bad_value_names_its_source_key_value_and_form() {
    let err = load(
        &Args::default(),
        env_of(&[("TTN_LW_TELEMETRY_ENTITY_COUNT_TELEMETRY_INTERVAL", "1 day")]),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Value { .. }));
    assert_eq!(
        err.to_string(),
        "env TTN_LW_TELEMETRY_ENTITY_COUNT_TELEMETRY_INTERVAL: invalid value \"1 day\" for telemetry.entity-count-telemetry.interval: expected a positive duration such as 90s, 1h30m or 24h"
    );
}
