//! `collect`: the collector and its dashboard (SPEC §9), configured by its own keys.
//!
//! The collector reads its settings from the same sources as the agent, with the same
//! precedence (defaults < configuration files < `TTN_LW_*` environment < flags; see
//! [`crate::config`]), but only the keys of [`COLLECTOR_KEYS`], all under `collector.`: a
//! `.ttn-lw-stack.yml` may hold both the stack's settings and a `collector:` section, and each
//! program reads its own. Each key is
//! - a YAML key (`collector: {listen: …, limits: {per-uid: {burst: …}}}`),
//! - an environment variable (`TTN_LW_COLLECTOR_LISTEN`, `TTN_LW_COLLECTOR_LIMITS_PER_UID_BURST`),
//! - a flag of `collect` (`--collector.listen`); the flags `--listen`, `--database-uri`,
//!   `--k-anonymity`, `--trusted-proxies` and `--metrics-listen` of earlier releases stay as
//!   hidden aliases.
//!
//! `collect --help` lists these keys and `-c/--config` only; the agent's keys are refused
//! there. A bad value stops start-up with exit code 2 and one line naming the source, the key,
//! the value and the expected form.
//!
//! # Decisions where the issue is silent
//! - **Rates as burst and refill.** A per-uid or per-address limit is a burst and the time one
//!   more request takes to come back (`10` and `10m`: a burst of 10, then one every ten
//!   minutes), in Go duration syntax like every other time here, rather than a fractional rate.
//!   A burst of 0 turns the limit off.
//! - **The body size is not a key.** [`MAX_REPORT_BYTES`](ttn_telemetry_core::limits) is the
//!   protocol's bound, the same in the agent; a collector cannot take more than agents may send.
//! - **Retention 0 keeps every report** (the default): nothing is deleted unless an operator
//!   asks. See [`Store::retain`](crate::collect::store::Store::retain) for what it deletes.
//! - `collector.database-uri` empty means `./ttn-lw-telemetry-collector.sqlite3`; a PostgreSQL
//!   connection string is checked as the driver reads it before anything starts.

use std::time::Duration;

use ttn_telemetry_core::{ConfigError, Form, RawValue, parse_duration, redact_uri};

use crate::collect::client_addr::TrustedProxies;
use crate::collect::ratelimit::RateLimit;
use crate::collect::{self, CollectOptions, Limits};
use crate::config::{self, Args, Key, LoadError, Source};

/// Where the collector listens when `collector.listen` is not given: loopback, next to the
/// agent's admin port (1886).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1887";

/// One key of the collector (see the module docs).
#[derive(Debug)]
pub struct CollectorKey {
    /// Dotted key, as in YAML nesting and `--flag` names.
    pub key: &'static str,
    /// The flag of earlier releases that still works, hidden (`listen` for `--listen`).
    pub alias: Option<&'static str>,
    /// The default, written as a value of this key.
    pub default: &'static str,
    /// Whether it takes a list (YAML sequence, repeatable flag) or one value.
    pub form: Form,
    /// The placeholder of its value in `--help`.
    pub value_name: &'static str,
    /// What a value must look like (the error's "expected …").
    pub expected: &'static str,
    /// One sentence on what the key does.
    pub doc: &'static str,
    /// Reads a value into the settings; on a value of the wrong form, what is wrong with it
    /// beyond [`CollectorKey::expected`] (or nothing).
    set: fn(&mut Settings, &RawValue) -> Result<(), String>,
}

impl Key for CollectorKey {
    fn key(&self) -> &'static str {
        self.key
    }
    fn form(&self) -> Form {
        self.form
    }
}

