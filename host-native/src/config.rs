//! Loading the configuration as The Things Stack does (SPEC §5), recording where each effective
//! value came from.
//!
//! Sources, later wins: built-in defaults < YAML files (`-c/--config FILE`, in the order given)
//! < environment `TTN_LW_<KEY>` < flags `--<key> VALUE`. `DO_NOT_TRACK` turns telemetry off
//! whatever the others say. The core checks every value ([`Config::set`]); this module only
//! reads the sources and remembers, per key, which one decided ([`Sources`]) so that `status`
//! can say so.
//!
//! Decisions where SPEC is silent:
//! - YAML keys are nested as TTS writes them (`console: ui: is: base-url: …`). Keys this project
//!   does not use are ignored, so a whole `ttn-lw-stack` config file loads unchanged.
//! - A YAML scalar of any type (string, number, boolean) is passed to the core as its text; a
//!   sequence is a list; `null` (an empty `key:`) leaves the key as it was. A mapping where a
//!   value is expected, or a non-mapping where a section is expected (`telemetry: false`), is an
//!   error naming the key: silently ignoring it could leave telemetry on against the
//!   operator's intent.
//! - A scalar flag given twice keeps the last value; a list flag collects every value.
//! - `DO_NOT_TRACK` is recorded as the source of `telemetry.enable`, because it is what decides
//!   whether telemetry is on (the key's own value stays visible in [`Config::enable`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use ttn_telemetry_core::{Config, Form, KEYS, KeySpec, RawValue, do_not_track, env_var_name};

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A YAML configuration file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (`--key`).
    Flag,
    /// The `DO_NOT_TRACK` environment variable.
    DoNotTrack,
    /// Set by the program itself (the demo points `is.database-uri` at its own database).
    Program(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag => f.write_str("command line"),
            Source::DoNotTrack => f.write_str("env DO_NOT_TRACK"),
            Source::Program(why) => f.write_str(why),
        }
    }
}

/// The source that decided each key, keyed by the key as in [`KEYS`].
pub type Sources = BTreeMap<&'static str, Source>;

/// The effective configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration, checked by the core.
    pub config: Config,
    /// The source of every key of [`KEYS`].
    pub sources: Sources,
}

impl Loaded {
    /// Sets one key from the program itself (for example the demo's database), recording why.
    pub fn set_by_program(
        &mut self,
        key: &'static str,
        value: &str,
        why: &'static str,
    ) -> Result<(), ConfigError> {
        let source = Source::Program(why);
        self.config
            .set(key, &RawValue::Scalar(value.to_owned()))
            .map_err(|error| ConfigError::Value {
                source: source.clone(),
                error,
            })?;
        self.sources.insert(key, source);
        Ok(())
    }
}

/// What the command line said about configuration.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `-c/--config` files, in the order given.
    pub files: Vec<PathBuf>,
    /// `--<key> VALUE` flags: every value given for each key, in order.
    pub flags: Vec<(&'static str, Vec<String>)>,
}

