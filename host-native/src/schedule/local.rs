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
//!
//! # Decision where SPEC is silent: damaged state
//! What is read is checked before it is used ([`LocalState::check`]): a file that is not the
//! schedule's JSON, an unknown version, a zero interval, an epoch later than one interval from
//! now, a finished or pending slot later than the next one, or any due time past year 9999.
//! Such a file is set aside, renamed `schedule.json.corrupt-<unix ms>` (never deleted, so it
//! can be looked at), a new schedule starts as on a first start (the next report is due one
//! interval later), and one warning line says so. `status` only reads: it says the file is
//! damaged and that `run` will set it aside. A state directory that cannot be read at all (an
//! I/O error) is not damage: the error is reported and nothing is renamed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Claim, Coordinator, Grant, due_of, slot_at};
use crate::audit::{LATEST_UNIX_MS, from_unix_ms, unix_ms, write_atomic};

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

    /// Checks that this state can be used at `now`: every time it implies is one a report can
    /// be due at. The error says what is out of range, in a few words.
    pub fn check(&self, now: SystemTime) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("unknown version {}", self.version));
        }
        if self.interval_ms == 0 {
            return Err("interval_ms is 0".into());
        }
        if self.epoch_unix_ms > LATEST_UNIX_MS {
            return Err(format!(
                "epoch_unix_ms {} is past year 9999",
                self.epoch_unix_ms
            ));
        }
        let (epoch, interval) = (self.epoch(), self.interval());
        // A clock stepped back a little is tolerated; a first start later than one interval
        // from now is not a time this agent wrote.
        if epoch > now + interval {
            return Err(format!(
                "epoch_unix_ms {} is later than one interval from now",
                self.epoch_unix_ms
            ));
        }
        let next = slot_at(epoch, interval, now).saturating_add(1);
        if self.done_slot > next {
            return Err(format!(
                "done_slot {} is later than the next slot ({next})",
                self.done_slot
            ));
        }
        if let Some(p) = &self.pending
            && p.slot > next
        {
            return Err(format!(
                "pending.slot {} is later than the next slot ({next})",
                p.slot
            ));
        }
        // The due time of the slot after the next must still be writable.
        let last = u128::from(self.epoch_unix_ms)
            + u128::from(self.interval_ms) * u128::from(next.saturating_add(1));
        if last > u128::from(LATEST_UNIX_MS) {
            return Err("its due times run past year 9999".into());
        }
        Ok(())
    }
}

/// What the state directory holds for the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No schedule yet: the agent has not started here.
    Missing,
    /// A schedule that passed [`LocalState::check`].
    Valid(LocalState),
    /// A file that cannot be used, and why; `run` sets it aside and starts a new schedule.
    Damaged(String),
}

/// Reads the stored schedule of `dir`, if any, without checking its values (see
/// [`inspect_state`]); a file that is not the schedule's JSON is an error.
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

/// Reads and checks the stored schedule of `dir` at `now` (for `run` and `status`). Only an
/// I/O error is an error; content that cannot be used is [`Stored::Damaged`].
pub fn inspect_state(dir: &Path, now: SystemTime) -> anyhow::Result<Stored> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::Missing),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("reading {}", path.display())));
        }
    };
    let state: LocalState = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return Ok(Stored::Damaged(format!("not the schedule's JSON: {e}"))),
    };
    Ok(match state.check(now) {
        Ok(()) => Stored::Valid(state),
        Err(why) => Stored::Damaged(why),
    })
}

