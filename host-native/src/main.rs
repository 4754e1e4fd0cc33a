//! `ttn-lw-telemetry`: see the crate docs and `--help`.

/// The allocator (see the workspace manifest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = ttn_lw_telemetry::cmd::main(std::env::args_os(), |name| std::env::var(name).ok());
    std::process::exit(code);
}
