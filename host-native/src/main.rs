//! `ttn-lw-telemetry`: see the crate docs and `--help`.

fn main() {
    eprintln!("ttn-lw-telemetry {}: no commands yet", ttn_telemetry_core::VERSION);
    std::process::exit(2);
}