/// The configuration cannot be used. Each one is shown as one line and exits with code 2.
#[derive(Debug)]
pub enum ConfigError {
    /// A configuration file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A configuration file is not valid YAML, or its top level is not a mapping.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A YAML node has the wrong shape for its key (a mapping where a value is expected, …).
    Shape {
        /// Where the node came from.
        source: Source,
        /// The dotted key of the node.
        key: String,
        /// What was found.
        found: &'static str,
        /// What is expected there.
        expected: &'static str,
    },
    /// A value was refused by the core.
    Value {
        /// Where the value came from.
        source: Source,
        /// The core's error: key, value (secrets masked) and expected form.
        error: ttn_telemetry_core::ConfigError,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(
                f,
                "config file {}: cannot be read ({error}): expected a readable YAML file",
                path.display()
            ),
            ConfigError::Parse { path, reason } => write!(
                f,
                "config file {}: cannot be parsed ({}): expected YAML as ttn-lw-stack reads it",
                path.display(),
                one_line(reason)
            ),
            ConfigError::Shape {
                source,
                key,
                found,
                expected,
            } => write!(f, "{source}: {key} is {found}: expected {expected}"),
            ConfigError::Value { source, error } => write!(f, "{source}: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads the effective configuration from defaults, `args.files`, the environment (read
/// through `env`) and `args.flags`, in that order, and checks it.
///
/// `env` is a lookup so that tests need not touch the process environment.
pub fn load(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    let mut config = Config::default();
    let mut sources: Sources = KEYS.iter().map(|k| (k.key, Source::Default)).collect();
    let mut apply = |spec: &'static KeySpec, value: RawValue, source: Source| {
        config
            .set(spec.key, &value)
            .map_err(|error| ConfigError::Value {
                source: source.clone(),
                error,
            })?;
        sources.insert(spec.key, source);
        Ok::<(), ConfigError>(())
    };

    for path in &args.files {
        for (spec, value) in read_file(path)? {
            apply(spec, value, Source::File(path.clone()))?;
        }
    }
    for spec in KEYS {
        let name = env_var_name(spec.key);
        if let Some(v) = env(&name) {
            apply(spec, RawValue::Scalar(v), Source::Env(name))?;
        }
    }
    for (key, values) in &args.flags {
        let Some(spec) = KEYS.iter().find(|k| k.key == *key) else {
            continue;
        };
        let value = if spec.form == Form::List {
            RawValue::List(values.clone())
        } else {
            match values.last() {
                Some(v) => RawValue::Scalar(v.clone()),
                None => continue,
            }
        };
        apply(spec, value, Source::Flag)?;
    }
    if env("DO_NOT_TRACK").is_some_and(|v| do_not_track(&v)) {
        config.do_not_track = true;
        sources.insert("telemetry.enable", Source::DoNotTrack);
    }
    check_database_uri(&config, &sources)?;
    config.check().map_err(|error| ConfigError::Value {
        source: sources
            .get("telemetry.uid-elements")
            .cloned()
            .unwrap_or(Source::Default),
        error,
    })?;
    Ok(Loaded { config, sources })
}

/// The core checks only the syntax of `is.database-uri`; a PostgreSQL connection string must
/// also hold settings the driver accepts (port, `sslmode`, TLS files given in pairs…), so that a
/// typo stops start-up (exit 2) instead of failing at the first count. The line names the key at
/// fault and shows the string with its password masked.
fn check_database_uri(config: &Config, sources: &Sources) -> Result<(), ConfigError> {
    let uri = &config.database_uri;
    if uri.starts_with("sqlite:") {
        return Ok(());
    }
    let Err(why) = crate::pgconn::PgTarget::parse(uri) else {
        return Ok(());
    };
    Err(ConfigError::Value {
        source: sources
            .get("is.database-uri")
            .cloned()
            .unwrap_or(Source::Default),
        error: ttn_telemetry_core::ConfigError::Invalid {
            key: "is.database-uri",
            value: ttn_telemetry_core::redact_uri(uri),
            // The core's error type holds a static description; this runs once, just before
            // the process exits with code 2.
            expected: Box::leak(
                format!("a connection string as PostgreSQL reads it ({why}), or sqlite:PATH")
                    .into_boxed_str(),
            ),
        },
    })
}

/// Reads one YAML file and returns the values it sets for keys of [`KEYS`], in [`KEYS`] order.
pub fn read_file(path: &Path) -> Result<Vec<(&'static KeySpec, RawValue)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    read_yaml(&text, &Source::File(path.to_owned())).map_err(|e| match e {
        YamlError::Syntax(reason) => ConfigError::Parse {
            path: path.to_owned(),
            reason,
        },
        YamlError::Config(e) => e,
    })
}

/// A YAML document could not be read.
#[derive(Debug)]
enum YamlError {
    Syntax(String),
    Config(ConfigError),
}

