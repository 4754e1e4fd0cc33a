//! Helpers shared by the integration tests: `pg` makes throwaway PostgreSQL databases and the
//! counting fixtures, `http` is a scripted loopback HTTP server.
#![allow(dead_code, unused_imports)]

mod http;
mod pg;

pub use http::*;
pub use pg::*;

/// The test Redis (`TTN_TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("TTN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key namespace of one test, unique to this process and moment: `ttn-test:PID:NANOS:TAG`.
pub fn redis_namespace(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ttn-test:{}:{nanos}:{tag}", std::process::id())
}
