//! Loading the configuration as `ttn-lw-stack` does (SPEC §5), recording where each effective
//! value came from.
//!
//! Sources, highest first: flags `--<key>` > environment `TTN_LW_<KEY>` > YAML files > built-in
//! defaults. `DO_NOT_TRACK` turns telemetry off whatever the others say. The core checks every
//! value ([`Config::set`]); this module reads the sources as lorawan-stack's `pkg/config` (viper,
//! pflag, cast) reads them and remembers, per key, which one decided ([`Sources`]) so that
//! `status` can say so.
//!
//! # Which files (`pkg/config` `WithConfigFileFlag` and `ReadInConfig`)
//! - `-c/--config` given (a pflag string slice: repeatable, and comma-separated with CSV
//!   quoting): exactly those files; a missing one is an error.
//! - Else `TTN_LW_CONFIG` set: its value split on white space (viper's `GetStringSlice` of a
//!   string); a missing one is an error. Set but empty, it names no file at all.
//! - Else the default files, in this order: `./.ttn-lw-stack.yml` (Go `os.Getwd`),
//!   `$HOME/.ttn-lw-stack.yml` (Go `os.UserHomeDir`) and `<user config dir>/.ttn-lw-stack.yml`
//!   (Go `os.UserConfigDir`: `$XDG_CONFIG_HOME` if set and absolute, else `$HOME/.config`;
//!   `~/Library/Application Support` on macOS). One that is missing or that `stat` may not see is
//!   skipped; any other failure (unreadable, not YAML) is an error, as in ttn-lw-stack.
//! - **The file listed first takes precedence**: files are merged in reverse order.
//! - Keys are case-insensitive (viper lower-cases them): `Telemetry: {Enable: false}` is off.
//!
//! # Values
//! - A YAML scalar is passed to the core as the text Go's `cast.ToString` makes of it (a float
//!   as `strconv.FormatFloat(f, 'f', -1, 64)`); a sequence is a list whose null or nested items
//!   are `""` (`cast.ToStringSlice`); `null` (an empty `key:`) leaves the key as it was.
//! - For a boolean key (`*.enable`) a YAML value is read as `cast.ToBool` reads it: a boolean
//!   as is, a number as "not zero", text by `strconv.ParseBool`; a list or mapping is not a
//!   boolean (read as false, with the core's warning).
//! - A list flag is a pflag string slice: each `--key=a,"b,c"` is one CSV record, repeated flags
//!   append, and an empty value is an empty list (which means the §3 fallback).
//! - A scalar flag given twice keeps the last value.
//!
//! The collector reads its own keys (`collector.*`, see `cmd::collect`) through the same
//! reader, [`read_sources`]: the same files, environment and flag rules, another key table.
//!
//! Decisions where SPEC is silent:
//! - Keys this project does not use are ignored, so a whole `ttn-lw-stack` config file loads
//!   unchanged.
//! - A mapping where a value is expected, or a non-mapping where a section is expected
//!   (`telemetry: false`), is an error naming the key: ttn-lw-stack's outcome there depends on
//!   Go's map order, and silently ignoring it could leave telemetry on against the operator's
//!   intent.
//! - Two keys of one mapping that differ only in case (`Telemetry:` and `telemetry:`) are merged,
//!   the later one winning; viper keeps one of them at random.
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

/// How a configuration file came to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrigin {
    /// Named by `-c/--config`.
    Flag,
    /// Named by `TTN_LW_CONFIG`.
    Env,
    /// One of the default locations, found present.
    Default,
}

impl fmt::Display for FileOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOrigin::Flag => "-c/--config",
            FileOrigin::Env => "TTN_LW_CONFIG",
            FileOrigin::Default => "default location",
        })
    }
}

/// The effective configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration, checked by the core.
    pub config: Config,
    /// The source of every key of [`KEYS`].
    pub sources: Sources,
    /// The configuration files that were read, highest precedence first.
    pub files: Vec<(PathBuf, FileOrigin)>,
}

