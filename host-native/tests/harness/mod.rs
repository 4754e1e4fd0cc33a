//! The test runner of the test binaries that are also a child process (`harness = false`:
//! `main` first decides which role it plays, then calls [`run`]).
//!
//! It speaks libtest's language, so `cargo test` and `./task` read it like any other: a
//! `NAME` filter and `--exact`, `--list`, `--ignored` (none is), one `test NAME ... ok|FAILED`
//! line per test, the panic message of each failure, a `test result:` line counted from what
//! actually ran, and exit code 101 when a test failed. (libtest-mimic does the same, but it
//! turns on clap's default features, which cargo would then also build into the
//! `ttn-lw-telemetry` binary these tests run, so the binary under test would differ from the
//! one shipped.)

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::Instant;

/// One named test.
pub type Test = (&'static str, Box<dyn FnOnce()>);

/// Runs the tests the command line selects and reports like libtest.
pub fn run(tests: Vec<Test>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    // Options that take a value, so that the value is not read as a filter.
    let with_value = [
        "--test-threads",
        "--color",
        "--format",
        "--logfile",
        "--skip",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if with_value.contains(&a.as_str()) {
            if a == "--skip" {
                skips.extend(args.get(i + 1).cloned());
            }
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            filters.push(a.clone());
        }
        i += 1;
    }
    let matches = |name: &str, pattern: &str| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    let total = tests.len();
    let selected: Vec<Test> = tests
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filtered_out = total - selected.len();
    if args.iter().any(|a| a == "--ignored") {
        println!("\nrunning 0 tests\n");
        println!(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {total} filtered out; finished in 0.00s\n"
        );
        return ExitCode::SUCCESS;
    }
    let n = selected.len();
    println!("\nrunning {n} test{}", if n == 1 { "" } else { "s" });
    let began = Instant::now();
    let mut failed = Vec::new();
    for (name, test) in selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => println!("ok"),
            Err(panic) => {
                println!("FAILED");
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(a panic without a message)".to_owned());
                failed.push((name, msg));
            }
        }
    }
    let passed = total - filtered_out - failed.len();
    if !failed.is_empty() {
        println!("\nfailures:");
        for (name, msg) in &failed {
            println!("\n---- {name} ----\n{msg}");
        }
        println!("\nfailures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        began.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
