//! The configuration model of SPEC §5: keys, defaults and validation.
//!
//! The core does not care where a value comes from. Hosts collect values from defaults, YAML
//! files, `TTN_LW_…` environment variables and flags, in that order, and hand each one to
//! [`Config::set`] as a [`RawValue`]; the last one wins. A value is checked when it is set, so
//! the first bad value stops start-up with a [`ConfigError`] that names the key, the value
//! (with secrets masked) and the expected form.
//!
//! To add a key: one row of [`KEYS`] (name, default, form, secrecy, doc, and the [`Slot`] of
//! its field) and the field in [`Config`]. Flags, environment variables, YAML lookup, `set`,
//! `status` and `--help` all follow the table.
//!
//! Decisions where SPEC is silent:
//! - A list key given a single string splits it on whitespace, as TTS (viper) does; this is how
//!   environment variables carry lists.
//! - Booleans are read as ttn-lw-stack reads them (viper `GetBool`, that is `cast.ToBool`, which
//!   is Go's `strconv.ParseBool` for text): `1`, `t`, `T`, `true`, `TRUE`, `True` are true and
//!   `0`, `f`, `F`, `false`, `FALSE`, `False` are false, exactly, with no trimming. Any other
//!   text (`yes`, `no`, `on`, ` true`, the empty string…) is read as false by ttn-lw-stack
//!   silently; here it is also false, and [`Config::warnings`] names the key and the value so
//!   that the host prints one warning line. It is never an error: a value that ttn-lw-stack
//!   would not read as true must never make us refuse to start *or* send.
//! - Redis for the schedule is resolved as ttn-lw-stack resolves the Identity Server's
//!   telemetry task queue (`cache.redis`, with the whole `redis` block as fallback), see
//!   [`Config::redis`]; the one deliberate difference is that an address nobody configured
//!   means no Redis here, where ttn-lw-stack would use `localhost:6379`.
//! - `telemetry.state-dir` defaults to `.ttn-lw-telemetry` in the working directory, next to
//!   where `ttn-lw-stack` keeps its own files when run from a checkout.
//! - `DO_NOT_TRACK` counts as set when its value is non-empty and not `0`/`false`.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::redact::redact_uri;
use crate::uid::{MAX_UID_ELEMENT_BYTES, MAX_UID_ELEMENTS};

/// The form a key's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `true`/`false` and Go's other boolean spellings.
    Bool,
    /// An `http://` or `https://` URL with a host.
    HttpUrl,
    /// A Go duration greater than zero (`90s`, `1h30m`, `24h`).
    PositiveDuration,
    /// A list of strings.
    List,
    /// `postgres://…`, `postgresql://…`, `key=value` conninfo, or `sqlite:PATH`.
    DatabaseUri,
    /// `host:port`, or empty for none.
    OptionalHostPort,
    /// `host:port`.
    HostPort,
    /// A non-negative integer that fits in 32 bits.
    U32,
    /// Any non-empty text.
    NonEmpty,
    /// Any text, possibly empty.
    Text,
}

impl Form {
    /// How the expected form is described in an error.
    pub fn expected(self) -> &'static str {
        match self {
            Form::Bool => "a boolean (true or false)",
            Form::HttpUrl => "an http:// or https:// url with a host",
            Form::PositiveDuration => "a positive duration such as 90s, 1h30m or 24h",
            Form::List => "a list of strings",
            Form::DatabaseUri => "a postgresql://… uri, key=value conninfo, or sqlite:PATH",
            Form::OptionalHostPort => "host:port, or empty",
            Form::HostPort => "host:port",
            Form::U32 => "a whole number from 0 to 4294967295",
            Form::NonEmpty => "a non-empty string",
            Form::Text => "a string",
        }
    }
}

/// Where a key's value lives in [`Config`]: a writer (for [`Config::set`]) and a reader (for
/// [`Config::display`]), so that adding a key is one row of [`KEYS`] and one field.
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    /// A boolean, read as ttn-lw-stack reads booleans.
    Bool(fn(&mut Config) -> &mut bool, fn(&Config) -> &bool),
    /// Text, checked against the key's [`Form`].
    Text(fn(&mut Config) -> &mut String, fn(&Config) -> &String),
    /// A whole number.
    U32(fn(&mut Config) -> &mut u32, fn(&Config) -> &u32),
    /// A Go duration.
    Duration(fn(&mut Config) -> &mut Duration, fn(&Config) -> &Duration),
    /// A list of strings.
    List(
        fn(&mut Config) -> &mut Vec<String>,
        fn(&Config) -> &Vec<String>,
    ),
}

/// The [`Slot`] of a field of [`Config`]: `slot!(Text, target)`.
macro_rules! slot {
    ($kind:ident, $($field:tt)+) => {
        Slot::$kind(|c| &mut c.$($field)+, |c| &c.$($field)+)
    };
}

/// One configuration key: its name as TTS writes it, its default, its form, what it does, and
/// where its value lives.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Dotted key, as in YAML nesting and `--flag` names.
    pub key: &'static str,
    /// The default, written as a value for this key would be.
    pub default: &'static str,
    /// The form values must have.
    pub form: Form,
    /// Whether the value is a secret that is never shown.
    pub secret: bool,
    /// One sentence on what the key does.
    pub doc: &'static str,
    /// Where the value lives in [`Config`].
    pub slot: Slot,
}

const DEFAULT_BASE_URL: &str = "http://localhost:1885/api/v3";

