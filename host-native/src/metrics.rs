//! Prometheus metrics of the agent, served by the admin listener at `/metrics`.
//!
//! `consecutive_failures` counts finished attempts that did not end in a 2xx since the last one
//! that did; it resets to 0 on success. `audit_failures_total` counts the times the audit trail
//! could not be written (a report held back, or an attempt left without its outcome line), so
//! an alert can fire on it.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What the agent knows about its deliveries; shared between the run loop and the listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Whether reports are sent at all.
    pub enabled: bool,
    /// Start of the last attempt.
    pub last_attempt: Option<SystemTime>,
    /// Start of the last attempt that got a 2xx.
    pub last_success: Option<SystemTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// Every attempt since start-up.
    pub attempts_total: u64,
    /// When the next report is due, when known.
    pub next_due: Option<SystemTime>,
    /// SHA-256 (hex) of the last body sent.
    pub last_sha256: Option<String>,
    /// The outcome of the last attempt, as text.
    pub last_outcome: Option<String>,
    /// Times the audit trail could not be written since start-up.
    pub audit_failures_total: u64,
    /// `telemetry.local-only` (and telemetry on): reports are kept, never sent.
    pub local_only: bool,
    /// When the last report was kept in local-only mode.
    pub last_kept: Option<SystemTime>,
    /// Reports kept in local-only mode since start-up.
    pub kept_total: u64,
}

/// The shared status.
pub type SharedStatus = Arc<Mutex<Status>>;

/// A new shared status.
pub fn shared(enabled: bool) -> SharedStatus {
    Arc::new(Mutex::new(Status {
        enabled,
        ..Status::default()
    }))
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Status {
    /// Records a finished attempt.
    pub fn record_attempt(&mut self, started: SystemTime, success: bool, outcome: String) {
        self.last_attempt = Some(started);
        self.attempts_total += 1;
        self.last_outcome = Some(outcome);
        if success {
            self.last_success = Some(started);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
        }
    }

    /// Records a report kept in local-only mode.
    pub fn record_kept(&mut self, at: SystemTime, sha256: String) {
        self.last_kept = Some(at);
        self.kept_total += 1;
        self.last_sha256 = Some(sha256);
    }

    /// The Prometheus text exposition (format 0.0.4). Times are Unix seconds; a time that is not
    /// known yet is left out rather than shown as 0.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: Option<f64>| {
            crate::prom::gauge(&mut out, name, help, value);
        };
        gauge(
            "ttn_lw_telemetry_enabled",
            "Whether telemetry reports are sent (1) or telemetry is off (0).",
            Some(if self.enabled { 1.0 } else { 0.0 }),
        );
        gauge(
            "ttn_lw_telemetry_last_attempt_timestamp_seconds",
            "Start of the last delivery attempt, Unix seconds.",
            self.last_attempt.map(secs),
        );
        gauge(
            "ttn_lw_telemetry_last_success_timestamp_seconds",
            "Start of the last delivery attempt answered with a 2xx, Unix seconds.",
            self.last_success.map(secs),
        );
        gauge(
            "ttn_lw_telemetry_consecutive_failures",
            "Failed delivery attempts since the last success.",
            Some(self.consecutive_failures as f64),
        );
        gauge(
            "ttn_lw_telemetry_next_due_timestamp_seconds",
            "When the next report is due, Unix seconds.",
            self.next_due.map(secs),
        );
        gauge(
            "ttn_lw_telemetry_local_only",
            "Whether reports are kept here and never sent (telemetry.local-only) (1) or not (0).",
            Some(if self.local_only { 1.0 } else { 0.0 }),
        );
        gauge(
            "ttn_lw_telemetry_last_kept_timestamp_seconds",
            "When the last report was kept here in local-only mode, Unix seconds.",
            self.last_kept.map(secs),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            crate::prom::counter(&mut out, name, help, value);
        };
        counter(
            "ttn_lw_telemetry_attempts_total",
            "Delivery attempts since start-up.",
            self.attempts_total,
        );
        counter(
            "ttn_lw_telemetry_reports_kept_total",
            "Reports kept here and never sent (telemetry.local-only) since start-up.",
            self.kept_total,
        );
        counter(
            "ttn_lw_telemetry_audit_failures_total",
            "Times the audit trail could not be written (a report held back, or an attempt left without its outcome line) since start-up.",
            self.audit_failures_total,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn render_tracks_failures_and_success() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut s = Status {
            enabled: true,
            next_due: Some(t(1000)),
            ..Status::default()
        };
        let text = s.render();
        assert!(text.contains("ttn_lw_telemetry_enabled 1\n"));
        assert!(text.contains("ttn_lw_telemetry_next_due_timestamp_seconds 1000\n"));
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("ttn_lw_telemetry_last_success"))
        );
        s.record_attempt(t(10), false, "HTTP 503".into());
        s.record_attempt(t(20), false, "timeout".into());
        assert!(
            s.render()
                .contains("ttn_lw_telemetry_consecutive_failures 2\n")
        );
        s.record_attempt(t(30), true, "delivered".into());
        let text = s.render();
        assert!(text.contains("ttn_lw_telemetry_consecutive_failures 0\n"));
        assert!(text.contains("ttn_lw_telemetry_last_success_timestamp_seconds 30\n"));
        assert!(text.contains("ttn_lw_telemetry_last_attempt_timestamp_seconds 30\n"));
        assert!(text.contains("ttn_lw_telemetry_attempts_total 3\n"));
        assert!(text.contains("ttn_lw_telemetry_audit_failures_total 0\n"));
    }
}
