//! `native-report`: what the native core says, for the browser and parity tests.
//!
//! ```text
//! native-report build INPUTS.json      exact report bytes on stdout (no newline added)
//! native-report sha256 INPUTS.json     SHA-256 hex of those bytes
//! native-report view INPUTS.json       the field view as JSON (`FieldView::to_json`)
//! native-report uid E1 [E2 …]          the UID of those elements
//! native-report time INPUTS.json N     mean nanoseconds per build (for scripts/bench.d)
//! ```
//! Until the agent's `preview` command exists, the Console widget's tests compare against
//! this. Errors go to stderr with exit code 1; usage errors exit 2.

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") if args.len() == 2 => build(&args[1]).map(|b| b.to_vec()),
        Some("sha256") if args.len() == 2 => {
            build(&args[1]).map(|b| format!("{}\n", ttn_telemetry_core::sha256_hex(&b)).into())
        }
        Some("view") if args.len() == 2 => view(&args[1]),
        Some("time") if args.len() == 3 => time(&args[1], &args[2]).map(String::into_bytes),
        Some("uid") => ttn_telemetry_core::compute_uid(&args[1..])
            .map(|u| format!("{u}\n").into())
            .map_err(|e| e.to_string()),
        _ => {
            eprintln!(
                "usage: native-report build FILE | sha256 FILE | view FILE | uid ELEMENT… | time FILE N"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("native-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build(path: &str) -> Result<Vec<u8>, String> {
    let json = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    ttn_telemetry_core::build_report_bytes(&json).map_err(|e| e.to_string())
}

fn view(path: &str) -> Result<Vec<u8>, String> {
    let json = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let report = ttn_telemetry_core::Inputs::from_json(&json)
        .and_then(|i| i.build())
        .map_err(|e| e.to_string())?;
    Ok(report.field_view().to_json())
}

/// Times `build_report_bytes` (JSON text in, bytes out: the same work the browser does) in 7
/// rounds of `n` calls; prints the fastest and the median round, per report. The minimum is
/// the figure to compare: on a shared machine, noise only ever adds time.
fn time(path: &str, n: &str) -> Result<String, String> {
    let json = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("N must be a count, not {n:?}"))?;
    let n = n.max(1);
    let mut rounds = Vec::new();
    let mut size = 0;
    for _ in 0..7 {
        let start = std::time::Instant::now();
        for _ in 0..n {
            let bytes = ttn_telemetry_core::build_report_bytes(std::hint::black_box(&json))
                .map_err(|e| e.to_string())?;
            size = bytes.len();
        }
        rounds.push(start.elapsed().as_nanos() / u128::from(n));
    }
    rounds.sort_unstable();
    Ok(format!(
        "{{\"min_ns\":{},\"median_ns\":{},\"bytes\":{size}}}\n",
        rounds[0], rounds[3]
    ))
}