/// The state-directory coordinator.
///
/// It opens `schedule.lock` once and keeps it open for its whole life, so claiming a report
/// never needs a new file descriptor for the lock: a process short of descriptors (a flood of
/// admin connections, say) still coordinates. The admin listener's connection cap
/// ([`crate::admin::ADMIN_LIMITS`]) leaves room for the few files a report needs.
#[derive(Debug)]
pub struct LocalSchedule {
    dir: PathBuf,
    interval: Duration,
    /// `schedule.lock`, open for the coordinator's life.
    lock: File,
    /// The lock is held: a grant is being sent.
    held: bool,
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
        let path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let s = LocalSchedule {
            dir,
            interval,
            lock,
            held: false,
        };
        // Record the first start under the lock so that two first starts agree on one epoch.
        // A held lock means another process is sending, so the state exists already.
        if s.lock.try_lock().is_ok() {
            let loaded = s.load_or_init(now);
            s.unlock();
            loaded?;
        }
        Ok(s)
    }

    fn unlock(&self) {
        if let Err(e) = self.lock.unlock() {
            tracing::warn!("telemetry schedule: releasing {LOCK_FILE}: {e}");
        }
    }

    /// The stored schedule.
    pub fn state(&self) -> anyhow::Result<Option<LocalState>> {
        read_state(&self.dir)
    }

    fn save(&self, state: &LocalState) -> anyhow::Result<()> {
        write_atomic(&self.dir.join(STATE_FILE), &serde_json::to_vec(state)?)
    }

    /// Renames a damaged `schedule.json` to `schedule.json.corrupt-<unix ms>` (with a suffix
    /// if that name is taken) and returns the new path.
    fn set_aside(&self, now: SystemTime) -> anyhow::Result<PathBuf> {
        let from = self.dir.join(STATE_FILE);
        let stem = format!("{STATE_FILE}.corrupt-{}", unix_ms(now));
        let mut to = self.dir.join(&stem);
        let mut n = 1;
        while to.exists() {
            to = self.dir.join(format!("{stem}-{n}"));
            n += 1;
        }
        std::fs::rename(&from, &to).with_context(|| {
            format!(
                "setting aside the damaged {} as {}",
                from.display(),
                to.display()
            )
        })?;
        Ok(to)
    }

    fn load_or_init(&self, now: SystemTime) -> anyhow::Result<LocalState> {
        let interval_ms = self.interval.as_millis().clamp(1, u64::MAX as u128) as u64;
        let fresh = LocalState {
            version: 1,
            epoch_unix_ms: unix_ms(now),
            interval_ms,
            done_slot: 0,
            pending: None,
        };
        let mut state = match inspect_state(&self.dir, now)? {
            Stored::Valid(s) => s,
            Stored::Missing => {
                self.save(&fresh)?;
                return Ok(fresh);
            }
            Stored::Damaged(why) => {
                let aside = self.set_aside(now)?;
                tracing::warn!(
                    "telemetry schedule {} is damaged ({why}): set aside as {} and started again; the next report is due one interval from now",
                    self.dir.join(STATE_FILE).display(),
                    aside.display()
                );
                self.save(&fresh)?;
                return Ok(fresh);
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
        if self.held {
            anyhow::bail!("a report of this schedule is already in flight");
        }
        match self.lock.try_lock() {
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
        let mut state = match self.load_or_init(now) {
            Ok(s) => s,
            Err(e) => {
                self.unlock();
                return Err(e);
            }
        };
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
                if let Err(e) = self.save(&state) {
                    self.unlock();
                    return Err(e);
                }
                self.held = true;
                Ok(Claim::Granted(g))
            }
            None => {
                let saved = self.save(&state);
                self.unlock();
                saved?;
                Ok(Claim::NotDue {
                    next_due: state.next_due(),
                })
            }
        }
    }

    fn renew(&mut self, _grant: &Grant, _now: SystemTime) -> anyhow::Result<bool> {
        Ok(self.held)
    }

    fn complete(&mut self, grant: &Grant, now: SystemTime) -> anyhow::Result<()> {
        let mut state = self.load_or_init(now)?;
        state.done_slot = state.done_slot.max(grant.slot);
        if state.pending.as_ref().is_some_and(|p| p.slot <= grant.slot) {
            state.pending = None;
        }
        let saved = self.save(&state);
        self.held = false;
        self.unlock();
        saved
    }

    fn describe(&self) -> String {
        format!("state directory {}", self.dir.display())
    }
}
