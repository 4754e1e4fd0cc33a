//! Shared helpers for the cross-host tests.

pub mod corpus;
