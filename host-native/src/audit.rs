//! The local audit log: one JSON line per delivery attempt, and the last body sent, kept whole.
//!
//! Files in the state directory:
//! - `audit.jsonl`: append-only. Before each attempt a `sending` line is written, and after it a
//!   line with the outcome, so an agent killed mid-send leaves a trace of the attempt it was
//!   making. Lines are written with one `write` each and synced.
//! - `last-body.json`: the exact bytes of the last report handed to delivery, replaced
//!   atomically (temporary file, sync, rename), so it is either the old body or the new one.
//!
//! Readers tolerate a torn last line (a crash mid-write): it is skipped and counted. A line that
//! cannot be read in the middle of the file is counted too, never fatal, so `history` always
//! shows what it can. Targets are stored redacted (core `redact_uri`); bodies hold no secrets.
//!
//! # Local-only mode (`telemetry.local-only`)
//! A report that is kept and never sent ([`keep_locally`]) is recorded as one line with the
//! outcome [`KEPT_LOCALLY`] (attempt 1, an empty target: it went nowhere), after its body has
//! replaced the last body. `history` lists it as every other line; [`History::last_attempt`]
//! and [`History::last_success`] skip it (nothing was attempted), [`History::last_kept`]
//! finds it.
//!
//! # Decision where SPEC is silent: no report leaves without its audit line
//! The audit trail is what the product promises the operator, so [`deliver_audited`] refuses to
//! send what it cannot record. Before the first attempt it writes the last body, and before each
//! attempt its `sending` line. If either write fails, no attempt is made, and it returns
//! [`Unaudited`] saying why. If an attempt was made and its outcome line then cannot be written,
//! it makes no further attempt and returns [`Unaudited`] naming that attempt: the report may
//! have left, and the caller must say so loudly. `send` exits 1 with that one line, and `run`
//! logs it at error level and tries again later (see [`crate::daemon`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use ttn_telemetry_core::{redact_uri, sha256_hex};

use crate::deliver::{self, Attempt, Clock, DeliverConfig, Delivery, Observer, Outcome, Rng};
use crate::metrics::SharedStatus;

/// File name of the audit log in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The outcome of a report kept in local-only mode and never sent.
pub const KEPT_LOCALLY: &str = "kept locally";