fn read_yaml(text: &str, source: &Source) -> Result<Vec<(&'static KeySpec, RawValue)>, YamlError> {
    let mut doc: Value =
        serde_norway::from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))?;
    // Operators share settings between sections with anchors and `<<:` merge keys.
    doc.apply_merge()
        .map_err(|e| YamlError::Syntax(e.to_string()))?;
    match doc {
        Value::Null | Value::Mapping(_) => {}
        _ => {
            return Err(YamlError::Syntax(
                "the top level is not a mapping of sections".to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    for spec in KEYS {
        if let Some(value) = lookup(&doc, spec, source).map_err(YamlError::Config)? {
            out.push((spec, value));
        }
    }
    Ok(out)
}

/// Finds `spec.key` in the nested mapping `doc`; `None` when absent or null.
fn lookup(
    doc: &Value,
    spec: &'static KeySpec,
    source: &Source,
) -> Result<Option<RawValue>, ConfigError> {
    let segments: Vec<&str> = spec.key.split('.').collect();
    let mut node = doc;
    for (i, seg) in segments.iter().enumerate() {
        let here = segments[..i].join(".");
        match node {
            Value::Null => return Ok(None),
            Value::Mapping(m) => match m.get(*seg) {
                Some(next) => node = next,
                None => return Ok(None),
            },
            other => {
                return Err(ConfigError::Shape {
                    source: source.clone(),
                    key: here,
                    found: kind(other),
                    expected: "a mapping of nested keys, as ttn-lw-stack writes them",
                });
            }
        }
    }
    let shape_error = |found| ConfigError::Shape {
        source: source.clone(),
        key: spec.key.to_owned(),
        found,
        expected: spec.form.expected(),
    };
    match node {
        Value::Null => Ok(None),
        Value::Sequence(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match scalar_text(item) {
                    Some(s) => list.push(s),
                    None => return Err(shape_error("a list with a non-scalar item")),
                }
            }
            Ok(Some(RawValue::List(list)))
        }
        other => match scalar_text(other) {
            Some(s) => Ok(Some(RawValue::Scalar(s))),
            None => Err(shape_error(kind(other))),
        },
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Vec<(&'static str, RawValue)>, YamlError> {
        read_yaml(text, &Source::Flag).map(|v| v.into_iter().map(|(k, v)| (k.key, v)).collect())
    }

    #[test]
    fn nested_keys_scalars_of_any_type_and_lists() {
        let got = yaml(
            "telemetry:\n  enable: false\n  uid-elements: [a, 1, true]\n  entity-count-telemetry:\n    interval: 1h\nredis:\n  database: 3\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("telemetry.enable", RawValue::Scalar("false".into())),
                (
                    "telemetry.uid-elements",
                    RawValue::List(vec!["a".into(), "1".into(), "true".into()])
                ),
                (
                    "telemetry.entity-count-telemetry.interval",
                    RawValue::Scalar("1h".into())
                ),
                ("redis.database", RawValue::Scalar("3".into())),
            ]
        );
    }

    #[test]
    fn anchors_and_merge_keys_resolve() {
        let got = yaml(
            "base: &api\n  base-url: https://eu1.example.net/api/v3\nconsole:\n  ui:\n    is:\n      <<: *api\n    gs: *api\n",
        )
        .unwrap();
        let url = RawValue::Scalar("https://eu1.example.net/api/v3".into());
        assert_eq!(
            got,
            vec![
                ("console.ui.is.base-url", url.clone()),
                ("console.ui.gs.base-url", url)
            ]
        );
    }

    #[test]
    fn empty_document_and_null_values_set_nothing() {
        assert!(yaml("").unwrap().is_empty());
        assert!(yaml("telemetry:\n  target:\n").unwrap().is_empty());
        assert!(yaml("telemetry:\n").unwrap().is_empty());
    }

    #[test]
    fn mapping_where_a_value_is_expected_names_the_key() {
        let Err(YamlError::Config(e)) = yaml("telemetry:\n  target:\n    url: x\n") else {
            panic!("accepted a mapping as a value");
        };
        assert_eq!(
            e.to_string(),
            "command line: telemetry.target is a mapping: expected an http:// or https:// url with a host"
        );
    }

    #[test]
    fn scalar_where_a_section_is_expected_names_the_section() {
        let Err(YamlError::Config(e)) = yaml("telemetry: false\n") else {
            panic!("accepted a scalar as a section");
        };
        assert!(
            e.to_string()
                .starts_with("command line: telemetry is a boolean: expected a mapping")
        );
    }

    #[test]
    fn top_level_list_is_a_parse_error() {
        assert!(matches!(yaml("- a\n- b\n"), Err(YamlError::Syntax(_))));
        assert!(matches!(yaml("a: [\n"), Err(YamlError::Syntax(_))));
    }
}
