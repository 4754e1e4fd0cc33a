//! `uid`: prints the deployment's UID (SPEC §3) on one line.

use std::io::Write;

use anyhow::Context;
use ttn_telemetry_core::compute_uid;

use crate::config::Loaded;

/// Prints the UID computed by the core from the UID elements in use.
pub fn run(loaded: &Loaded, out: &mut dyn Write) -> anyhow::Result<()> {
    // `config::load` has already checked that the elements give a UID.
    let uid = compute_uid(&loaded.config.uid_elements()).context("computing the UID")?;
    writeln!(out, "{uid}").context("writing to standard output")?;
    Ok(())
}
