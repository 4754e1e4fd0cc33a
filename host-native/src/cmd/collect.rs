//! `collect --listen HOST:PORT [--database-uri URI] [--trusted-proxies CIDR,…]
//! [--metrics-listen HOST:PORT]`: the collector and its dashboard (SPEC §9).
//!
//! Without `--database-uri` reports are stored in `ttn-lw-telemetry-collector.sqlite3` in the
//! working directory; `sqlite:PATH` and `postgresql://…` select another store. It runs until
//! Ctrl-C or SIGTERM. `--k-anonymity N` (default 5) folds every frequency-plan id, version, OS
//! and arch seen from fewer than N deployments into `other` in everything public.

use crate::collect::{self, CollectOptions};

/// Where the collector listens when `--listen` is not given: loopback, next to the agent's
/// admin port (1886).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1887";

/// The command's options.
#[derive(Debug)]
pub struct Options {
    /// `--listen`.
    pub listen: String,
    /// `--database-uri`.
    pub database_uri: Option<String>,
    /// `--trusted-proxies`.
    pub trusted_proxies: collect::client_addr::TrustedProxies,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// `--k-anonymity`.
    pub k_anonymity: u64,
}

/// Serves `POST /collect`, `/` and `/api/v1/stats` (and `/metrics` on `--metrics-listen`)
/// until stopped.
pub fn run(o: Options) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut opts = CollectOptions::new(o.listen, o.database_uri);
    opts.trusted_proxies = o.trusted_proxies;
    opts.metrics_listen = o.metrics_listen;
    opts.k_anonymity = o.k_anonymity;
    rt.block_on(collect::serve(opts))
}
