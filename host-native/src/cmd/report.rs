//! `report --inputs FILE`: builds a report from plain inputs, with no database or configuration.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use ttn_telemetry_core::build_report_bytes;

use super::InputError;

/// Reads plain-inputs JSON from `path` (`-`: standard input) and prints the report bytes the
/// core builds from them, followed by a newline (not part of the report).
pub fn run(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let unreadable = |error| InputError::Unreadable {
        path: path.to_owned(),
        error,
    };
    let json = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(unreadable)?;
        buf
    } else {
        std::fs::read(path).map_err(unreadable)?
    };
    let bytes = build_report_bytes(&json).map_err(|error| InputError::Invalid {
        path: path.to_owned(),
        error,
    })?;
    out.write_all(&bytes)
        .and_then(|()| out.write_all(b"\n"))
        .context("writing to standard output")?;
    Ok(())
}
