//! The command line: parsing, dispatch, and the one place where errors become exit codes.
//!
//! Every configuration key of the core's [`KEYS`] table is a flag `--<key>`, generated from the
//! table so that a new key needs no change here, and read as `ttn-lw-stack`'s pflag flags are:
//! - a value flag takes `--key VALUE` or `--key=VALUE`; given twice, the last one counts;
//! - a list flag (`--telemetry.uid-elements`) is a pflag string slice: each value is one CSV
//!   record (`--telemetry.uid-elements=a,b` is two elements, `'"a,b",c'` is `a,b` and `c`),
//!   repeated flags append, and an empty value is an empty list;
//! - a boolean flag alone (`--telemetry.enable`) means true, and takes a value only after `=`
//!   (`--telemetry.enable=false`). In `--telemetry.enable false`, as in pflag, `false` is not
//!   the flag's value but a stray argument: a usage error (exit 2), never telemetry on or off by
//!   accident, and a bare boolean flag never swallows the command name that follows it;
//! - `-c/--config FILE` is a string slice too (`-c a.yml,b.yml` or `-c a.yml -c b.yml`); the
//!   file listed first takes precedence.
//!
//! Flags may come before or after the command.
//!
//! The parser is clap's builder API: flags are generated at run time from [`KEYS`] (the derive
//! API cannot do that), and clap gives `--help` with each key's documentation, suggestions for
//! misspelt flags, and usage errors with exit code 2 like every other bad input.
//!
//! Exit codes ([`exit_code`]): 0 success; 1 a runtime failure (the database cannot be counted,
//! output cannot be written); 2 bad input (usage, configuration, an inputs file), printed as one
//! line that names the key, the value and the expected form.
//!
//! To add a command: a variant of [`Command`], a `clap::Command` in [`cli`], a file in this
//! folder, and an arm in [`run()`].

pub mod collect;
pub mod demo;
pub mod deployment;
pub mod history;
pub mod preview;
pub mod report;
pub mod run;
pub mod send;
pub mod status;
pub mod uid;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use ttn_telemetry_core::{Form, KEYS};

use crate::config::{self, LoadError, Loaded};
use crate::redact;

/// A command and its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `uid`: print the deployment's UID.
    Uid,
    /// `preview [--pretty] [--plugin FILE]`: count now and print the report that would be sent.
    Preview {
        /// Print each field with its wire text and meaning, for people, instead of the wire form.
        pretty: bool,
        /// Build the bytes through this wasm plugin module under wasmtime (feature `plugin`).
        plugin: Option<PathBuf>,
    },
    /// `report --inputs FILE`: build a report from a plain-inputs JSON file.
    Report {
        /// The plain-inputs file (`-` for standard input).
        inputs: PathBuf,
    },
    /// `demo [--once]`: count an embedded example database, explain the report, deliver it to
    /// the real collector on loopback and serve its dashboard and the Console page.
    Demo {
        /// Exit once the first report is stored instead of serving until Ctrl-C.
        once: bool,
    },
    /// `collect`: run the collector and its dashboard, configured by the collector's own keys
    /// ([`collect::COLLECTOR_KEYS`]), whose flags are in [`Invocation::config`].
    Collect,
    /// `send [--deadline DUR]`: count, build and deliver once, now.
    Send {
        /// How long delivery may keep retrying.
        deadline: Duration,
    },
    /// `run`: the daemon.
    Run,
    /// `status`: settings and their sources, the last and the next report.
    Status,
    /// `history`: the audit log.
    History,
    /// `collected`, `forget`, `rotate-key`: signed requests about this deployment.
    Deployment(deployment::Action),
}

/// The default of `send --deadline`.
pub const DEFAULT_SEND_DEADLINE: Duration = Duration::from_secs(300);