/// Every key this project reads, in the order `status` lists them.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "telemetry.enable",
        default: "true",
        form: Form::Bool,
        secret: false,
        doc: "Whether telemetry is sent at all.",
        slot: slot!(Bool, enable),
    },
    KeySpec {
        key: "telemetry.target",
        default: "https://telemetry.thethingsstack.io/collect",
        form: Form::HttpUrl,
        secret: false,
        doc: "Where reports are sent.",
        slot: slot!(Text, target),
    },
    KeySpec {
        key: "telemetry.local-only",
        default: "false",
        form: Form::Bool,
        secret: false,
        doc: "Count and keep every report in the state directory, and never send it (this project's own key).",
        slot: slot!(Bool, local_only),
    },
    KeySpec {
        key: "telemetry.uid-elements",
        default: "",
        form: Form::List,
        secret: false,
        doc: "Strings hashed into the deployment id; empty means the five Console base URLs.",
        slot: slot!(List, uid_elements),
    },
    KeySpec {
        key: "telemetry.entity-count-telemetry.enable",
        default: "true",
        form: Form::Bool,
        secret: false,
        doc: "Whether the entity-count report is sent.",
        slot: slot!(Bool, entity_count_enable),
    },
    KeySpec {
        key: "telemetry.entity-count-telemetry.interval",
        default: "24h",
        form: Form::PositiveDuration,
        secret: false,
        doc: "Time between entity-count reports.",
        slot: slot!(Duration, interval),
    },
    KeySpec {
        key: "telemetry.state-dir",
        default: ".ttn-lw-telemetry",
        form: Form::NonEmpty,
        secret: false,
        doc: "Directory for the schedule, the audit log and the last body sent.",
        slot: slot!(Text, state_dir),
    },
    KeySpec {
        key: "telemetry.signing-key-file",
        default: "",
        form: Form::Text,
        secret: false,
        doc: "PEM (PKCS#8) Ed25519 key that signs reports; empty means one the agent creates in the state directory (or shares through Redis).",
        slot: slot!(Text, signing_key_file),
    },
    KeySpec {
        key: "telemetry.admin.listen",
        default: "127.0.0.1:1886",
        form: Form::HostPort,
        secret: false,
        doc: "Address of the admin listener (preview API, Console page, metrics).",
        slot: slot!(Text, admin_listen),
    },
    KeySpec {
        key: "telemetry.admin.token",
        default: "",
        form: Form::Text,
        secret: true,
        doc: "Bearer token the admin listener requires; empty means none.",
        slot: slot!(Text, admin_token),
    },
    KeySpec {
        key: "console.ui.is.base-url",
        default: DEFAULT_BASE_URL,
        form: Form::HttpUrl,
        secret: false,
        doc: "Identity Server API base URL of the Console (UID element 1).",
        slot: slot!(Text, console_base_urls[0]),
    },
    KeySpec {
        key: "console.ui.gs.base-url",
        default: DEFAULT_BASE_URL,
        form: Form::HttpUrl,
        secret: false,
        doc: "Gateway Server API base URL of the Console (UID element 2).",
        slot: slot!(Text, console_base_urls[1]),
    },
    KeySpec {
        key: "console.ui.ns.base-url",
        default: DEFAULT_BASE_URL,
        form: Form::HttpUrl,
        secret: false,
        doc: "Network Server API base URL of the Console (UID element 3).",
        slot: slot!(Text, console_base_urls[2]),
    },
    KeySpec {
        key: "console.ui.as.base-url",
        default: DEFAULT_BASE_URL,
        form: Form::HttpUrl,
        secret: false,
        doc: "Application Server API base URL of the Console (UID element 4).",
        slot: slot!(Text, console_base_urls[3]),
    },
    KeySpec {
        key: "console.ui.js.base-url",
        default: DEFAULT_BASE_URL,
        form: Form::HttpUrl,
        secret: false,
        doc: "Join Server API base URL of the Console (UID element 5).",
        slot: slot!(Text, console_base_urls[4]),
    },
    KeySpec {
        key: "is.database-uri",
        default: "postgresql://root:root@localhost:5432/ttn_lorawan_dev?sslmode=disable",
        form: Form::DatabaseUri,
        secret: false,
        doc: "The Identity Server database that is counted.",
        slot: slot!(Text, database_uri),
    },
    KeySpec {
        key: "cache.redis.address",
        default: "",
        form: Form::OptionalHostPort,
        secret: false,
        doc: "Redis used to coordinate replicas, as ttn-lw-stack's telemetry task queue uses it; empty falls back to the redis.* block.",
        slot: slot!(Text, cache_redis_address),
    },
    KeySpec {
        key: "cache.redis.password",
        default: "",
        form: Form::Text,
        secret: true,
        doc: "Password of the cache.redis server.",
        slot: slot!(Text, cache_redis_password),
    },
    KeySpec {
        key: "cache.redis.database",
        default: "0",
        form: Form::U32,
        secret: false,
        doc: "Database number on the cache.redis server.",
        slot: slot!(U32, cache_redis_database),
    },
    KeySpec {
        key: "redis.address",
        default: "",
        form: Form::OptionalHostPort,
        secret: false,
        doc: "Redis of the stack, used when the cache.redis block is not configured; empty (both) means the state directory.",
        slot: slot!(Text, redis_address),
    },
    KeySpec {
        key: "redis.password",
        default: "",
        form: Form::Text,
        secret: true,
        doc: "Redis password.",
        slot: slot!(Text, redis_password),
    },
    KeySpec {
        key: "redis.database",
        default: "0",
        form: Form::U32,
        secret: false,
        doc: "Redis database number.",
        slot: slot!(U32, redis_database),
    },
];

