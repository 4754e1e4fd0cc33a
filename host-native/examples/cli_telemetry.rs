//! A command-line tool that embeds CLI telemetry the way a TTS CLI would.
//!
//! ```text
//! cli_telemetry [--telemetry.enable BOOL] [--telemetry.target URL] [--telemetry.timeout DUR] [--] WORDS…
//! cli_telemetry -- --telemetry.target http://127.0.0.1:8080/collect end-devices list
//! cli_telemetry dev list        # `dev` is an alias of `end-devices`
//! ```
//!
//! It "runs" the command (prints what it would do), records the canonical command path and the
//! alias typed, and sends a usage report in the background when one is due. Settings also come
//! from `TTN_LW_TELEMETRY_ENABLE` / `TTN_LW_TELEMETRY_TARGET`, and `DO_NOT_TRACK=1` turns it off.

use std::process::ExitCode;
use std::time::SystemTime;

use ttn_lw_telemetry::cli_telemetry::{self, Options, Usage};
use ttn_telemetry_core::{Config, OsInfo, RawValue, do_not_track, env_var_name, parse_duration};

/// The commands of this toy CLI and their aliases, like cobra's `Aliases`.
const COMMANDS: &[(&str, &[&str])] = &[
    ("end-devices", &["end-device", "devices", "dev"]),
    ("gateways", &["gateway", "gtw"]),
    ("applications", &["application", "apps", "app"]),
    ("users", &["user", "usr"]),
    ("organizations", &["organization", "orgs", "org"]),
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = Config::default();
    for key in ["telemetry.enable", "telemetry.target"] {
        if let Ok(v) = std::env::var(env_var_name(key)) {
            config
                .set(key, &RawValue::Scalar(v))
                .map_err(|e| e.to_string())?;
        }
    }
    let mut timeout = cli_telemetry::DEFAULT_TIMEOUT;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            words.push(arg);
            continue;
        };
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => {
                let v = args
                    .next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                (flag.to_owned(), v)
            }
        };
        match key.as_str() {
            "telemetry.timeout" => {
                timeout = parse_duration(&value).map_err(|e| format!("--telemetry.timeout: {e}"))?
            }
            "telemetry.enable" | "telemetry.target" => config
                .set(&key, &RawValue::Scalar(value))
                .map_err(|e| e.to_string())?,
            _ => return Err(format!("unknown flag --{key}")),
        }
    }
    let (path, alias) = canonical(&words);
    println!("running: {path}");

    let opts = Options {
        enable: config.enable && !std::env::var("DO_NOT_TRACK").is_ok_and(|v| do_not_track(&v)),
        target: config.target.clone(),
        state_dir: cli_telemetry::default_state_dir().ok_or("no cache directory (HOME unset)")?,
        timeout,
        os: OsInfo {
            operating_system: OsInfo::go_os_name(std::env::consts::OS).to_owned(),
            arch: OsInfo::go_arch_name(std::env::consts::ARCH).to_owned(),
            binary_version: ttn_telemetry_core::VERSION.to_owned(),
            golang_version: String::from("rustc"),
        },
        how_to_disable: String::from("--telemetry.enable=false"),
    };
    let usage = Usage {
        command_path: &path,
        alias: alias.as_ref().map(|(c, a)| (c.as_str(), a.as_str())),
    };
    // Telemetry never fails the command: problems are warnings.
    match cli_telemetry::record(&opts, usage, SystemTime::now()) {
        Ok(session) => {
            // Waits at most the telemetry timeout; the command's own work is already done.
            let _ = session.finish();
        }
        Err(e) => eprintln!("warning: telemetry: {e}"),
    }
    Ok(())
}

/// Resolves the first word through the alias table: (`end-devices list`, Some(("end-devices", "dev"))).
fn canonical(words: &[String]) -> (String, Option<(String, String)>) {
    let mut out = words.to_vec();
    let mut alias = None;
    if let Some(first) = out.first_mut()
        && let Some((name, _)) = COMMANDS
            .iter()
            .find(|(_, aliases)| aliases.contains(&first.as_str()))
    {
        alias = Some(((*name).to_owned(), first.clone()));
        *first = (*name).to_owned();
    }
    let path = if out.is_empty() {
        String::from("(root)")
    } else {
        out.join(" ")
    };
    (path, alias)
}