fn parse_deadline(s: &str) -> Result<Duration, String> {
    match ttn_telemetry_core::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{s:?} is not a positive duration: expected Go duration syntax such as 30s, 5m or 1h30m"
        )),
    }
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Configuration files and flags.
    pub config: config::Args,
    /// What to do.
    pub command: Command,
}

/// Bad input that is not configuration: exit code 2.
#[derive(Debug)]
pub enum InputError {
    /// The plain-inputs file (`-`: standard input) cannot be read.
    Unreadable {
        /// The file given to `--inputs`.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The plain inputs are refused by the core.
    Invalid {
        /// The file given to `--inputs`.
        path: PathBuf,
        /// The core's reason, naming the field.
        error: ttn_telemetry_core::InputsError,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Unreadable { path, error } if path.as_os_str() == "-" => {
                write!(f, "inputs from standard input: cannot be read ({error})")
            }
            InputError::Unreadable { path, error } => write!(
                f,
                "inputs file {}: cannot be read ({error}): expected a readable JSON file",
                path.display()
            ),
            InputError::Invalid { path, error } => write!(
                f,
                "inputs file {}: {error}: expected plain inputs as `preview` and the admin API show them",
                path.display()
            ),
        }
    }
}

impl std::error::Error for InputError {}

fn value_name(form: Form) -> &'static str {
    match form {
        Form::Bool => "BOOL",
        Form::HttpUrl => "URL",
        Form::PositiveDuration => "DURATION",
        Form::List => "VALUE",
        Form::DatabaseUri => "URI",
        Form::OptionalHostPort | Form::HostPort => "HOST:PORT",
        Form::U32 => "N",
        Form::NonEmpty | Form::Text => "TEXT",
    }
}

/// The configuration flags: `-c/--config` and one `--<key>` per key of [`KEYS`].
///
/// They are defined on the root and again on every command (not as clap "global" arguments,
/// whose values given after the command would replace those given before it), and
/// [`config_args`] joins both, root first.
fn config_flags() -> Vec<Arg> {
    let mut args = vec![config_file_flag()];
    for spec in KEYS {
        let mut help = spec.doc.to_owned();
        if spec.form == Form::List {
            help.push_str(" Comma-separated (CSV quoting); repeat the flag to add more.");
        }
        if !spec.default.is_empty() && !spec.secret {
            help.push_str(&format!(" [default: {}]", spec.default));
        }
        let arg = Arg::new(spec.key)
            .long(spec.key)
            .value_name(value_name(spec.form))
            .help(help);
        args.push(key_flag(arg, spec.form));
    }
    args
}

/// `collect`'s flags: `-c/--config` and one `--<key>` per key of
/// [`collect::COLLECTOR_KEYS`], each with its hidden alias of earlier releases.
fn collector_flags() -> Vec<Arg> {
    let mut args = vec![config_file_flag()];
    for spec in collect::COLLECTOR_KEYS {
        let mut help = spec.doc.to_owned();
        if spec.form == Form::List {
            help.push_str(" Comma-separated; repeat the flag to add more.");
        }
        if !spec.default.is_empty() {
            help.push_str(&format!(" [default: {}]", spec.default));
        }
        let mut arg = Arg::new(spec.key)
            .long(spec.key)
            .value_name(spec.value_name)
            .help(help);
        if let Some(alias) = spec.alias {
            arg = arg.alias(alias);
        }
        args.push(key_flag(arg, spec.form));
    }
    args
}

/// A configuration key's flag, read as pflag reads it (see the module docs).
fn key_flag(arg: Arg, form: Form) -> Arg {
    let arg = arg
        .action(ArgAction::Append)
        .help_heading("Configuration keys");
    match form {
        // pflag: a bare boolean flag is true; a value only after `=`.
        Form::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true"),
        Form::List => arg
            .num_args(1)
            .allow_hyphen_values(true)
            .value_parser(list_value),
        _ => arg.num_args(1).allow_hyphen_values(true),
    }
}