/// The collector's settings, as the keys set them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `collector.listen`.
    pub listen: String,
    /// `collector.database-uri` (empty: the SQLite file in the working directory).
    pub database_uri: String,
    /// `collector.metrics-listen` (empty: off).
    pub metrics_listen: String,
    /// `collector.trusted-proxies`.
    pub trusted_proxies: TrustedProxies,
    /// `collector.k-anonymity`.
    pub k_anonymity: u64,
    /// `collector.retention` (zero: keep every report).
    pub retention: Duration,
    /// `collector.limits.max-connections`.
    pub max_connections: u32,
    /// `collector.limits.header-timeout`.
    pub header_timeout: Duration,
    /// `collector.limits.body-timeout`.
    pub body_timeout: Duration,
    /// `collector.limits.max-tracked`.
    pub max_tracked: u32,
    /// `collector.limits.per-uid.burst` (0: no limit).
    pub per_uid_burst: u32,
    /// `collector.limits.per-uid.refill`.
    pub per_uid_refill: Duration,
    /// `collector.limits.per-addr.burst` (0: no limit).
    pub per_addr_burst: u32,
    /// `collector.limits.per-addr.refill`.
    pub per_addr_refill: Duration,
}

fn scalar(v: &RawValue) -> Option<&str> {
    match v {
        RawValue::Scalar(s) => Some(s.trim()),
        RawValue::List(_) => None,
    }
}

fn host_port(v: &RawValue) -> Option<String> {
    let s = scalar(v)?;
    let (host, port) = s.rsplit_once(':')?;
    (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| s.to_owned())
}

fn whole<T: std::str::FromStr>(v: &RawValue) -> Option<T> {
    scalar(v)?.parse().ok()
}

fn at_least_one(v: &RawValue) -> Option<u32> {
    whole(v).filter(|n| *n >= 1)
}

fn duration(v: &RawValue) -> Option<Duration> {
    parse_duration(scalar(v)?).ok()
}

fn positive(v: &RawValue) -> Option<Duration> {
    duration(v).filter(|d| !d.is_zero())
}

fn database_uri(v: &RawValue) -> Result<String, String> {
    let s = scalar(v).ok_or_else(String::new)?;
    if s.is_empty() {
        return Ok(String::new());
    }
    match s.strip_prefix("sqlite:") {
        Some(path) if path.trim_start_matches("//").is_empty() => Err("no file".to_owned()),
        Some(_) => Ok(s.to_owned()),
        // A connection string is checked as the driver reads it (port, sslmode, TLS files…),
        // so that a typo stops start-up rather than the first insert.
        None => crate::pgconn::PgTarget::parse(s)
            .map(|_| s.to_owned())
            .map_err(|e| e.to_string()),
    }
}

fn proxies(v: &RawValue) -> Result<TrustedProxies, String> {
    let joined = match v {
        RawValue::Scalar(s) => s.split_whitespace().collect::<Vec<_>>().join(","),
        RawValue::List(l) => l.join(","),
    };
    joined.parse()
}

const DURATION: &str = "a positive duration such as 10s, 10m or 1h30m";

