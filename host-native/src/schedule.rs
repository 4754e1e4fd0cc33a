//! The schedule: exactly one report per interval per deployment (SPEC §6).
//!
//! Time is cut into *slots* of one interval, counted from the deployment's *epoch* (its first
//! start, stored once). Slot `s ≥ 1` is due at `epoch + s·interval`; slot 0 has no report, so the
//! first report is due one interval after the first start. Whoever claims slot `s` sends its
//! report, and may keep retrying until slot `s + 1` is due (the next report supersedes it).
//! When an agent was down over one or more due times, it claims only the current slot: the
//! missed report is sent once after restart, not once per missed interval.
//!
//! Two coordinators implement [`Coordinator`]:
//! - [`local::LocalSchedule`], the state directory, when no Redis is configured: the epoch and
//!   the last finished slot live in `schedule.json` (written atomically), and a file lock keeps
//!   two local processes from claiming at once.
//! - [`redis::RedisSchedule`], when `redis.address` is set: an atomic `SET NX PX` claim per slot,
//!   shared by all replicas.

pub mod local;
pub mod redis;

use std::time::{Duration, SystemTime};

/// A claimed slot: this agent sends its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The slot number (≥ 1).
    pub slot: u64,
    /// When the slot's report was due.
    pub due: SystemTime,
    /// When the next report is due: delivery of this one stops there.
    pub deadline: SystemTime,
    /// The slot was claimed before by an agent that died before finishing it; this is the one
    /// allowed resend.
    pub resumed: bool,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send now.
    Granted(Grant),
    /// Nothing is due before `next_due`.
    NotDue {
        /// When the next report is due.
        next_due: SystemTime,
    },
    /// Another live agent holds the current slot; ask again at `retry_at`.
    Busy {
        /// When to ask again.
        retry_at: SystemTime,
    },
}

/// Claims report slots so that one report is sent per interval, however many agents run.
pub trait Coordinator: Send {
    /// Claims the current slot if it is due and nobody else holds or finished it.
    fn claim(&mut self, now: SystemTime) -> anyhow::Result<Claim>;
    /// Keeps a grant alive during a long delivery; `false` means it was lost (stop sending).
    fn renew(&mut self, grant: &Grant, now: SystemTime) -> anyhow::Result<bool>;
    /// Marks the slot finished (delivered or given up), so nobody sends it again.
    fn complete(&mut self, grant: &Grant, now: SystemTime) -> anyhow::Result<()>;
    /// What coordinates, for the start-up log and `status` (no secrets).
    fn describe(&self) -> String;
    /// How often a holder renews its grant while delivering.
    fn renew_every(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// The slot that `now` falls in, for a given epoch and interval (0 before the first due time).
pub fn slot_at(epoch: SystemTime, interval: Duration, now: SystemTime) -> u64 {
    let since = now.duration_since(epoch).unwrap_or_default();
    (since.as_millis() / interval.as_millis().max(1)) as u64
}

/// When slot `slot` is due.
pub fn due_of(epoch: SystemTime, interval: Duration, slot: u64) -> SystemTime {
    let ms = interval.as_millis().saturating_mul(slot as u128);
    epoch + Duration::from_millis(ms.min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots() {
        let e = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let i = Duration::from_secs(10);
        assert_eq!(slot_at(e, i, e), 0);
        assert_eq!(slot_at(e, i, e + Duration::from_millis(9999)), 0);
        assert_eq!(slot_at(e, i, e + Duration::from_secs(10)), 1);
        assert_eq!(slot_at(e, i, e + Duration::from_secs(35)), 3);
        assert_eq!(slot_at(e, i, e - Duration::from_secs(5)), 0);
        assert_eq!(due_of(e, i, 3), e + Duration::from_secs(30));
    }
}