/// `-c/--config FILE`, read by the agent and the collector alike.
fn config_file_flag() -> Arg {
    Arg::new("config")
        .short('c')
        .long("config")
        .value_name("FILE")
        .help(
            "YAML configuration files, as ttn-lw-stack reads them (repeatable and \
                 comma-separated; the file listed first takes precedence) \
                 [default: $TTN_LW_CONFIG, else ./.ttn-lw-stack.yml, ~/.ttn-lw-stack.yml and \
                 <user config dir>/.ttn-lw-stack.yml where present]",
        )
        .action(ArgAction::Append)
        .value_parser(list_value)
}

/// A list flag's value, split as a pflag string slice.
fn list_value(s: &str) -> Result<Vec<String>, String> {
    config::split_list_flag(s)
}

/// `--plugin FILE`, in builds with the `plugin` feature only.
fn plugin_arg() -> Vec<Arg> {
    if cfg!(feature = "plugin") {
        vec![
            Arg::new("plugin")
                .long("plugin")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Build the report through this wasm plugin module (host-wasm/plugin) under wasmtime"),
        ]
    } else {
        Vec::new()
    }
}

/// The clap command tree.
pub fn cli() -> clap::Command {
    let commands = [
        clap::Command::new("uid").about("Print this deployment's UID on one line"),
        clap::Command::new("preview")
            .about("Count the database now and print the exact report body that would be sent (sends nothing)")
            .arg(
                Arg::new("pretty")
                    .long("pretty")
                    .action(ArgAction::SetTrue)
                    .help("One line per field with its wire text and meaning, for people (not the wire form)"),
            )
            .args(plugin_arg()),
        clap::Command::new("report")
            .about("Build the report from a plain-inputs JSON file, without a database, and print its bytes")
            .arg(
                Arg::new("inputs")
                    .long("inputs")
                    .value_name("FILE")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Plain inputs (JSON), or - for standard input"),
            ),
        clap::Command::new("collect")
            .about("Run the collector: POST /collect, the dashboard at /, and /api/v1/stats")
            .after_help(
                "Configuration, as for the agent: defaults < config files < TTN_LW_COLLECTOR_* \
                 environment < flags; in YAML, the keys of a `collector:` section.",
            )
            .args(collector_flags()),
        clap::Command::new("demo")
            .about(
                "Count an example database, explain what would be sent, where, and how to turn it off; deliver it to the real collector on loopback and serve its dashboard and the Console page until Ctrl-C",
            )
            .arg(
                Arg::new("once")
                    .long("once")
                    .action(ArgAction::SetTrue)
                    .help("Exit once the first report is stored (for scripts)"),
            ),
        clap::Command::new("send")
            .about("Count, build and deliver one report now (retrying until --deadline); exits 0 only after a 2xx")
            .arg(
                Arg::new("deadline")
                    .long("deadline")
                    .value_name("DURATION")
                    .default_value("5m")
                    .value_parser(parse_deadline)
                    .help("How long delivery may keep retrying (Go duration syntax)"),
            ),
        clap::Command::new("run").about(
            "The agent: report once per interval, keep the audit log, serve the admin listener (until SIGTERM or Ctrl-C)",
        ),
        clap::Command::new("status").about(
            "Show whether telemetry is on, the last and next report, and every effective setting with its source",
        ),
        clap::Command::new("history").about("Print the audit log: every delivery attempt"),
        clap::Command::new("collected").about(
            "Print every report and receipt the collector of telemetry.target holds about this deployment (a request signed with the deployment key)",
        ),
        clap::Command::new("forget").about(
            "Erase every report of this deployment at the collector of telemetry.target, and its key pin; prints the receipt of what was deleted",
        ),
        clap::Command::new("rotate-key").about(
            "Make a new deployment key and have the collector pin it in place of the current one (signed by both)",
        ),
    ];
    clap::Command::new("ttn-lw-telemetry")
        .version(crate::os::BINARY_VERSION)
        .about("The Things Stack telemetry agent: see what is reported, and where.")
        .after_help(
            "Configuration, as ttn-lw-stack reads it: defaults < config files < TTN_LW_* \
             environment < flags. Config files: -c, else TTN_LW_CONFIG (space-separated), else \
             the default files that exist; the file listed first takes precedence. \
             DO_NOT_TRACK=1 turns telemetry off.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .args(config_flags())
        // The collector reads its own keys only: its help lists them alone.
        .subcommands(commands.map(|c| {
            if c.get_name() == "collect" {
                c
            } else {
                c.args(config_flags())
            }
        }))
}

/// Parses a command line (the first item is the program name).
pub fn parse<I, T>(argv: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = cli().try_get_matches_from(argv)?;
    let (name, sub) = matches
        .subcommand()
        .ok_or_else(|| cli().error(clap::error::ErrorKind::MissingSubcommand, "no command"))?;
    let command = match name {
        "uid" => Command::Uid,
        "preview" => Command::Preview {
            pretty: sub.get_flag("pretty"),
            plugin: sub.try_get_one::<PathBuf>("plugin").ok().flatten().cloned(),
        },
        "report" => Command::Report {
            inputs: sub
                .get_one::<PathBuf>("inputs")
                .cloned()
                .unwrap_or_default(),
        },
        "demo" => Command::Demo {
            once: sub.get_flag("once"),
        },
        "collect" => Command::Collect,
        "send" => Command::Send {
            deadline: sub
                .get_one::<Duration>("deadline")
                .copied()
                .unwrap_or(DEFAULT_SEND_DEADLINE),
        },
        "run" => Command::Run,
        "status" => Command::Status,
        "history" => Command::History,
        "collected" => Command::Deployment(deployment::Action::Collected),
        "forget" => Command::Deployment(deployment::Action::Forget),
        "rotate-key" => Command::Deployment(deployment::Action::RotateKey),
        other => {
            return Err(cli().error(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("unknown command {other}"),
            ));
        }
    };
    let config = if name == "collect" {
        // Agent configuration given before `collect` would be ignored: refuse it instead.
        let before = config_args(&matches, &matches, &agent_keys());
        if !before.flags.is_empty() {
            return Err(cli().error(
                clap::error::ErrorKind::ArgumentConflict,
                "`collect` takes no agent configuration (--<key>): its keys are collector.*, see `collect --help`",
            ));
        }
        config_args(&matches, sub, &collector_keys())
    } else {
        config_args(&matches, sub, &agent_keys())
    };
    Ok(Invocation { config, command })
}

/// The agent's keys as flags: each key and whether it is a list.
fn agent_keys() -> Vec<(&'static str, bool)> {
    KEYS.iter().map(|k| (k.key, k.form == Form::List)).collect()
}

/// The collector's keys as flags.
fn collector_keys() -> Vec<(&'static str, bool)> {
    collect::COLLECTOR_KEYS
        .iter()
        .map(|k| (k.key, k.form == Form::List))
        .collect()
}

/// Joins the configuration flags of `keys` given before the command (`root`) and after it
/// (`sub`).
fn config_args(root: &ArgMatches, sub: &ArgMatches, keys: &[(&'static str, bool)]) -> config::Args {
    let given = |id: &str| {
        [root, sub]
            .into_iter()
            .any(|m| m.try_contains_id(id).unwrap_or(false) && m.value_source(id).is_some())
    };
    let lists = |id: &str| -> Vec<String> {
        [root, sub]
            .into_iter()
            .flat_map(|m| {
                m.try_get_many::<Vec<String>>(id)
                    .ok()
                    .flatten()
                    .into_iter()
                    .flatten()
                    .flatten()
                    .cloned()
            })
            .collect()
    };
    let files = given("config").then(|| lists("config").into_iter().map(PathBuf::from).collect());
    let flags = keys
        .iter()
        .filter(|(key, _)| given(key))
        .map(|&(key, list)| {
            let values = if list {
                lists(key)
            } else {
                [root, sub]
                    .into_iter()
                    .flat_map(|m| {
                        m.try_get_many::<String>(key)
                            .ok()
                            .flatten()
                            .into_iter()
                            .flatten()
                            .cloned()
                    })
                    .collect()
            };
            (key, values)
        })
        .collect();
    config::Args { files, flags }
}

/// Runs a parsed invocation. Output goes to standard output; notes for people to standard error.
///
/// Secrets are registered with the output guard ([`crate::redact`]) before anything can be
/// printed: those of the environment first, then those of the loaded configuration; standard
/// output goes through the guard.
pub fn run(inv: Invocation, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    let mut stdout = redact::Guarded::new(std::io::stdout().lock());
    for spec in KEYS {
        if let Some(v) = env(&ttn_telemetry_core::env_var_name(spec.key)) {
            if spec.secret {
                redact::register([v.clone()]);
            }
            redact::register(redact::secrets_of(&v));
        }
    }
    match inv.command {
        Command::Report { inputs } => report::run(&inputs, &mut stdout),
        Command::Collect => {
            let settings = collect::load(&inv.config, &env)?;
            redact::register(redact::secrets_of(&settings.database_uri));
            collect::run(&settings)
        }
        command => {
            let loaded: Loaded = config::load(&inv.config, env)?;
            redact::register_config(&loaded);
            for warning in loaded.config.warnings() {
                eprintln!("ttn-lw-telemetry: warning: {warning}");
            }
            match command {
                Command::Uid => uid::run(&loaded, &mut stdout),
                Command::Preview { pretty, plugin } => {
                    preview::run(&loaded, pretty, plugin.as_deref(), &mut stdout)
                }
                Command::Demo { once } => demo::run(loaded, once, &mut stdout),
                Command::Report { .. } | Command::Collect => {
                    unreachable!("handled above")
                }
                Command::Send { deadline } => send::run(&loaded, deadline, &mut stdout),
                Command::Run => run::run(loaded),
                Command::Status => status::run(&loaded, &mut stdout),
                Command::History => history::run(&loaded, &mut stdout),
                Command::Deployment(action) => deployment::run(&loaded, action, &mut stdout),
            }
        }
    }
}

/// Sends log lines (`tracing`, info level and up) to standard error, once per process; later
/// calls do nothing.
pub fn init_logging() {
    init_logging_at(tracing::Level::INFO);
}

/// [`init_logging`] at `level` and up (`send` shows warnings and errors only: its outcome is
/// its own line).
pub fn init_logging_at(level: tracing::Level) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| redact::Guarded::new(std::io::stderr()))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// The exit code of a failed command: 2 for bad input, 1 for everything else.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<LoadError>().is_some() || e.downcast_ref::<InputError>().is_some() {
        2
    } else {
        1
    }
}

