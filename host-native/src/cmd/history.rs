//! `history`: prints the audit log of `telemetry.state-dir`, one attempt per line, oldest
//! first. It reads files only: no counting, no connection.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::audit::{AUDIT_FILE, read_history};
use crate::config::Loaded;

/// Runs `history`.
pub fn run(loaded: &Loaded, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = Path::new(&loaded.config.state_dir);
    let h = read_history(dir)?;
    let mut w = String::new();
    if h.entries.is_empty() {
        w.push_str(&format!(
            "no delivery attempts recorded in {}\n",
            dir.join(AUDIT_FILE).display()
        ));
    }
    for e in &h.entries {
        w.push_str(&format!("{e}\n"));
    }
    out.write_all(w.as_bytes())
        .context("writing to standard output")?;
    if h.unreadable > 0 {
        crate::redact::note(&format!(
            "note: {} unreadable line(s) in {} were skipped",
            h.unreadable,
            dir.join(AUDIT_FILE).display()
        ));
    }
    if h.torn_tail {
        crate::redact::note(
            "note: the last line was cut short (a crash while writing) and was skipped",
        );
    }
    Ok(())
}