/// Looks up a key's spec.
pub fn key_spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.key == key)
}

/// The environment variable for `key`: `TTN_LW_` + key upper-cased, `.` and `-` as `_`.
///
/// ```
/// assert_eq!(ttn_telemetry_core::env_var_name("telemetry.uid-elements"), "TTN_LW_TELEMETRY_UID_ELEMENTS");
/// ```
pub fn env_var_name(key: &str) -> String {
    let mut s = String::from("TTN_LW_");
    s.extend(key.chars().map(|c| match c {
        '.' | '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    s
}

/// What `status` and the Console page say in local-only mode (`telemetry.local-only`).
pub const LOCAL_ONLY_NOTE: &str = "local only: reports are kept here and never sent";

/// Whether a `DO_NOT_TRACK` value asks for telemetry to be off.
pub fn do_not_track(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
}

/// A value as a host read it, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// One string (YAML scalars are passed in their text form).
    Scalar(String),
    /// A list of strings (a YAML sequence, or a repeated flag).
    List(Vec<String>),
}

/// A configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The value does not have the key's form.
    Invalid {
        /// The key.
        key: &'static str,
        /// The value, with secrets masked.
        value: String,
        /// The expected form.
        expected: &'static str,
    },
    /// No such key.
    UnknownKey(String),
    /// A node of a configuration file has the wrong shape for its key: a mapping or a list
    /// where a value is expected, or a value where a section of nested keys is expected.
    Shape {
        /// The dotted key of the node.
        key: String,
        /// What was found ("a mapping", "a boolean", …).
        found: &'static str,
        /// What is expected there.
        expected: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                key,
                value,
                expected,
            } => {
                write!(f, "invalid value {value:?} for {key}: expected {expected}")
            }
            ConfigError::UnknownKey(k) => write!(f, "unknown configuration key {k:?}"),
            ConfigError::Shape {
                key,
                found,
                expected,
            } => write!(f, "{key} is {found}: expected {expected}"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// The effective configuration. [`Config::default`] holds the defaults of [`KEYS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `telemetry.enable`.
    pub enable: bool,
    /// `telemetry.target`.
    pub target: String,
    /// `telemetry.local-only`: reports are counted and kept, never sent. Off still wins: see
    /// [`Config::off_reason`] and [`Config::local_only`].
    pub local_only: bool,
    /// `telemetry.uid-elements` (empty: Console base URLs).
    pub uid_elements: Vec<String>,
    /// `telemetry.entity-count-telemetry.enable`.
    pub entity_count_enable: bool,
    /// `telemetry.entity-count-telemetry.interval`.
    pub interval: Duration,
    /// `telemetry.state-dir`.
    pub state_dir: String,
    /// `telemetry.signing-key-file` (empty: the agent's own key, see `docs/signing.md`).
    pub signing_key_file: String,
    /// `telemetry.admin.listen`.
    pub admin_listen: String,
    /// `telemetry.admin.token` (empty: none).
    pub admin_token: String,
    /// `console.ui.{is,gs,ns,as,js}.base-url`, in that order.
    pub console_base_urls: [String; 5],
    /// `is.database-uri`.
    pub database_uri: String,
    /// `cache.redis.address` (empty: not configured).
    pub cache_redis_address: String,
    /// `cache.redis.password`.
    pub cache_redis_password: String,
    /// `cache.redis.database`.
    pub cache_redis_database: u32,
    /// `redis.address` (empty: not configured).
    pub redis_address: String,
    /// `redis.password`.
    pub redis_password: String,
    /// `redis.database`.
    pub redis_database: u32,
    /// `DO_NOT_TRACK` was set: telemetry is off whatever the keys say.
    pub do_not_track: bool,
    /// Boolean keys whose effective value is text that ttn-lw-stack does not read as a boolean
    /// (`yes`, `no`, `on`…), with that text (secrets masked). Such a key is false; see
    /// [`Config::warnings`].
    pub unrecognized_bools: BTreeMap<&'static str, String>,
}

/// The Redis server the schedule uses, as resolved by [`Config::redis`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Which block decided: `"cache.redis"` or `"redis"`.
    pub block: &'static str,
    /// `host:port`.
    pub address: String,
    /// The password (a secret: never shown).
    pub password: String,
    /// The database number.
    pub database: u32,
}

/// ttn-lw-stack's default Redis address (`DefaultRedisConfig`), used when the `cache.redis`
/// fallback compares a block with the default.
pub const REFERENCE_DEFAULT_REDIS_ADDRESS: &str = "localhost:6379";

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            enable: false,
            target: String::new(),
            local_only: false,
            uid_elements: Vec::new(),
            entity_count_enable: false,
            interval: Duration::ZERO,
            state_dir: String::new(),
            signing_key_file: String::new(),
            admin_listen: String::new(),
            admin_token: String::new(),
            console_base_urls: Default::default(),
            database_uri: String::new(),
            cache_redis_address: String::new(),
            cache_redis_password: String::new(),
            cache_redis_database: 0,
            redis_address: String::new(),
            redis_password: String::new(),
            redis_database: 0,
            do_not_track: false,
            unrecognized_bools: BTreeMap::new(),
        };
        for k in KEYS {
            // The defaults are checked by a unit test, so this cannot fail.
            let _ = c.set(k.key, &RawValue::Scalar(k.default.to_owned()));
        }
        c
    }
}

