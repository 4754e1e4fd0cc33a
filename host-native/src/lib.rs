//! The native host of The Things Stack telemetry: it reads configuration, counts the Identity
//! Server database, schedules and delivers reports, keeps an audit log, serves the admin API and
//! the Console page, and runs the collector with its dashboard. Every report byte, UID and
//! validation comes from `ttn-telemetry-core`; this crate does the I/O around it.
//!
//! Modules follow the flow of a report: `config` → `count` → `inputs` → (core builds) →
//! `schedule` → `deliver` → `audit`; `admin` serves the preview, `collect` receives reports
//! (both through `server`, their shared accept loop and headers), `cmd` holds the command-line
//! entry points, `os` the build and platform facts, and `plugin` (feature `plugin`) builds
//! reports through the core's wasm plugin under wasmtime.

pub mod admin;
pub mod audit;
pub mod cli_telemetry;
pub mod clock;
pub mod cmd;
pub mod collect;
pub mod config;
pub mod console;
pub mod count;
pub mod daemon;
pub mod deliver;
pub mod inputs;
pub mod metrics;
pub mod os;
pub mod pgconn;
#[cfg(feature = "plugin")]
pub mod plugin;
pub mod redact;
pub mod schedule;
pub mod server;