impl Loaded {
    /// Sets one key from the program itself (for example the demo's database), recording why.
    pub fn set_by_program(
        &mut self,
        key: &'static str,
        value: &str,
        why: &'static str,
    ) -> Result<(), LoadError> {
        let source = Source::Program(why);
        self.config
            .set(key, &RawValue::Scalar(value.to_owned()))
            .map_err(|error| LoadError::Value {
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
    /// `-c/--config` files, in the order given; `None` when the flag was not given (then
    /// `TTN_LW_CONFIG` or the default files apply).
    pub files: Option<Vec<PathBuf>>,
    /// `--<key> VALUE` flags: every value given for each key, in order (for a list key, the
    /// elements, already split as a pflag string slice).
    pub flags: Vec<(&'static str, Vec<String>)>,
}

/// The name of the default configuration file, as ttn-lw-stack looks for it.
pub const DEFAULT_FILE_NAME: &str = ".ttn-lw-stack.yml";

/// Splits one value of a list flag as pflag's string slice does (Go `encoding/csv`, one
/// record): `a,b` is two elements, `"a,b",c` is `a,b` and `c`, `""` inside quotes is a quote,
/// and an empty value is no element.
///
/// viper reads the flag back through pflag's CSV writer, which turns a lone empty element into
/// no element; that is done here too.
pub fn split_list_flag(value: &str) -> Result<Vec<String>, String> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    // encoding/csv skips empty lines before the record and reads one record only.
    let mut rest = value.trim_start_matches(['\n', '\r']);
    if rest.is_empty() {
        return Err("no CSV record in the value".to_owned());
    }
    let mut fields = Vec::new();
    let mut column = 1usize;
    loop {
        let mut field = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if let Some((_, '"')) = chars.peek() {
                        field.push('"');
                        chars.next();
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
                if c == '\r' && quoted[i + 1..].starts_with('\n') {
                    continue;
                }
                field.push(c);
            }
            let Some(end) = end else {
                return Err(format!(
                    "extraneous or missing \" in quoted field (field {column})"
                ));
            };
            rest = &quoted[end..];
            fields.push(field);
            match rest.chars().next() {
                None | Some('\n') => break,
                Some('\r') if rest[1..].is_empty() || rest[1..].starts_with('\n') => break,
                Some(',') => rest = &rest[1..],
                Some(_) => {
                    return Err(format!(
                        "extraneous or missing \" in quoted field (field {column})"
                    ));
                }
            }
        } else {
            let end = rest.find([',', '\n']).unwrap_or(rest.len());
            let raw = &rest[..end];
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.contains('"') {
                return Err(format!("bare \" in non-quoted field (field {column})"));
            }
            fields.push(raw.to_owned());
            if rest[end..].starts_with(',') {
                rest = &rest[end + 1..];
            } else {
                break;
            }
        }
        column += 1;
    }
    if fields.len() == 1 && fields[0].is_empty() {
        fields.clear();
    }
    Ok(fields)
}

/// The configuration cannot be loaded: a file cannot be read or parsed, or a value is refused by
/// the core (the one configuration error type, [`ttn_telemetry_core::ConfigError`], here with
/// its source). Each one is shown as one line and exits with code 2.
#[derive(Debug)]
pub enum LoadError {
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
    /// A value, or the shape of a file's node, was refused by the core's one configuration
    /// error type; this adds where it came from.
    Value {
        /// Where the value came from.
        source: Source,
        /// The core's error: key, value (secrets masked) or shape, and the expected form.
        error: ttn_telemetry_core::ConfigError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, error } => write!(
                f,
                "config file {}: cannot be read ({error}): expected a readable YAML file",
                path.display()
            ),
            LoadError::Parse { path, reason } => write!(
                f,
                "config file {}: cannot be parsed ({}): expected YAML as ttn-lw-stack reads it",
                path.display(),
                one_line(reason)
            ),
            LoadError::Value { source, error } => write!(f, "{source}: {error}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A node of `source` with the wrong shape for `key`.
fn shape(source: &Source, key: String, found: &'static str, expected: &'static str) -> LoadError {
    LoadError::Value {
        source: source.clone(),
        error: ttn_telemetry_core::ConfigError::Shape {
            key,
            found,
            expected,
        },
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The configuration files to read, highest precedence first, as ttn-lw-stack chooses them
/// (see the module docs).
pub fn config_files(
    args: &Args,
    env: &impl Fn(&str) -> Option<String>,
) -> Vec<(PathBuf, FileOrigin)> {
    if let Some(files) = &args.files {
        return files
            .iter()
            .map(|f| (f.clone(), FileOrigin::Flag))
            .collect();
    }
    if let Some(list) = env("TTN_LW_CONFIG") {
        return list
            .split_whitespace()
            .map(|f| (PathBuf::from(f), FileOrigin::Env))
            .collect();
    }
    default_dirs(env)
        .into_iter()
        .map(|d| (d.join(DEFAULT_FILE_NAME), FileOrigin::Default))
        .collect()
}

/// The folders of the default files, in ttn-lw-stack's order: working directory, home, user
/// config dir (each only when Go would find it).
fn default_dirs(env: &impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let nonempty = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut dirs = Vec::new();
    if let Some(cwd) = working_dir(env) {
        dirs.push(cwd);
    }
    let home = nonempty("HOME").map(PathBuf::from);
    if let Some(h) = &home {
        dirs.push(h.clone());
    }
    let config_dir = if cfg!(windows) {
        nonempty("AppData").map(PathBuf::from)
    } else if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library/Application Support"))
    } else {
        match nonempty("XDG_CONFIG_HOME") {
            // Go refuses a relative $XDG_CONFIG_HOME (an error: no config dir).
            Some(x) => Some(PathBuf::from(x)).filter(|p| p.is_absolute()),
            None => home.map(|h| h.join(".config")),
        }
    };
    dirs.extend(config_dir);
    dirs
}

/// The working directory as Go's `os.Getwd` gives it: `$PWD` when it is absolute and is the
/// same directory, so a path through a symbolic link is shown as the operator typed it.
fn working_dir(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    #[cfg(unix)]
    if let Some(pwd) = env("PWD").map(PathBuf::from).filter(|p| p.is_absolute()) {
        use std::os::unix::fs::MetadataExt as _;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(&pwd), std::fs::metadata(&cwd))
            && (a.dev(), a.ino()) == (b.dev(), b.ino())
        {
            return Some(pwd);
        }
    }
    #[cfg(not(unix))]
    let _ = env;
    Some(cwd)
}

/// A configuration key as the sources name it: the agent's keys ([`KEYS`]) and the collector's
/// (`cmd::collect`) are read from the same files, environment and flags by [`read_sources`].
pub trait Key: Sync + 'static {
    /// The dotted key (`telemetry.enable`, `collector.listen`).
    fn key(&self) -> &'static str;
    /// The form of its values: a list, a boolean (read as `cast.ToBool`), or a scalar.
    fn form(&self) -> Form;
}

impl Key for KeySpec {
    fn key(&self) -> &'static str {
        self.key
    }
    fn form(&self) -> Form {
        self.form
    }
}

/// Reads every value that the configuration files, the environment (`TTN_LW_<KEY>`, through
/// `env`) and `args.flags` give for `keys`, lowest precedence first, and hands each to `apply`
/// with its source (the last one applied wins). Returns the files read, highest precedence
/// first (see the module docs for which files).
pub fn read_sources<K: Key>(
    keys: &'static [K],
    args: &Args,
    env: &impl Fn(&str) -> Option<String>,
    mut apply: impl FnMut(&'static K, RawValue, Source) -> Result<(), LoadError>,
) -> Result<Vec<(PathBuf, FileOrigin)>, LoadError> {
    // Lowest precedence first: the file listed first is applied last and so wins.
    let mut files = Vec::new();
    for (path, origin) in config_files(args, env).into_iter().rev() {
        if origin == FileOrigin::Default
            && let Err(e) = std::fs::metadata(&path)
            && matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            )
        {
            continue;
        }
        for (spec, value) in read_file_keys(&path, keys)? {
            apply(spec, value, Source::File(path.clone()))?;
        }
        files.push((path, origin));
    }
    files.reverse();
    for spec in keys {
        let name = env_var_name(spec.key());
        if let Some(v) = env(&name) {
            apply(spec, RawValue::Scalar(v), Source::Env(name))?;
        }
    }
    for (key, values) in &args.flags {
        let Some(spec) = keys.iter().find(|k| k.key() == *key) else {
            continue;
        };
        let value = if spec.form() == Form::List {
            RawValue::List(values.clone())
        } else {
            match values.last() {
                Some(v) => RawValue::Scalar(v.clone()),
                None => continue,
            }
        };
        apply(spec, value, Source::Flag)?;
    }
    Ok(files)
}

/// Loads the effective configuration from defaults, configuration files, the environment (read
/// through `env`) and `args.flags`, lowest precedence first, and checks it.
///
/// `env` is a lookup so that tests need not touch the process environment; it is also where
/// `HOME`, `XDG_CONFIG_HOME`, `PWD` and `TTN_LW_CONFIG` are read.
pub fn load(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Loaded, LoadError> {
    let mut config = Config::default();
    let mut sources: Sources = KEYS.iter().map(|k| (k.key, Source::Default)).collect();
    let files = read_sources(KEYS, args, &env, |spec, value, source| {
        config
            .set(spec.key, &value)
            .map_err(|error| LoadError::Value {
                source: source.clone(),
                error,
            })?;
        sources.insert(spec.key, source);
        Ok(())
    })?;
    if env("DO_NOT_TRACK").is_some_and(|v| do_not_track(&v)) {
        config.do_not_track = true;
        sources.insert("telemetry.enable", Source::DoNotTrack);
    }
    check_database_uri(&config, &sources)?;
    config.check().map_err(|error| LoadError::Value {
        source: sources
            .get("telemetry.uid-elements")
            .cloned()
            .unwrap_or(Source::Default),
        error,
    })?;
    Ok(Loaded {
        config,
        sources,
        files,
    })
}

/// The core checks only the syntax of `is.database-uri`; a PostgreSQL connection string must
/// also hold settings the driver accepts (port, `sslmode`, TLS files given in pairs…), so that a
/// typo stops start-up (exit 2) instead of failing at the first count. The line names the key at
/// fault and shows the string with its password masked.
fn check_database_uri(config: &Config, sources: &Sources) -> Result<(), LoadError> {
    let uri = &config.database_uri;
    if uri.starts_with("sqlite:") {
        return Ok(());
    }
    let Err(why) = crate::pgconn::PgTarget::parse(uri) else {
        return Ok(());
    };
    Err(LoadError::Value {
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
pub fn read_file(path: &Path) -> Result<Vec<(&'static KeySpec, RawValue)>, LoadError> {
    read_file_keys(path, KEYS)
}

/// [`read_file`] for any table of keys.
pub fn read_file_keys<K: Key>(
    path: &Path,
    keys: &'static [K],
) -> Result<Vec<(&'static K, RawValue)>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.to_owned(),
        error,
    })?;
    read_yaml(&text, keys, &Source::File(path.to_owned())).map_err(|e| match e {
        YamlError::Syntax(reason) => LoadError::Parse {
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
    Config(LoadError),
}

fn read_yaml<K: Key>(
    text: &str,
    keys: &'static [K],
    source: &Source,
) -> Result<Vec<(&'static K, RawValue)>, YamlError> {
    let mut doc: Value =
        serde_norway::from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))?;
    // Operators share settings between sections with anchors and `<<:` merge keys.
    doc.apply_merge()
        .map_err(|e| YamlError::Syntax(e.to_string()))?;
    let doc = lower_case_keys(doc);
    match doc {
        Value::Null | Value::Mapping(_) => {}
        _ => {
            return Err(YamlError::Syntax(
                "the top level is not a mapping of sections".to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    for spec in keys {
        if let Some(value) = lookup(&doc, spec, source).map_err(YamlError::Config)? {
            out.push((spec, value));
        }
    }
    Ok(out)
}

/// Finds `spec.key` in the nested mapping `doc`; `None` when absent or null.
fn lookup<K: Key>(doc: &Value, spec: &K, source: &Source) -> Result<Option<RawValue>, LoadError> {
    let segments: Vec<&str> = spec.key().split('.').collect();
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
                return Err(shape(
                    source,
                    here,
                    kind(other),
                    "a mapping of nested keys, as ttn-lw-stack writes them",
                ));
            }
        }
    }
    raw_value(spec, node, source)
}

/// The value of one key's node, as ttn-lw-stack (viper `Get` with the key's default type) reads it.
fn raw_value<K: Key>(
    spec: &K,
    node: &Value,
    source: &Source,
) -> Result<Option<RawValue>, LoadError> {
    let shape_error = |found| shape(source, spec.key().to_owned(), found, spec.form().expected());
    match node {
        Value::Null => Ok(None),
        Value::Tagged(t) => raw_value(spec, &t.value, source),
        // cast.ToBool: a number is true when not zero; a list or mapping is no boolean.
        Value::Number(n) if spec.form() == Form::Bool => {
            let zero = n.as_f64().is_some_and(|f| f == 0.0);
            Ok(Some(RawValue::Scalar(
                if zero { "false" } else { "true" }.to_owned(),
            )))
        }
        Value::Mapping(_) if spec.form() == Form::Bool => {
            Ok(Some(RawValue::Scalar("(a mapping)".to_owned())))
        }
        Value::Sequence(items) if matches!(spec.form(), Form::List | Form::Bool) => {
            // cast.ToStringSlice: each item through cast.ToString, "" for what it cannot convert.
            let list = items
                .iter()
                .map(|item| go_string(item).unwrap_or_default())
                .collect();
            Ok(Some(RawValue::List(list)))
        }
        other => match go_string(other) {
            Some(s) => Ok(Some(RawValue::Scalar(s))),
            None => Err(shape_error(kind(other))),
        },
    }
}

/// A YAML scalar as Go's `cast.ToString` writes it; `None` for a list or mapping.
fn go_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            // strconv.FormatFloat(f, 'f', -1, 64): shortest digits, never an exponent; Rust's
            // Display of f64 writes the same, except for the infinities.
            (None, None, Some(f)) if f.is_infinite() => {
                if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
            }
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        }),
        Value::Tagged(t) => go_string(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Lower-cases every mapping key, as viper does (`insensitiviseMap`); keys that then collide
/// are merged, the later one winning.
fn lower_case_keys(v: Value) -> Value {
    match v {
        Value::Mapping(m) => {
            let mut out = serde_norway::Mapping::new();
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => Value::String(s.to_lowercase()),
                    other => other,
                };
                let v = lower_case_keys(v);
                match out.get_mut(&k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        out.insert(k, v);
                    }
                }
            }
            Value::Mapping(out)
        }
        Value::Tagged(mut t) => {
            t.value = lower_case_keys(t.value);
            Value::Tagged(t)
        }
        other => other,
    }
}

fn merge_into(target: &mut Value, v: Value) {
    match (target, v) {
        (Value::Mapping(t), Value::Mapping(m)) => {
            for (k, v) in m {
                match t.get_mut(&k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (target, v) => *target = v,
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
        read_yaml(text, KEYS, &Source::Flag)
            .map(|v| v.into_iter().map(|(k, v)| (k.key, v)).collect())
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

    /// pflag's string slice: one Go `encoding/csv` record per flag value.
    #[test]
    fn list_flags_split_as_pflag_string_slices() {
        let ok: &[(&str, &[&str])] = &[
            ("a,b", &["a", "b"]),
            ("a", &["a"]),
            ("", &[]),
            // A lone empty element does not survive viper's read-back through pflag's writer.
            ("\"\"", &[]),
            (",", &["", ""]),
            ("a,,b", &["a", "", "b"]),
            (" a , b", &[" a ", " b"]),
            ("\"a,b\",c", &["a,b", "c"]),
            ("\"say \"\"hi\"\"\"", &["say \"hi\""]),
            ("\"two\nlines\",x", &["two\nlines", "x"]),
            ("a,b\nc,d", &["a", "b"]),
            ("\n\na,b", &["a", "b"]),
            ("a\r\n", &["a"]),
            ("x y", &["x y"]),
        ];
        for (value, want) in ok {
            let want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
            assert_eq!(split_list_flag(value), Ok(want), "{value:?}");
        }
        for bad in ["a\"b", "\"a\"b", "\"open", " \"a\"", "\n"] {
            assert!(split_list_flag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_case_insensitive_and_values_keep_their_case() {
        let got = yaml(
            "Telemetry:\n  Enable: FALSE\n  UID-Elements: [Mixed]\nTELEMETRY:\n  target: https://x.example/c\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("telemetry.enable", RawValue::Scalar("false".into())),
                (
                    "telemetry.target",
                    RawValue::Scalar("https://x.example/c".into())
                ),
                (
                    "telemetry.uid-elements",
                    RawValue::List(vec!["Mixed".into()])
                ),
            ]
        );
    }

    /// cast.ToBool on what yaml.v3 decodes: numbers are "not zero", text goes to the core.
    #[test]
    fn yaml_booleans_are_typed_as_cast_reads_them() {
        let enable = |v: &str| {
            yaml(&format!("telemetry:\n  enable: {v}\n"))
                .unwrap()
                .into_iter()
                .next()
                .map(|(_, v)| v)
        };
        let scalar = |s: &str| Some(RawValue::Scalar(s.into()));
        for (v, want) in [
            ("true", scalar("true")),
            ("False", scalar("false")),
            ("0", scalar("false")),
            ("-0.0", scalar("false")),
            ("7", scalar("true")),
            ("0.25", scalar("true")),
            ("0x0", scalar("false")),
            (".nan", scalar("true")),
            ("no", scalar("no")),
            ("'1'", scalar("1")),
            ("!!str 0", scalar("0")),
            ("{a: 1}", scalar("(a mapping)")),
            ("[a]", Some(RawValue::List(vec!["a".into()]))),
            ("", None),
            ("~", None),
        ] {
            assert_eq!(enable(v), want, "enable: {v}");
        }
    }

    #[test]
    fn list_items_are_written_as_go_cast_writes_them() {
        let got = yaml("telemetry:\n  uid-elements: [1.0, 2.5, 10, ~, true, [x], .inf]\n").unwrap();
        assert_eq!(
            got,
            vec![(
                "telemetry.uid-elements",
                RawValue::List(
                    ["1", "2.5", "10", "", "true", "", "+Inf"]
                        .map(String::from)
                        .to_vec()
                )
            )]
        );
    }

    #[test]
    fn top_level_list_is_a_parse_error() {
        assert!(matches!(yaml("- a\n- b\n"), Err(YamlError::Syntax(_))));
        assert!(matches!(yaml("a: [\n"), Err(YamlError::Syntax(_))));
    }
}