/// Every key of the collector, in the order `collect --help` lists them.
pub const COLLECTOR_KEYS: &[CollectorKey] = &[
    CollectorKey {
        key: "collector.listen",
        alias: Some("listen"),
        default: DEFAULT_LISTEN,
        form: Form::HostPort,
        value_name: "HOST:PORT",
        expected: "host:port",
        doc: "Address of the public listener: POST /collect, the dashboard and /api/v1.",
        set: |s, v| {
            s.listen = host_port(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.database-uri",
        alias: Some("database-uri"),
        default: "",
        form: Form::DatabaseUri,
        value_name: "URI",
        expected: "sqlite:PATH, a postgresql://… uri or key=value conninfo, or empty for ./ttn-lw-telemetry-collector.sqlite3",
        doc: "Where reports are stored: sqlite:PATH or postgresql://… (several collectors may share one PostgreSQL database); empty is ./ttn-lw-telemetry-collector.sqlite3.",
        set: |s, v| {
            s.database_uri = database_uri(v)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.metrics-listen",
        alias: Some("metrics-listen"),
        default: "",
        form: Form::OptionalHostPort,
        value_name: "HOST:PORT",
        expected: "host:port, or empty for no metrics listener",
        doc: "Serve Prometheus metrics at GET /metrics on this address, apart from the public port; empty is off.",
        set: |s, v| {
            s.metrics_listen = match scalar(v) {
                Some("") => String::new(),
                _ => host_port(v).ok_or_else(String::new)?,
            };
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.trusted-proxies",
        alias: Some("trusted-proxies"),
        default: "",
        form: Form::List,
        value_name: "CIDR",
        expected: "IPv4 or IPv6 CIDRs (comma- or space-separated)",
        doc: "Reverse proxies whose Forwarded or X-Forwarded-For names the client for the per-address rate limit; empty is none.",
        set: |s, v| {
            s.trusted_proxies = proxies(v)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.k-anonymity",
        alias: Some("k-anonymity"),
        default: "5",
        form: Form::U32,
        value_name: "N",
        expected: "a whole number",
        doc: "Fold every plan id, version, OS and arch seen from fewer than N deployments into `other` in the public data.",
        set: |s, v| {
            s.k_anonymity = whole(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.retention",
        alias: None,
        default: "0",
        form: Form::PositiveDuration,
        value_name: "DURATION",
        expected: "a duration such as 720h, or 0 to keep every report",
        doc: "Delete raw reports received more than this long ago (whole UTC days), keeping each deployment's latest and every aggregate; 0 keeps them all.",
        set: |s, v| {
            s.retention = duration(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.max-connections",
        alias: None,
        default: "4096",
        form: Form::U32,
        value_name: "N",
        expected: "a whole number of at least 1",
        doc: "Most open connections; further clients wait in the listen backlog.",
        set: |s, v| {
            s.max_connections = at_least_one(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.header-timeout",
        alias: None,
        default: "10s",
        form: Form::PositiveDuration,
        value_name: "DURATION",
        expected: DURATION,
        doc: "Time allowed for a request's headers (also the keep-alive idle limit).",
        set: |s, v| {
            s.header_timeout = positive(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.body-timeout",
        alias: None,
        default: "10s",
        form: Form::PositiveDuration,
        value_name: "DURATION",
        expected: DURATION,
        doc: "Time allowed for a request's whole body; after it, 408.",
        set: |s, v| {
            s.body_timeout = positive(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.max-tracked",
        alias: None,
        default: "100000",
        form: Form::U32,
        value_name: "N",
        expected: "a whole number of at least 1",
        doc: "Most keys each in-memory rate limiter tracks (bounds its memory).",
        set: |s, v| {
            s.max_tracked = at_least_one(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.per-uid.burst",
        alias: None,
        default: "10",
        form: Form::U32,
        value_name: "N",
        expected: "a whole number (0 turns the limit off)",
        doc: "Reports one deployment may send back to back (shared by every collector on one PostgreSQL database); 0 is no limit.",
        set: |s, v| {
            s.per_uid_burst = whole(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.per-uid.refill",
        alias: None,
        default: "10m",
        form: Form::PositiveDuration,
        value_name: "DURATION",
        expected: DURATION,
        doc: "Time after which one deployment may send one more report.",
        set: |s, v| {
            s.per_uid_refill = positive(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.per-addr.burst",
        alias: None,
        default: "1000",
        form: Form::U32,
        value_name: "N",
        expected: "a whole number (0 turns the limit off)",
        doc: "Requests one client address (an IPv6 /64) may send back to back; 0 is no limit.",
        set: |s, v| {
            s.per_addr_burst = whole(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
    CollectorKey {
        key: "collector.limits.per-addr.refill",
        alias: None,
        default: "20ms",
        form: Form::PositiveDuration,
        value_name: "DURATION",
        expected: DURATION,
        doc: "Time after which one client address may send one more request.",
        set: |s, v| {
            s.per_addr_refill = positive(v).ok_or_else(String::new)?;
            Ok(())
        },
    },
];

impl Settings {
    /// Sets one key from `value`, which came from `source`.
    pub fn set(
        &mut self,
        spec: &'static CollectorKey,
        value: &RawValue,
        source: Source,
    ) -> Result<(), LoadError> {
        (spec.set)(self, value).map_err(|detail| LoadError::Value {
            source,
            error: ConfigError::Invalid {
                key: spec.key,
                value: match value {
                    RawValue::Scalar(s) => redact_uri(s),
                    RawValue::List(l) => l.join(","),
                },
                expected: if detail.is_empty() {
                    spec.expected
                } else {
                    // The core's error holds a static description; this runs once, just
                    // before the process exits with code 2 (as the agent's database check).
                    Box::leak(
                        format!("{} ({})", spec.expected, redact_uri(&detail)).into_boxed_str(),
                    )
                },
            },
        })
    }

    /// The options a collector runs with (the system clock).
    pub fn options(&self) -> CollectOptions {
        let rate = |burst: u32, refill: Duration| {
            (burst > 0).then(|| RateLimit {
                burst,
                per_second: 1.0 / refill.as_secs_f64(),
            })
        };
        let mut o = CollectOptions::new(
            self.listen.clone(),
            (!self.database_uri.is_empty()).then(|| self.database_uri.clone()),
        );
        o.limits = Limits {
            per_uid: rate(self.per_uid_burst, self.per_uid_refill),
            per_addr: rate(self.per_addr_burst, self.per_addr_refill),
            max_tracked: self.max_tracked as usize,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections as usize,
        };
        o.k_anonymity = self.k_anonymity;
        o.trusted_proxies = self.trusted_proxies.clone();
        o.metrics_listen = (!self.metrics_listen.is_empty()).then(|| self.metrics_listen.clone());
        o.retention = (!self.retention.is_zero()).then_some(self.retention);
        o
    }
}

impl Default for Settings {
    /// The defaults of [`COLLECTOR_KEYS`].
    fn default() -> Self {
        let mut s = Settings {
            listen: String::new(),
            database_uri: String::new(),
            metrics_listen: String::new(),
            trusted_proxies: TrustedProxies::default(),
            k_anonymity: 0,
            retention: Duration::ZERO,
            max_connections: 0,
            header_timeout: Duration::ZERO,
            body_timeout: Duration::ZERO,
            max_tracked: 0,
            per_uid_burst: 0,
            per_uid_refill: Duration::ZERO,
            per_addr_burst: 0,
            per_addr_refill: Duration::ZERO,
        };
        for k in COLLECTOR_KEYS {
            // The defaults are checked by a unit test, so this cannot fail.
            let _ = s.set(k, &RawValue::Scalar(k.default.to_owned()), Source::Default);
        }
        s
    }
}

/// Loads the collector's settings from defaults, configuration files, the environment (read
/// through `env`) and `args.flags`, lowest precedence first (see [`config::read_sources`]).
pub fn load(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Settings, LoadError> {
    let mut s = Settings::default();
    config::read_sources(COLLECTOR_KEYS, args, &env, |spec, value, source| {
        s.set(spec, &value, source)
    })?;
    Ok(s)
}

/// Serves `POST /collect`, `/` and `/api/v1/*` (and `/metrics` on `collector.metrics-listen`)
/// until stopped.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(collect::serve(settings.options()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_are_valid_and_match_the_library_defaults() {
        let mut s = Settings {
            listen: "x".into(),
            ..Settings::default()
        };
        for k in COLLECTOR_KEYS {
            s.set(k, &RawValue::Scalar(k.default.to_owned()), Source::Default)
                .unwrap_or_else(|e| panic!("{}: {e}", k.key));
            assert!(k.key.starts_with("collector."), "{}", k.key);
        }
        let o = s.options();
        let lib = CollectOptions::new(DEFAULT_LISTEN, None);
        assert_eq!(o.listen, DEFAULT_LISTEN);
        assert_eq!(o.database_uri, None);
        assert_eq!(o.k_anonymity, lib.k_anonymity);
        assert_eq!(o.retention, None);
        assert_eq!(o.metrics_listen, None);
        assert!(o.trusted_proxies.is_empty());
        let (a, b) = (&o.limits, &lib.limits);
        assert_eq!(
            (
                a.max_tracked,
                a.header_timeout,
                a.body_timeout,
                a.max_connections
            ),
            (
                b.max_tracked,
                b.header_timeout,
                b.body_timeout,
                b.max_connections
            )
        );
        for (x, y) in [(a.per_uid, b.per_uid), (a.per_addr, b.per_addr)] {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_eq!(x.burst, y.burst);
            assert!((x.per_second - y.per_second).abs() < 1e-9 * y.per_second);
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// defaults < file < env < flags, key by key.
    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yml");
        std::fs::write(
            &file,
            "telemetry:\n  enable: false\ncollector:\n  listen: 127.0.0.1:1\n  k-anonymity: 7\n  retention: 48h\n  limits:\n    per-uid:\n      burst: 3\n    per-addr:\n      burst: 0\n  trusted-proxies: [10.0.0.0/8, '::1/128']\n",
        )
        .unwrap();
        let args = Args {
            files: Some(vec![file.clone()]),
            flags: vec![("collector.k-anonymity", vec!["9".into()])],
        };
        let env = env_of(&[
            ("TTN_LW_COLLECTOR_LISTEN", "127.0.0.1:2"),
            ("TTN_LW_COLLECTOR_K_ANONYMITY", "8"),
            ("TTN_LW_COLLECTOR_LIMITS_PER_UID_REFILL", "1m"),
        ]);
        let s = load(&args, env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:2", "env over file");
        assert_eq!(s.k_anonymity, 9, "flag over env over file");
        assert_eq!(
            s.retention,
            Duration::from_secs(48 * 3600),
            "file over default"
        );
        assert_eq!(s.per_uid_burst, 3);
        assert_eq!(s.per_uid_refill, Duration::from_secs(60));
        assert_eq!(s.body_timeout, Duration::from_secs(10), "default");
        let o = s.options();
        assert!(o.limits.per_addr.is_none(), "burst 0 turns the limit off");
        assert_eq!(o.limits.per_uid.unwrap().burst, 3);
        assert!(o.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(o.trusted_proxies.contains("::1".parse().unwrap()));
        assert_eq!(o.retention, Some(Duration::from_secs(48 * 3600)));
        // Nothing but the file and defaults.
        let s = load(
            &Args {
                files: Some(vec![file]),
                flags: vec![],
            },
            env_of(&[]),
        )
        .unwrap();
        assert_eq!((s.listen.as_str(), s.k_anonymity), ("127.0.0.1:1", 7));
        // A space-separated list from the environment.
        let s = load(
            &Args {
                files: Some(vec![]),
                flags: vec![],
            },
            env_of(&[(
                "TTN_LW_COLLECTOR_TRUSTED_PROXIES",
                "10.0.0.0/8 192.0.2.1/32",
            )]),
        )
        .unwrap();
        assert!(s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_bad_value_names_the_source_key_and_form() {
        let none = || Args {
            files: Some(vec![]),
            flags: vec![],
        };
        let e = load(&none(), env_of(&[("TTN_LW_COLLECTOR_RETENTION", "a week")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "env TTN_LW_COLLECTOR_RETENTION: invalid value \"a week\" for collector.retention: expected a duration such as 720h, or 0 to keep every report"
        );
        let e = load(
            &Args {
                files: Some(vec![]),
                flags: vec![("collector.database-uri", vec!["mysql://u:pw@h/db".into()])],
            },
            env_of(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("command line: invalid value") && e.contains("collector.database-uri"),
            "{e}"
        );
        assert!(!e.contains("pw@"), "the password is masked: {e}");
        for (key, bad) in [
            ("collector.listen", "nowhere"),
            ("collector.limits.max-connections", "0"),
            ("collector.limits.body-timeout", "0s"),
            ("collector.limits.per-uid.refill", "-1m"),
            ("collector.trusted-proxies", "10.0.0.0/33"),
            ("collector.k-anonymity", "-1"),
            ("collector.metrics-listen", "9090"),
        ] {
            let e = load(
                &Args {
                    files: Some(vec![]),
                    flags: vec![(key, vec![bad.into()])],
                },
                env_of(&[]),
            )
            .unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
            assert_eq!(crate::cmd::exit_code(&e.into()), 2);
        }
    }
}
