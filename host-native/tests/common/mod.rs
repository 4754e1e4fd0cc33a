//! Helpers shared by the integration tests: `pg` makes throwaway PostgreSQL databases and the
//! counting fixtures, `http` is a scripted loopback HTTP server.
#![allow(dead_code, unused_imports)]

mod http;
mod pg;

pub use http::*;
pub use pg::*;