impl Config {
    /// Sets `key` from a raw value, checking its form.
    pub fn set(&mut self, key: &str, value: &RawValue) -> Result<(), ConfigError> {
        let spec = key_spec(key).ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
        let invalid = || ConfigError::Invalid {
            key: spec.key,
            value: shown(spec, value),
            expected: spec.form.expected(),
        };
        match spec.slot {
            Slot::Bool(field, _) => {
                // Read exactly as ttn-lw-stack reads it: anything that is not a Go boolean is
                // false (and remembered, for the warning), never an error.
                let read = match value {
                    RawValue::Scalar(s) => parse_bool(s),
                    RawValue::List(_) => None,
                };
                match read {
                    Some(_) => {
                        self.unrecognized_bools.remove(spec.key);
                    }
                    None => {
                        let text = match value {
                            RawValue::Scalar(_) => shown(spec, value),
                            RawValue::List(l) => format!("[{}]", l.join(", ")),
                        };
                        self.unrecognized_bools.insert(spec.key, text);
                    }
                }
                *field(self) = read.unwrap_or(false);
                Ok(())
            }
            Slot::List(field, _) => {
                let list: Vec<String> = match value {
                    RawValue::List(l) => l.clone(),
                    RawValue::Scalar(s) => s.split_whitespace().map(ToOwned::to_owned).collect(),
                };
                if list.len() > MAX_UID_ELEMENTS
                    || list.iter().any(|e| e.len() > MAX_UID_ELEMENT_BYTES)
                {
                    return Err(ConfigError::Invalid {
                        key: spec.key,
                        value: shown(spec, value),
                        expected: "at most 64 elements of at most 2048 bytes each",
                    });
                }
                if !list.is_empty() && list.iter().all(String::is_empty) {
                    return Err(ConfigError::Invalid {
                        key: spec.key,
                        value: shown(spec, value),
                        expected: "at least one non-empty element (all-empty elements give every deployment the same id)",
                    });
                }
                *field(self) = list;
                Ok(())
            }
            Slot::Text(..) | Slot::U32(..) | Slot::Duration(..) => {
                let RawValue::Scalar(s) = value else {
                    return Err(ConfigError::Invalid {
                        key: spec.key,
                        value: shown(spec, value),
                        expected: "a single value, not a list",
                    });
                };
                let s = s.trim();
                let ok = match spec.form {
                    Form::HttpUrl => is_http_url(s),
                    Form::PositiveDuration => parse_duration(s).is_ok_and(|d| !d.is_zero()),
                    Form::DatabaseUri => is_database_uri(s),
                    Form::OptionalHostPort => s.is_empty() || is_host_port(s),
                    Form::HostPort => is_host_port(s),
                    Form::U32 => s.parse::<u32>().is_ok(),
                    Form::NonEmpty => !s.is_empty(),
                    Form::Text | Form::List | Form::Bool => true,
                };
                if !ok {
                    return Err(invalid());
                }
                match spec.slot {
                    Slot::Text(field, _) => *field(self) = s.to_owned(),
                    Slot::U32(field, _) => *field(self) = s.parse().map_err(|_| invalid())?,
                    Slot::Duration(field, _) => {
                        *field(self) = parse_duration(s).map_err(|_| invalid())?
                    }
                    Slot::Bool(..) | Slot::List(..) => unreachable!("handled above"),
                }
                Ok(())
            }
        }
    }