/// File name of the last body sent.
pub const LAST_BODY_FILE: &str = "last-body.json";

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the attempt started, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The same instant as Unix milliseconds, for machines.
    pub unix_ms: u64,
    /// The target, with any password redacted.
    pub target: String,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
    /// Body size in bytes.
    pub size: u64,
    /// 1 for the first attempt of this report.
    pub attempt: u32,
    /// `sending` before the attempt; afterwards one of the [`Outcome::kind`] values.
    pub outcome: String,
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Human-readable detail of the outcome (error message, redirect location…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The receipt check, after a 2xx: `matched`, `none`, `mismatch: …`, `invalid: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

impl AuditEntry {
    /// The `sending` line written before attempt `number`.
    pub fn sending(target: &str, body: &[u8], number: u32, at: SystemTime) -> Self {
        AuditEntry {
            time: rfc3339(at),
            unix_ms: unix_ms(at),
            target: redact_uri(target),
            sha256: sha256_hex(body),
            size: body.len() as u64,
            attempt: number,
            outcome: "sending".into(),
            status: None,
            detail: None,
            receipt: None,
        }
    }

    /// The line written after an attempt.
    pub fn finished(target: &str, body: &[u8], attempt: &Attempt) -> Self {
        let mut e = AuditEntry::sending(target, body, attempt.number, attempt.started);
        e.outcome = attempt.outcome.kind().into();
        e.status = attempt.outcome.status();
        match &attempt.outcome {
            Outcome::Delivered { receipt, .. } => e.receipt = Some(receipt.to_string()),
            o => e.detail = Some(o.to_string()),
        }
        e
    }

    /// The line of a report kept in local-only mode at `at`: never sent, so no target.
    pub fn kept(body: &[u8], at: SystemTime) -> Self {
        let mut e = AuditEntry::sending("", body, 1, at);
        e.outcome = KEPT_LOCALLY.into();
        e
    }

    /// Whether this line records a report kept in local-only mode.
    pub fn kept_locally(&self) -> bool {
        self.outcome == KEPT_LOCALLY
    }

    /// Whether this line records a 2xx.
    pub fn delivered(&self) -> bool {
        self.outcome == "delivered"
    }
}

/// One line for `history`: time, attempt, outcome, status, receipt or detail, digest, size,
/// target.
impl std::fmt::Display for AuditEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kept_locally() {
            return write!(
                f,
                "{} {} sha256 {} {} bytes (local only: never sent)",
                self.time, self.outcome, self.sha256, self.size
            );
        }
        write!(f, "{} attempt {} {}", self.time, self.attempt, self.outcome)?;
        if let Some(s) = self.status {
            write!(f, " HTTP {s}")?;
        }
        if let Some(r) = &self.receipt {
            write!(f, " receipt {r}")?;
        } else if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        write!(
            f,
            " sha256 {} {} bytes to {}",
            self.sha256, self.size, self.target
        )
    }
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z), as Unix milliseconds.
pub const LATEST_UNIX_MS: u64 = 253_402_300_799_999;

/// RFC 3339 UTC with milliseconds (the core's writer). A time before 1970 or after year 9999
/// (only a damaged file or clock gives one) is shown as the nearest of those bounds rather than
/// taking the command down.
pub fn rfc3339(t: SystemTime) -> String {
    let t = t.clamp(SystemTime::UNIX_EPOCH, from_unix_ms(LATEST_UNIX_MS));
    let micros = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    ttn_telemetry_core::format_rfc3339(micros, 3)
}

/// Unix milliseconds (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The instant of `ms` Unix milliseconds.
pub fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// The audit log of one state directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    dir: PathBuf,
}

impl AuditLog {
    /// The audit log in `dir`, creating the directory if needed.
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        Ok(AuditLog { dir })
    }

    /// Path of the log file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_FILE)
    }

    /// Appends one line. If a crash left a torn last line, it is closed first so the new line
    /// stays readable.
    pub fn append(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let path = self.path();
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        let mut line = Vec::with_capacity(256);
        if ends_torn(&mut f)? {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, entry)?;
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("writing audit log {}", path.display()))
    }

    /// Replaces the last body sent, atomically.
    pub fn write_last_body(&self, body: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.dir.join(LAST_BODY_FILE), body)
    }
}

fn ends_torn(f: &mut File) -> io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] != b'\n')
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// What a read of the audit log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The readable lines, oldest first.
    pub entries: Vec<AuditEntry>,
    /// The last line was cut short (a crash while writing) and was skipped.
    pub torn_tail: bool,
    /// Lines before the last that could not be read.
    pub unreadable: usize,
}

impl History {
    /// The last line that records a finished attempt (not `sending`, not a report kept
    /// locally).
    pub fn last_attempt(&self) -> Option<&AuditEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.outcome != "sending" && !e.kept_locally())
    }
    /// The last report kept in local-only mode.
    pub fn last_kept(&self) -> Option<&AuditEntry> {
        self.entries.iter().rev().find(|e| e.kept_locally())
    }
    /// How many reports were kept in local-only mode.
    pub fn kept(&self) -> usize {
        self.entries.iter().filter(|e| e.kept_locally()).count()
    }
    /// The last 2xx.
    pub fn last_success(&self) -> Option<&AuditEntry> {
        self.entries.iter().rev().find(|e| e.delivered())
    }
}

/// Reads the audit log of `dir`. A missing log is an empty history.
pub fn read_history(dir: &Path) -> anyhow::Result<History> {
    let path = dir.join(AUDIT_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("reading {}", path.display())));
        }
    };
    Ok(parse_history(&bytes))
}

/// Parses audit-log bytes (see [`read_history`]).
pub fn parse_history(bytes: &[u8]) -> History {
    let mut h = History::default();
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        if i + 1 == n && !complete {
            // A last line without its newline was cut short, even if it happens to parse.
            h.torn_tail = true;
            continue;
        }
        match serde_json::from_slice::<AuditEntry>(line) {
            Ok(e) => h.entries.push(e),
            Err(_) => h.unreadable += 1,
        }
    }
    h
}

/// The last body sent, if any.
pub fn read_last_body(dir: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let path = dir.join(LAST_BODY_FILE);
    match fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

/// An [`Observer`] that writes every attempt to the audit log (and the shared status), and
/// defers stop/continue decisions to an inner observer (shutdown, claim renewal).
pub struct Recorder<'a> {
    /// `telemetry.target` (redacted when written).
    pub target: &'a str,
    /// The body being sent.
    pub body: &'a [u8],
    /// Where lines go.
    pub log: &'a AuditLog,
    /// The metrics to update, if any.
    pub status: Option<&'a SharedStatus>,
    /// Decides whether to go on.
    pub guard: &'a mut dyn Observer,
    /// When each `sending` line is stamped.
    clock: &'a dyn Clock,
    /// The first audit write that failed, and the attempt it left unrecorded, if any.
    failed: Option<(Option<u32>, anyhow::Error)>,
}

/// Why the audit trail is incomplete: the delivery was cut short because a line could not be
/// written (see the module docs).
#[derive(Debug)]
pub struct Unaudited {
    /// What delivery did up to the failure.
    pub delivery: Delivery,
    /// The attempt that was made but whose outcome line is missing (the report may have left
    /// without its audit line); `None` when the failure came before an attempt, so nothing left
    /// unrecorded.
    pub unrecorded_attempt: Option<u32>,
    /// The write that failed.
    pub error: anyhow::Error,
}

impl Unaudited {
    /// Whether a report may have left without its audit line.
    pub fn left_unrecorded(&self) -> bool {
        self.unrecorded_attempt.is_some()
    }
}

impl std::fmt::Display for Unaudited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = format!("{:#}", self.error);
        match self.unrecorded_attempt {
            Some(n) => write!(
                f,
                "telemetry report attempt {n} was made ({}) but its audit line could not be written: {why}",
                self.delivery.result
            ),
            None if self.delivery.attempts == 0 => write!(
                f,
                "telemetry report not sent: the audit trail cannot be written: {why} (no report leaves without its audit line; fix telemetry.state-dir)"
            ),
            None => write!(
                f,
                "telemetry report not sent again after {} attempt{}: the audit trail cannot be written: {why} (no report leaves without its audit line; fix telemetry.state-dir)",
                self.delivery.attempts,
                if self.delivery.attempts == 1 { "" } else { "s" },
            ),
        }
    }
}

impl std::error::Error for Unaudited {}

impl std::fmt::Debug for Recorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Observer for Recorder<'_> {
    fn before_attempt(&mut self, number: u32) -> bool {
        if self.failed.is_some() || !self.guard.before_attempt(number) {
            return false;
        }
        let entry = AuditEntry::sending(self.target, self.body, number, self.clock.now());
        if let Err(e) = self.log.append(&entry) {
            self.failed = Some((None, e));
            return false;
        }
        true
    }

    fn after_attempt(&mut self, attempt: &Attempt) {
        let entry = AuditEntry::finished(self.target, self.body, attempt);
        if let Err(e) = self.log.append(&entry) {
            self.failed = Some((Some(attempt.number), e));
        }
        let ok = matches!(attempt.outcome, Outcome::Delivered { .. });
        if !ok {
            tracing::info!(
                attempt = attempt.number,
                "telemetry attempt failed: {}",
                attempt.outcome
            );
        }
        if let Some(status) = self.status {
            status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_attempt(attempt.started, ok, attempt.outcome.to_string());
        }
        self.guard.after_attempt(attempt);
    }

    fn keep_waiting(&mut self) -> bool {
        self.failed.is_none() && self.guard.keep_waiting()
    }
}

/// Keeps `body` in local-only mode: it replaces the last body, then its [`KEPT_LOCALLY`] line
/// is appended (stamped `at`) and the shared status, if any, counts it. Nothing is sent and no
/// connection is made. An error means the report is not fully recorded.
pub fn keep_locally(
    log: &AuditLog,
    body: &[u8],
    at: SystemTime,
    status: Option<&SharedStatus>,
) -> anyhow::Result<()> {
    log.write_last_body(body)?;
    log.append(&AuditEntry::kept(body, at))?;
    if let Some(s) = status {
        s.lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_kept(at, sha256_hex(body));
    }
    Ok(())
}

/// Delivers `body` as [`deliver::deliver`] does, keeping the last body and auditing every
/// attempt: what `send` and the daemon both do. It refuses to make an attempt it cannot
/// record: see the module docs and [`Unaudited`].
#[allow(clippy::too_many_arguments)]
pub fn deliver_audited(
    cfg: &DeliverConfig,
    body: &[u8],
    deadline: SystemTime,
    clock: &dyn Clock,
    rng: &mut Rng,
    log: &AuditLog,
    status: Option<&SharedStatus>,
    guard: &mut dyn Observer,
) -> Result<Delivery, Unaudited> {
    if let Err(error) = log.write_last_body(body) {
        return Err(Unaudited {
            delivery: Delivery {
                result: deliver::Final::Stopped,
                attempts: 0,
            },
            unrecorded_attempt: None,
            error,
        });
    }
    if let Some(s) = status {
        s.lock().unwrap_or_else(|e| e.into_inner()).last_sha256 = Some(sha256_hex(body));
    }
    let mut recorder = Recorder {
        target: &cfg.target,
        body,
        log,
        status,
        guard,
        clock,
        failed: None,
    };
    let delivery = deliver::deliver(cfg, body, deadline, clock, rng, &mut recorder);
    match recorder.failed {
        None => Ok(delivery),
        Some((unrecorded_attempt, error)) => Err(Unaudited {
            delivery,
            unrecorded_attempt,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Receipt;

    fn entry(n: u32) -> AuditEntry {
        AuditEntry::sending(
            "https://u:secret@collector.example/collect",
            b"{}",
            n,
            from_unix_ms(1_700_000_000_123),
        )
    }

    #[test]
    fn entries_redact_and_round_trip() {
        let e = entry(1);
        assert_eq!(e.target, "https://u:***@collector.example/collect");
        assert_eq!(e.time, "2023-11-14T22:13:20.123Z");
        assert_eq!(e.size, 2);
        let done = AuditEntry::finished(
            "http://x/",
            b"{}",
            &Attempt {
                number: 2,
                started: from_unix_ms(5),
                outcome: Outcome::Delivered {
                    status: 202,
                    receipt: Receipt::Matched,
                },
            },
        );
        assert!(done.delivered());
        assert_eq!(
            done.to_string(),
            format!(
                "1970-01-01T00:00:00.005Z attempt 2 delivered HTTP 202 receipt matched sha256 {} 2 bytes to http://x/",
                sha256_hex(b"{}")
            )
        );
        assert_eq!(done.receipt.as_deref(), Some("matched"));
        let line = serde_json::to_string(&done).unwrap();
        assert_eq!(serde_json::from_str::<AuditEntry>(&line).unwrap(), done);
    }

    #[test]
    fn kept_reports_are_lines_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&entry(1)).unwrap();
        let status = crate::metrics::shared(true);
        keep_locally(&log, b"{}", from_unix_ms(7_000), Some(&status)).unwrap();
        let h = read_history(dir.path()).unwrap();
        assert_eq!(h.kept(), 1);
        assert!(h.last_attempt().is_none(), "keeping is not an attempt");
        let kept = h.last_kept().unwrap();
        assert_eq!(kept.target, "");
        assert_eq!(
            kept.to_string(),
            format!(
                "1970-01-01T00:00:07.000Z kept locally sha256 {} 2 bytes (local only: never sent)",
                sha256_hex(b"{}")
            )
        );
        assert_eq!(read_last_body(dir.path()).unwrap().unwrap(), b"{}");
        let s = status.lock().unwrap();
        assert_eq!((s.kept_total, s.last_kept), (1, Some(from_unix_ms(7_000))));
    }

    #[test]
    fn torn_tail_is_skipped_and_next_append_is_readable() {
        let dir = std::env::temp_dir().join(format!("audit-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let log = AuditLog::open(&dir).unwrap();
        log.append(&entry(1)).unwrap();
        log.append(&entry(2)).unwrap();
        // Simulate a crash in the middle of the third line.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(br#"{"time":"2023-11-14T22:1"#).unwrap();
        let h = read_history(&dir).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert!(h.torn_tail);
        log.append(&entry(3)).unwrap();
        let h = read_history(&dir).unwrap();
        assert_eq!(
            h.entries.iter().map(|e| e.attempt).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(!h.torn_tail);
        assert_eq!(h.unreadable, 1);
        log.write_last_body(b"abc").unwrap();
        log.write_last_body(b"abcd").unwrap();
        assert_eq!(read_last_body(&dir).unwrap().unwrap(), b"abcd");
        fs::remove_dir_all(&dir).unwrap();
    }
}