/// The program: parses `argv`, runs, prints any error as one line, and returns the exit code.
///
/// The secrets of the command line are registered with the output guard before parsing, so
/// that a usage error quoting an argument, the error line, and a panic message are masked too.
pub fn main<I, T>(argv: I, env: impl Fn(&str) -> Option<String>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    redact::register_args(&args);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned());
        match payload {
            Some(text) if text != redact::guard(&text) => {
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                redact::note(&format!("panicked{place}: {}", redact::guard(&text)));
            }
            _ => default_hook(info),
        }
    }));
    let inv = match parse(argv) {
        Ok(inv) => inv,
        Err(e) => {
            // Help and version print to stdout and exit 0; usage errors exit 2.
            let text = redact::guard(&e.render().to_string());
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return e.exit_code();
        }
    };
    match run(inv, env) {
        Ok(()) => 0,
        Err(e) => {
            let message = format!("{e:#}");
            redact::note(&format!(
                "ttn-lw-telemetry: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
            exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        cli().debug_assert();
    }

    #[test]
    fn flags_are_generated_from_keys_and_repeat() {
        let inv = parse([
            "ttn-lw-telemetry",
            "-c",
            "a.yml",
            "preview",
            "--pretty",
            "--telemetry.uid-elements",
            "x",
            "--telemetry.uid-elements=y",
            "--config",
            "b.yml,c.yml",
            "--telemetry.enable=false",
            "--telemetry.uid-elements=\"p,q\",r",
        ])
        .unwrap();
        assert_eq!(
            inv.command,
            Command::Preview {
                pretty: true,
                plugin: None
            }
        );
        assert_eq!(
            inv.config.files,
            Some(vec![
                PathBuf::from("a.yml"),
                PathBuf::from("b.yml"),
                PathBuf::from("c.yml")
            ])
        );
        assert_eq!(
            inv.config.flags,
            vec![
                ("telemetry.enable", vec!["false".to_owned()]),
                (
                    "telemetry.uid-elements",
                    ["x", "y", "p,q", "r"].map(String::from).to_vec()
                ),
            ]
        );
        assert_eq!(parse(["t", "uid"]).unwrap().config.files, None);
        for spec in KEYS {
            let flag = format!("--{}", spec.key);
            let (args, want) = if spec.form == Form::Bool {
                (vec!["t", "uid", &flag], "true")
            } else {
                (vec!["t", "uid", &flag, "v"], "v")
            };
            let inv = parse(args).unwrap();
            assert_eq!(inv.config.flags, vec![(spec.key, vec![want.to_owned()])]);
        }
    }

    /// pflag: a bare boolean flag is true and never takes the next word as its value.
    #[test]
    fn bare_boolean_flags_are_true_and_leave_the_command_alone() {
        let inv = parse(["t", "--telemetry.enable", "status"]).unwrap();
        assert_eq!(inv.command, Command::Status);
        assert_eq!(
            inv.config.flags,
            vec![("telemetry.enable", vec!["true".to_owned()])]
        );
        let inv = parse([
            "t",
            "status",
            "--telemetry.enable=false",
            "--telemetry.enable",
        ])
        .unwrap();
        assert_eq!(
            inv.config.flags,
            vec![(
                "telemetry.enable",
                vec!["false".to_owned(), "true".to_owned()]
            )]
        );
        // `false` is a stray argument, as in pflag: a usage error, not a value.
        for args in [
            vec!["t", "--telemetry.enable", "false", "status"],
            vec!["t", "status", "--telemetry.enable", "false"],
        ] {
            assert_eq!(parse(args.clone()).unwrap_err().exit_code(), 2, "{args:?}");
        }
        // An empty list flag is given, with no element (the §3 fallback).
        let inv = parse(["t", "uid", "--telemetry.uid-elements="]).unwrap();
        assert_eq!(
            inv.config.flags,
            vec![("telemetry.uid-elements", Vec::<String>::new())]
        );
        let e = parse(["t", "uid", "--telemetry.uid-elements=a\"b"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = parse(["t", "preview", "--no-such-flag"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(["t", "report"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        for bad in ["0s", "5", "-1m", "soon"] {
            let e = parse(["t", "send", "--deadline", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn send_deadline_defaults_to_5m_and_parses_go_durations() {
        let inv = parse(["t", "send"]).unwrap();
        assert_eq!(
            inv.command,
            Command::Send {
                deadline: Duration::from_secs(300)
            }
        );
        let inv = parse(["t", "send", "--deadline", "1m30s"]).unwrap();
        assert_eq!(
            inv.command,
            Command::Send {
                deadline: Duration::from_secs(90)
            }
        );
        for (args, want) in [
            (["t", "run"], Command::Run),
            (["t", "status"], Command::Status),
            (["t", "history"], Command::History),
        ] {
            assert_eq!(parse(args).unwrap().command, want);
        }
    }
}