    /// The effective value of `key` as `status` shows it, with secrets masked.
    pub fn display(&self, key: &str) -> Option<String> {
        let spec = key_spec(key)?;
        let v = match spec.slot {
            Slot::Bool(_, field) => {
                let b = *field(self);
                match self.unrecognized_bools.get(spec.key) {
                    Some(text) => {
                        format!("{b} (from {text:?}, which ttn-lw-stack does not read as true)")
                    }
                    None => b.to_string(),
                }
            }
            Slot::List(_, field) => {
                let mut s = String::from("[");
                for (i, e) in field(self).iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(&format!("{e:?}"));
                }
                s.push(']');
                s
            }
            Slot::U32(_, field) => field(self).to_string(),
            Slot::Duration(_, field) => format_duration(*field(self)),
            // Secrets: say only whether one is set.
            Slot::Text(_, field) if spec.secret => String::from(if field(self).is_empty() {
                "(empty)"
            } else {
                "(set)"
            }),
            Slot::Text(_, field) => match spec.form {
                Form::HttpUrl | Form::DatabaseUri => redact_uri(field(self)),
                _ => field(self).clone(),
            },
        };
        Some(v)
    }

    /// The Redis server the schedule uses, or `None` for the state directory.
    ///
    /// The rule is ttn-lw-stack's for the Identity Server's telemetry task queue
    /// (`NewIdentityServerTelemetryTaskRedis` uses `cache.redis`, after
    /// `shared.InitializeFallbacks`): the `redis` block replaces the whole `cache.redis` block
    /// when `cache.redis` has no address, or when `redis` differs from the default and
    /// `cache.redis` equals it. Blocks are compared on the keys this project reads (address,
    /// password, database); an address nobody set compares as ttn-lw-stack's default
    /// `localhost:6379`. The chosen block is used only when its address was configured:
    /// ttn-lw-stack would then use `localhost:6379`, this agent its state directory.
    ///
    /// ```
    /// use ttn_telemetry_core::{Config, RawValue};
    /// let mut c = Config::default();
    /// assert_eq!(c.redis(), None);
    /// c.set("redis.address", &RawValue::Scalar("redis:6379".into())).unwrap();
    /// assert_eq!(c.redis().unwrap().block, "redis");
    /// c.set("cache.redis.address", &RawValue::Scalar("cache:6379".into())).unwrap();
    /// assert_eq!(c.redis().unwrap().address, "cache:6379");
    /// ```
    pub fn redis(&self) -> Option<RedisSettings> {
        struct Block<'a> {
            name: &'static str,
            address: &'a str,
            password: &'a str,
            database: u32,
        }
        let cache = Block {
            name: "cache.redis",
            address: &self.cache_redis_address,
            password: &self.cache_redis_password,
            database: self.cache_redis_database,
        };
        let redis = Block {
            name: "redis",
            address: &self.redis_address,
            password: &self.redis_password,
            database: self.redis_database,
        };
        // An address nobody set is ttn-lw-stack's default, so a block is never "zero" here.
        let is_default = |b: &Block<'_>| {
            (b.address.is_empty() || b.address == REFERENCE_DEFAULT_REDIS_ADDRESS)
                && b.password.is_empty()
                && b.database == 0
        };
        let chosen = if !is_default(&redis) && is_default(&cache) {
            redis
        } else {
            cache
        };
        (!chosen.address.is_empty()).then(|| RedisSettings {
            block: chosen.name,
            address: chosen.address.to_owned(),
            password: chosen.password.to_owned(),
            database: chosen.database,
        })
    }

    /// One line per boolean key whose effective value ttn-lw-stack would not read as a boolean:
    /// the key, the value, and that it is read as false. Hosts print each once at start-up.
    pub fn warnings(&self) -> Vec<String> {
        self.unrecognized_bools
            .iter()
            .map(|(key, text)| {
                format!(
                    "{key}: {text:?} is not a value ttn-lw-stack reads as true (true or false); it is read as false"
                )
            })
            .collect()
    }

    /// The UID elements in use: `telemetry.uid-elements` when non-empty, else the five Console
    /// base URLs (SPEC §3).
    pub fn uid_elements(&self) -> Vec<String> {
        if self.uid_elements.is_empty() {
            self.console_base_urls.to_vec()
        } else {
            self.uid_elements.clone()
        }
    }

    /// Checks rules that span keys. Hosts call it once all sources are applied.
    pub fn check(&self) -> Result<(), ConfigError> {
        // Base URLs are checked as URLs when set, so they cannot be empty; uid-elements refuses
        // all-empty lists itself. This leaves the UID computation as the final word.
        crate::uid::compute_uid(&self.uid_elements())
            .map(|_| ())
            .map_err(|_| ConfigError::Invalid {
                key: "telemetry.uid-elements",
                value: String::new(),
                expected: "at least one non-empty element",
            })
    }

    /// Whether reports are counted and kept but never sent: `telemetry.local-only` is true and
    /// telemetry is on. Off wins: with [`Config::off_reason`] set, nothing is counted at all.
    pub fn local_only(&self) -> bool {
        self.local_only && self.off_reason().is_none()
    }

    /// Why telemetry is off, or `None` when reports are counted (and sent, unless
    /// [`Config::local_only`]).
    pub fn off_reason(&self) -> Option<&'static str> {
        if self.do_not_track {
            Some("DO_NOT_TRACK is set")
        } else if !self.enable {
            Some("telemetry.enable is false")
        } else if !self.entity_count_enable {
            Some("telemetry.entity-count-telemetry.enable is false")
        } else {
            None
        }
    }
}

fn shown(spec: &KeySpec, value: &RawValue) -> String {
    if spec.secret {
        return String::from("***");
    }
    match value {
        RawValue::Scalar(s) => redact_uri(s),
        RawValue::List(l) => l.join(" "),
    }
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A duration string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not of the form `[0-9.]+unit` repeated.
    Syntax,
    /// Negative durations have no meaning for an interval.
    Negative,
    /// Longer than Go's limit of about 292 years.
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Syntax => "expected a duration such as 90s, 1h30m or 24h",
            DurationError::Negative => "duration is negative",
            DurationError::Overflow => "duration is too long",
        })
    }
}

impl core::error::Error for DurationError {}

/// Parses a Go duration (`time.ParseDuration`): `300ms`, `1.5h`, `2h45m`; units `ns`, `us`
/// (`µs`), `ms`, `s`, `m`, `h`. `0` alone is zero. Negative durations are refused.
///
/// ```
/// use core::time::Duration;
/// use ttn_telemetry_core::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("banana").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    const MAX_NANOS: u128 = i64::MAX as u128;
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('-') {
        // "-0" is zero in Go; any other negative value is refused.
        return match parse_duration(r) {
            Ok(d) if d.is_zero() => Ok(d),
            Ok(_) => Err(DurationError::Negative),
            Err(e) => Err(e),
        };
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(DurationError::Syntax);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(DurationError::Syntax),
        };
        let mut v: u128 = 0;
        for d in int.bytes() {
            v = v * 10 + u128::from(d - b'0');
            if v > MAX_NANOS {
                return Err(DurationError::Overflow);
            }
        }
        v *= scale;
        // Fractions keep nanosecond precision, as far as 20 digits go.
        let mut num: u128 = 0;
        let mut den: u128 = 1;
        for d in frac.bytes().take(20) {
            num = num * 10 + u128::from(d - b'0');
            den *= 10;
        }
        v += num * scale / den;
        total += v;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
        rest = after;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration as Go's `Duration.String` does: `24h0m0s`, `1m30s`, `1.5s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return String::from("0s");
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn decimal(v: u128, scale: u128) -> String {
    let (int, mut frac) = (v / scale, v % scale);
    if frac == 0 {
        return int.to_string();
    }
    let mut digits = String::new();
    let mut s = scale / 10;
    while frac > 0 && s > 0 {
        digits.push(char::from(b'0' + (frac / s) as u8));
        frac %= s;
        s /= 10;
    }
    format!("{int}.{digits}")
}

