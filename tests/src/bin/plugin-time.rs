//! `plugin-time PLUGIN.wasm INPUTS.json N`: how long the plugin takes under wasmtime, for
//! scripts/bench.d/50-wasm.sh. Prints JSON: module load (compile + instantiate) in ms, and the
//! time of one `build_report` call (copy in, build, copy out) in ns: fastest and median of 7
//! rounds.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ttn_lw_telemetry::plugin::Plugin;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, inputs, n] = args.as_slice() else {
        eprintln!("usage: plugin-time PLUGIN.wasm INPUTS.json N");
        return ExitCode::from(2);
    };
    match run(wasm, inputs, n) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plugin-time: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(wasm: &str, inputs: &str, n: &str) -> anyhow::Result<String> {
    let json = std::fs::read(inputs)?;
    let n: u32 = n.parse()?;
    let start = Instant::now();
    let mut plugin = Plugin::load(Path::new(wasm))?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let expected = ttn_telemetry_core::build_report_bytes(&json)?;
    let n = n.max(1);
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..n {
            let bytes = plugin.build_report(std::hint::black_box(&json))?;
            anyhow::ensure!(
                bytes == expected,
                "the plugin's bytes differ from the native core's"
            );
        }
        rounds.push(start.elapsed().as_nanos() / u128::from(n));
    }
    rounds.sort_unstable();
    Ok(format!(
        "{{\"load_ms\":{load_ms:.1},\"min_ns\":{},\"median_ns\":{}}}",
        rounds[0], rounds[3]
    ))
}
