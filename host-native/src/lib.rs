//! The native host of The Things Stack telemetry: it reads configuration, counts the Identity
//! Server database, schedules and delivers reports, keeps an audit log, serves the admin API and
//! the Console page, and runs the collector with its dashboard. Every report byte, UID and
//! validation comes from `ttn-telemetry-core`; this crate does the I/O around it.
//!
//! Modules follow the flow of a report: `config` → `count` → `inputs` → (core builds) →
//! `schedule` → `deliver` → `audit`; `admin` serves the preview, `collect` receives reports
//! (both through `server`, their shared accept loop and headers, and `prom`, their Prometheus
//! text format), `clock` is the one source of
//! time (system or virtual), `cmd` holds the command-line entry points, `os` the build and platform facts, and `plugin`
//! (feature `plugin`) builds reports through the core's wasm plugin under wasmtime.
//!
//! # Features: each audience builds only what it runs
//!
//! | feature | modules | brings in |
//! |---|---|---|
//! | `agent` | `config`, `count`, `inputs`, `schedule`, `deliver`, `audit`, `admin`, `console`, `metrics`, `daemon` | PostgreSQL and SQLite drivers, Redis client, HTTP server (admin listener), HTTP client |
//! | `collector` | `collect` | HTTP server, SQLite and PostgreSQL stores |
//! | `cli-telemetry` | `cli_telemetry`, `deliver` | HTTP client only |
//! | `plugin` | `plugin` (with `agent`) | wasmtime |
//!
//! `default` is `agent`, `collector` and `cli-telemetry`; the `ttn-lw-telemetry` binary (and
//! `cmd`) needs `agent` and `collector`. A command-line tool that embeds CLI telemetry depends on
//! this crate with `default-features = false, features = ["cli-telemetry"]`, as
//! `examples/cli_telemetry.rs` builds; `os` is always there.

#[cfg(feature = "agent")]
pub mod admin;
#[cfg(feature = "agent")]
pub mod audit;
#[cfg(feature = "cli-telemetry")]
pub mod cli_telemetry;
#[cfg(feature = "delivery")]
pub mod clock;
#[cfg(all(feature = "agent", feature = "collector"))]
pub mod cmd;
#[cfg(feature = "collector")]
pub mod collect;
#[cfg(feature = "agent")]
pub mod config;
#[cfg(feature = "agent")]
pub mod console;
#[cfg(feature = "agent")]
pub mod count;
#[cfg(feature = "agent")]
pub mod daemon;
#[cfg(feature = "delivery")]
pub mod deliver;
#[cfg(feature = "agent")]
pub mod inputs;
#[cfg(feature = "agent")]
pub mod metrics;
pub mod os;
#[cfg(feature = "postgres-tls")]
pub mod pgconn;
#[cfg(feature = "plugin")]
pub mod plugin;
#[cfg(feature = "http-server")]
pub mod prom;
pub mod receipt;
#[cfg(feature = "agent")]
pub mod redact;
#[cfg(feature = "agent")]
pub mod schedule;
#[cfg(feature = "http-server")]
pub mod server;
#[cfg(feature = "agent")]
pub mod signing;