fn authority(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|h| !h.is_empty() && h.contains(':')),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    host_ok && !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok()
}

fn is_http_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let lower = s.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("http://") {
        &s[7..]
    } else if lower.starts_with("https://") {
        &s[8..]
    } else {
        return false;
    };
    let auth = authority(rest);
    let hostport = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    if hostport.is_empty() {
        return false;
    }
    let ends_with_port = hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    if ends_with_port {
        is_host_port(hostport)
    } else {
        is_host_port(&format!("{hostport}:0"))
    }
}

/// `sqlite:PATH`, or a PostgreSQL URI or `key=value` conninfo string that libpq can read
/// ([`crate::parse_conninfo`]). Which keys and values PostgreSQL accepts is the host's check.
fn is_database_uri(s: &str) -> bool {
    if let Some(path) = s.strip_prefix("sqlite:") {
        return !path.is_empty();
    }
    if crate::conninfo::is_postgres_uri(s) {
        return !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && crate::parse_conninfo(s).is_ok();
    }
    s.contains('=') && crate::parse_conninfo(s).is_ok_and(|kv| !kv.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn s(v: &str) -> RawValue {
        RawValue::Scalar(v.to_owned())
    }

    #[test]
    fn defaults_are_valid_and_applied() {
        let c = Config::default();
        for k in KEYS {
            let mut fresh = c.clone();
            fresh.set(k.key, &s(k.default)).unwrap();
            assert_eq!(fresh, c, "{}", k.key);
        }
        assert!(c.enable && c.entity_count_enable);
        assert_eq!(c.interval, Duration::from_secs(86_400));
        assert_eq!(c.uid_elements(), vec![String::from(DEFAULT_BASE_URL); 5]);
        assert_eq!(c.off_reason(), None);
        c.check().unwrap();
    }

    /// `telemetry.local-only`: off by default, read as every boolean is, and never stronger than
    /// off (`telemetry.enable: false`, the entity-count key, or `DO_NOT_TRACK`).
    #[test]
    fn local_only_is_a_boolean_key_that_off_overrides() {
        let spec = key_spec("telemetry.local-only").unwrap();
        assert_eq!(
            (spec.default, spec.form, spec.secret),
            ("false", Form::Bool, false)
        );
        assert_eq!(env_var_name(spec.key), "TTN_LW_TELEMETRY_LOCAL_ONLY");
        let mut c = Config::default();
        assert!(!c.local_only && !c.local_only());
        c.set("telemetry.local-only", &s("True")).unwrap();
        assert!(c.local_only());
        assert_eq!(c.off_reason(), None, "local-only is on, not off");
        assert_eq!(c.display("telemetry.local-only").as_deref(), Some("true"));
        let mut off = c.clone();
        off.set("telemetry.enable", &s("false")).unwrap();
        assert!(!off.local_only());
        assert_eq!(off.off_reason(), Some("telemetry.enable is false"));
        let mut off = c.clone();
        off.set("telemetry.entity-count-telemetry.enable", &s("0"))
            .unwrap();
        assert!(!off.local_only());
        let mut off = c.clone();
        off.do_not_track = true;
        assert!(!off.local_only());
        assert_eq!(off.off_reason(), Some("DO_NOT_TRACK is set"));
        // Text Go does not read as a boolean is false, with the warning: never local-only by
        // accident, never an error.
        c.set("telemetry.local-only", &s("yes")).unwrap();
        assert!(!c.local_only());
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].starts_with("telemetry.local-only: \"yes\""));
        assert_eq!(
            LOCAL_ONLY_NOTE,
            "local only: reports are kept here and never sent"
        );
    }

    /// One row of [`KEYS`] per key: each key writes and shows its own field, and no other.
    #[test]
    fn each_key_sets_and_shows_its_own_field() {
        let defaults = Config::default();
        for spec in KEYS {
            let sample = match spec.form {
                // The opposite of the default, so that the change shows.
                Form::Bool if spec.default == "true" => "false",
                Form::Bool => "true",
                Form::HttpUrl => "https://k.example/x",
                Form::PositiveDuration => "7s",
                Form::List => "k1 k2",
                Form::DatabaseUri => "sqlite:/k",
                Form::OptionalHostPort | Form::HostPort => "k.example:7",
                Form::U32 => "7",
                Form::NonEmpty | Form::Text => "k-text",
            };
            let mut c = Config::default();
            c.set(spec.key, &s(sample)).unwrap();
            assert_ne!(
                c.display(spec.key),
                defaults.display(spec.key),
                "{}",
                spec.key
            );
            for other in KEYS.iter().filter(|o| o.key != spec.key) {
                assert_eq!(
                    c.display(other.key),
                    defaults.display(other.key),
                    "{} changed {}",
                    spec.key,
                    other.key
                );
            }
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("90s", 90_000_000_000u64),
            ("1h30m", 5_400_000_000_000),
            ("24h", 86_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("2h45m10.5s", 9_910_500_000_000),
            ("1µs", 1_000),
            ("10us", 10_000),
            ("7ns", 7),
            (".5s", 500_000_000),
            ("0", 0),
            ("+5s", 5_000_000_000),
            ("-0", 0),
        ];
        for (text, nanos) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_nanos(nanos)),
                "{text}"
            );
        }
        for bad in ["banana", "", "1", "s", "1x", "1h 30m", ".s", "1..5s", "h1"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Syntax), "{bad}");
        }
        assert_eq!(parse_duration("-1h"), Err(DurationError::Negative));
        assert_eq!(parse_duration("2562048h"), Err(DurationError::Overflow));
        assert_eq!(
            parse_duration("2562047h"),
            Ok(Duration::from_secs(2_562_047 * 3600))
        );
    }

    #[test]
    fn durations_format_like_go() {
        let cases = [
            (86_400_000_000_000u64, "24h0m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (90_000_000_000, "1m30s"),
            (2_000_000_000, "2s"),
            (1_500_000_000, "1.5s"),
            (300_000_000, "300ms"),
            (1_500, "1.5µs"),
            (0, "0s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(Duration::from_nanos(nanos)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_nanos(nanos)));
        }
    }

    #[test]
    fn interval_rejects_bad_values() {
        let mut c = Config::default();
        for bad in ["banana", "-1h", "0s", "0", "1 day"] {
            let err = c
                .set("telemetry.entity-count-telemetry.interval", &s(bad))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid value {bad:?} for telemetry.entity-count-telemetry.interval: expected a positive duration such as 90s, 1h30m or 24h"
                )
            );
        }
        c.set("telemetry.entity-count-telemetry.interval", &s("2s"))
            .unwrap();
        assert_eq!(c.interval, Duration::from_secs(2));
    }

    #[test]
    fn forms() {
        let mut c = Config::default();
        let cases: &[(&str, &str, bool)] = &[
            ("telemetry.enable", "false", true),
            ("telemetry.enable", "T", true),
            // Read as false with a warning, never refused (see `booleans_read_as_ttn_lw_stack`).
            ("telemetry.enable", "yes", true),
            ("telemetry.target", "http://127.0.0.1:8080/collect", true),
            ("telemetry.target", "https://[::1]:443/x", true),
            ("telemetry.target", "https://example.org", true),
            ("telemetry.target", "ftp://example.org", false),
            ("telemetry.target", "http://", false),
            ("telemetry.target", "http://host:99999/", false),
            ("telemetry.target", "http://ho st/", false),
            ("telemetry.target", "not a url", false),
            ("is.database-uri", "sqlite:/tmp/is.db", true),
            ("is.database-uri", "postgres://u@h/db", true),
            ("is.database-uri", "mysql://h/db", false),
            ("is.database-uri", "sqlite:", false),
            ("redis.address", "", true),
            ("redis.address", "localhost:6379", true),
            ("redis.address", "localhost", false),
            ("redis.database", "3", true),
            ("redis.database", "-1", false),
            ("telemetry.admin.listen", "[::1]:1886", true),
            ("telemetry.admin.listen", ":1886", false),
            ("telemetry.state-dir", "", false),
        ];
        for (key, value, ok) in cases {
            assert_eq!(c.set(key, &s(value)).is_ok(), *ok, "{key}={value}");
        }
        assert_eq!(
            c.set("telemetry.target", &RawValue::List(vec!["a".into()]))
                .unwrap_err()
                .to_string(),
            "invalid value \"a\" for telemetry.target: expected a single value, not a list"
        );
        assert_eq!(
            c.set("nope", &s("1")),
            Err(ConfigError::UnknownKey("nope".into()))
        );
    }

    /// Every spelling ttn-lw-stack (viper `GetBool` → `cast.ToBool` → `strconv.ParseBool`)
    /// reads as true or false, and what it does not read at all: false, with a warning.
    #[test]
    fn booleans_read_as_ttn_lw_stack() {
        let truths = ["1", "t", "T", "true", "TRUE", "True"];
        let falsehoods = ["0", "f", "F", "false", "FALSE", "False"];
        // yaml.v3 gives these as strings, env and flags as text: ParseBool refuses them all,
        // so ttn-lw-stack reads false.
        let unread = [
            "yes", "no", "on", "off", "y", "n", "Yes", "NO", "", " true", "true ", "tRUE", "2",
            "-1", "maybe", "enable",
        ];
        for key in [
            "telemetry.enable",
            "telemetry.entity-count-telemetry.enable",
        ] {
            for v in truths {
                let mut c = Config::default();
                c.set(key, &s("false")).unwrap();
                c.set(key, &s(v)).unwrap();
                assert_eq!(c.off_reason(), None, "{key}={v:?}");
                assert!(c.warnings().is_empty());
            }
            for v in falsehoods {
                let mut c = Config::default();
                c.set(key, &s(v)).unwrap();
                assert!(c.off_reason().is_some(), "{key}={v:?}");
                assert!(c.warnings().is_empty(), "{key}={v:?}");
                assert_eq!(c.display(key).unwrap(), "false");
            }
            for v in unread {
                let mut c = Config::default();
                c.set(key, &s(v)).unwrap();
                assert!(c.off_reason().is_some(), "{key}={v:?} must be off");
                assert_eq!(
                    c.warnings(),
                    vec![format!(
                        "{key}: {v:?} is not a value ttn-lw-stack reads as true (true or false); it is read as false"
                    )]
                );
                assert!(c.display(key).unwrap().starts_with("false (from "));
                // A later source with a real boolean decides, and the warning goes.
                c.set(key, &s("true")).unwrap();
                assert!(c.warnings().is_empty() && c.off_reason().is_none());
            }
            let mut c = Config::default();
            c.set(key, &RawValue::List(vec!["true".into()])).unwrap();
            assert!(c.off_reason().is_some(), "a list is not read as true");
            assert_eq!(c.warnings().len(), 1);
        }
    }

    /// `shared.InitializeFallbacks` + `NewIdentityServerTelemetryTaskRedis`: `cache.redis`,
    /// replaced as a whole block by `redis` when `redis` is not the default and `cache.redis`
    /// is; an address nobody set means no Redis.
    #[test]
    fn redis_block_falls_back_as_the_task_queue_does() {
        let set = |pairs: &[(&str, &str)]| {
            let mut c = Config::default();
            for (k, v) in pairs {
                c.set(k, &s(v)).unwrap();
            }
            c.redis()
                .map(|r| (r.block, r.address, r.password, r.database))
        };
        let r = |block, address: &str, password: &str, database| {
            Some((block, address.to_owned(), password.to_owned(), database))
        };
        assert_eq!(set(&[]), None);
        assert_eq!(
            set(&[
                ("redis.address", "r:1"),
                ("redis.password", "p"),
                ("redis.database", "2")
            ]),
            r("redis", "r:1", "p", 2)
        );
        assert_eq!(
            set(&[("cache.redis.address", "c:1"), ("redis.address", "r:1")]),
            r("cache.redis", "c:1", "", 0)
        );
        // Whole block, not per field: cache.redis has an address, so redis.password is unused.
        assert_eq!(
            set(&[("cache.redis.address", "c:1"), ("redis.password", "p")]),
            r("cache.redis", "c:1", "", 0)
        );
        // cache.redis equal to ttn-lw-stack's default yields to a configured redis block.
        assert_eq!(
            set(&[
                ("cache.redis.address", "localhost:6379"),
                ("redis.address", "r:1")
            ]),
            r("redis", "r:1", "", 0)
        );
        assert_eq!(
            set(&[("cache.redis.address", "localhost:6379")]),
            r("cache.redis", "localhost:6379", "", 0)
        );
        // A non-default cache.redis block (database 3) keeps its own (unset) address: ttn-lw-stack
        // would use localhost:6379; we use no Redis rather than one nobody configured.
        assert_eq!(
            set(&[("cache.redis.database", "3"), ("redis.address", "r:1")]),
            None
        );
        // Only a password for redis: ttn-lw-stack uses localhost:6379 with it; we, no Redis.
        assert_eq!(set(&[("redis.password", "p")]), None);
    }

    #[test]
    fn uid_elements() {
        let mut c = Config::default();
        c.set("telemetry.uid-elements", &s("foo bar")).unwrap();
        assert_eq!(
            c.uid_elements(),
            vec![String::from("foo"), String::from("bar")]
        );
        c.set(
            "telemetry.uid-elements",
            &RawValue::List(vec!["".into(), "x".into()]),
        )
        .unwrap();
        let err = c.set(
            "telemetry.uid-elements",
            &RawValue::List(vec!["".into(), "".into()]),
        );
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                key: "telemetry.uid-elements",
                ..
            })
        ));
        c.set("telemetry.uid-elements", &s("  ")).unwrap();
        assert!(c.uid_elements.is_empty());
        c.check().unwrap();
    }

    #[test]
    fn secrets_never_shown() {
        let mut c = Config::default();
        let err = c
            .set("is.database-uri", &s("mysql://root:hunter2@h/db"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("root:***@h/db"));
        c.set("is.database-uri", &s("postgresql://root:hunter2@h/db"))
            .unwrap();
        assert_eq!(
            c.display("is.database-uri").unwrap(),
            "postgresql://root:***@h/db"
        );
        c.set("redis.password", &s("hunter2")).unwrap();
        assert_eq!(c.display("redis.password").unwrap(), "(set)");
        assert_eq!(c.display("cache.redis.password").unwrap(), "(empty)");
        c.set("cache.redis.password", &s("hunter2")).unwrap();
        assert_eq!(c.display("cache.redis.password").unwrap(), "(set)");
        assert_eq!(c.display("telemetry.admin.token").unwrap(), "(empty)");
        for k in KEYS {
            assert!(c.display(k.key).is_some(), "{}", k.key);
        }
        assert_eq!(redact_uri("sqlite:/x/y"), "sqlite:/x/y");
        assert_eq!(redact_uri("http://u@h/"), "http://u@h/");
    }

    #[test]
    fn env_and_off() {
        assert_eq!(env_var_name("redis.address"), "TTN_LW_REDIS_ADDRESS");
        assert!(do_not_track("1") && do_not_track("true"));
        assert!(!do_not_track("") && !do_not_track("0") && !do_not_track("false"));
        let c = Config {
            do_not_track: true,
            ..Config::default()
        };
        assert_eq!(c.off_reason(), Some("DO_NOT_TRACK is set"));
        let mut c = Config::default();
        c.set("telemetry.entity-count-telemetry.enable", &s("false"))
            .unwrap();
        assert_eq!(
            c.off_reason(),
            Some("telemetry.entity-count-telemetry.enable is false")
        );
    }
}
