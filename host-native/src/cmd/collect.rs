//! `collect --listen HOST:PORT [--database-uri URI] [--trusted-proxies CIDR,…]`: the collector and its dashboard (SPEC §9).
//!
//! Without `--database-uri` reports are stored in `ttn-lw-telemetry-collector.sqlite3` in the
//! working directory; `sqlite:PATH` and `postgresql://…` select another store. It runs until
//! Ctrl-C or SIGTERM.

use crate::collect::{self, CollectOptions};

/// Where the collector listens when `--listen` is not given: loopback, next to the agent's
/// admin port (1886).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1887";

/// Serves `POST /collect`, `/` and `/api/v1/stats` until stopped.
pub fn run(
    listen: &str,
    database_uri: Option<String>,
    trusted_proxies: collect::client_addr::TrustedProxies,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut opts = CollectOptions::new(listen, database_uri);
    opts.trusted_proxies = trusted_proxies;
    rt.block_on(collect::serve(opts))
}
