//! The schedule kept in the state directory, for a deployment without Redis.
//!
//! `schedule.json` holds the epoch (first start), the interval, the last finished slot, and the
//! slot being sent, if any. It is replaced atomically. `schedule.lock` is locked exclusively
//! (an OS file lock, released by the kernel when the process dies) from a granted claim until
//! its completion, so:
//! - a second local process asking while a report is being sent gets [`Claim::Busy`];
//! - a `pending` slot whose lock is free belongs to a process that died mid-send: the slot is
//!   granted once more with `resumed = true`, and never a third time.
//!
//! When the configured interval differs from the stored one, the schedule is re-based at the
//! due time of the last finished slot (or the epoch), so the next report is due one new interval
//! after the last one, not at a slot number that meant something else before.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Claim, Coordinator, Grant, due_of, slot_at};
use crate::audit::{from_unix_ms, unix_ms, write_atomic};

/// File name of the schedule state.
pub const STATE_FILE: &str = "schedule.json";
/// File name of the lock.
pub const LOCK_FILE: &str = "schedule.lock";

/// How long a second local process waits before asking again while a report is in flight.
const BUSY_RETRY: Duration = Duration::from_secs(30);

/// The stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    /// Format version (1).
    pub version: u32,
    /// First start of the deployment (or the re-basing point), Unix ms.
    pub epoch_unix_ms: u64,
    /// The interval the slots are counted in, ms.
    pub interval_ms: u64,
    /// The last slot whose report was finished (delivered or given up); 0 for none.
    pub done_slot: u64,
    /// The slot being sent, if a claim was granted and not completed.
    #[serde(default)]
    pub pending: Option<Pending>,
}

/// A granted, unfinished slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The slot.
    pub slot: u64,
    /// Whether this grant is already the one resend after a crash.
    pub resumed: bool,
}

impl LocalState {
    /// The epoch as a time.
    pub fn epoch(&self) -> SystemTime {
        from_unix_ms(self.epoch_unix_ms)
    }
    /// The interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }
    /// When the next report is due (the next unfinished slot).
    pub fn next_due(&self) -> SystemTime {
        let slot = match &self.pending {
            Some(p) => p.slot,
            None => self.done_slot + 1,
        };
        due_of(self.epoch(), self.interval(), slot)
    }
}

/// Reads the stored schedule of `dir`, if any (for `status`).
pub fn read_state(dir: &Path) -> anyhow::Result<Option<LocalState>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

/// The state-directory coordinator.
#[derive(Debug)]
pub struct LocalSchedule {
    dir: PathBuf,
    interval: Duration,
    /// The lock file, locked while a grant is held.
    held: Option<File>,
}

impl LocalSchedule {
    /// The schedule in `dir` with reports every `interval`. If the deployment has never started
    /// before, `now` becomes its epoch, so the first report is due at `now + interval`.
    pub fn open(
        dir: impl Into<PathBuf>,
        interval: Duration,
        now: SystemTime,
    ) -> anyhow::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let s = LocalSchedule {
            dir,
            interval,
            held: None,
        };
        // Record the first start under the lock so that two first starts agree on one epoch.
        // A held lock means another process is sending, so the state exists already.
        let lock = s.lock_file()?;
        if lock.try_lock().is_ok() {
            s.load_or_init(now)?;
        }
        drop(lock);
        Ok(s)
    }

    /// The stored schedule.
    pub fn state(&self) -> anyhow::Result<Option<LocalState>> {
        read_state(&self.dir)
    }

    fn lock_file(&self) -> anyhow::Result<File> {
        let path = self.dir.join(LOCK_FILE);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    fn save(&self, state: &LocalState) -> anyhow::Result<()> {
        write_atomic(&self.dir.join(STATE_FILE), &serde_json::to_vec(state)?)
    }

    fn load_or_init(&self, now: SystemTime) -> anyhow::Result<LocalState> {
        let interval_ms = self.interval.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut state = match read_state(&self.dir)? {
            Some(s) => s,
            None => {
                let s = LocalState {
                    version: 1,
                    epoch_unix_ms: unix_ms(now),
                    interval_ms,
                    done_slot: 0,
                    pending: None,
                };
                self.save(&s)?;
                return Ok(s);
            }
        };
        if state.interval_ms != interval_ms {
            let last = due_of(state.epoch(), state.interval(), state.done_slot);
            tracing::info!(
                "telemetry interval changed; the next report is due one new interval after the last one"
            );
            state = LocalState {
                version: 1,
                epoch_unix_ms: unix_ms(last),
                interval_ms,
                done_slot: 0,
                pending: None,
            };
            self.save(&state)?;
        }
        Ok(state)
    }
}

impl Coordinator for LocalSchedule {
    fn claim(&mut self, now: SystemTime) -> anyhow::Result<Claim> {
        if self.held.is_some() {
            anyhow::bail!("a report of this schedule is already in flight");
        }
        let lock = self.lock_file()?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Ok(Claim::Busy {
                    retry_at: now + BUSY_RETRY.min(self.interval),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context("locking the schedule"));
            }
        }
        let mut state = self.load_or_init(now)?;
        let (epoch, interval) = (state.epoch(), state.interval());
        let current = slot_at(epoch, interval, now);
        let mut grant = None;
        if let Some(p) = state.pending.take() {
            // The lock was free, so the process that claimed this slot died mid-send.
            if p.slot == current && !p.resumed {
                grant = Some(Grant {
                    slot: p.slot,
                    due: due_of(epoch, interval, p.slot),
                    deadline: due_of(epoch, interval, p.slot + 1),
                    resumed: true,
                });
            } else {
                // Superseded by a newer slot, or already resent once: it is finished.
                state.done_slot = state.done_slot.max(p.slot);
            }
        }
        if grant.is_none() && current >= 1 && current > state.done_slot {
            grant = Some(Grant {
                slot: current,
                due: due_of(epoch, interval, current),
                deadline: due_of(epoch, interval, current + 1),
                resumed: false,
            });
        }
        match grant {
            Some(g) => {
                state.pending = Some(Pending {
                    slot: g.slot,
                    resumed: g.resumed,
                });
                self.save(&state)?;
                self.held = Some(lock);
                Ok(Claim::Granted(g))
            }
            None => {
                self.save(&state)?;
                Ok(Claim::NotDue {
                    next_due: state.next_due(),
                })
            }
        }
    }

    fn renew(&mut self, _grant: &Grant, _now: SystemTime) -> anyhow::Result<bool> {
        Ok(self.held.is_some())
    }

    fn complete(&mut self, grant: &Grant, now: SystemTime) -> anyhow::Result<()> {
        let mut state = self.load_or_init(now)?;
        state.done_slot = state.done_slot.max(grant.slot);
        if state.pending.as_ref().is_some_and(|p| p.slot <= grant.slot) {
            state.pending = None;
        }
        let saved = self.save(&state);
        // Dropping the file releases the lock.
        self.held = None;
        saved
    }

    fn describe(&self) -> String {
        format!("state directory {}", self.dir.display())
    }
}
