//! Time as an input: one [`Clock`] with `now` and `sleep_until`, passed through the daemon,
//! delivery (backoff and `Retry-After` waits) and the schedule (which takes `now` on every call).
//!
//! The product uses [`SystemClock`]. Tests use [`VirtualClock`], which owns the time and steps
//! it the way quinn-proto's test `Pair` does, so "three intervals" takes milliseconds and is
//! exact:
//! - [`VirtualClock::new`] jumps: a sleep moves time to its deadline at once. That fits code
//!   that one thread drives by itself (a delivery with its backoff), where the next timer is
//!   always that thread's own.
//! - [`VirtualClock::stepped`] holds: a sleeper blocks until the test moves time past its
//!   deadline ([`VirtualClock::advance`], [`VirtualClock::advance_to_next_timer`]). That fits a
//!   loop on another thread (the daemon): the test waits until the loop sleeps
//!   ([`VirtualClock::wait_for_sleepers`]), checks what it did, and steps.
//!
//! Network time (connect and attempt timeouts) still passes for real: only waits are virtual.
//!
//! # Decisions where SPEC is silent
//! - The daemon's loop is a plain thread, not a tokio task, so the clock is synchronous and
//!   tokio's paused time does not apply; a sleep ends early when the [`Shutdown`] signal is given.
//! - A stepped virtual sleeper notices the shutdown signal within 10 ms of real time (it has no
//!   hook into [`Shutdown`]'s condition variable); only tests use it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// A shutdown signal that sleeping threads wake up for.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// A signal not yet given.
    pub fn new() -> Self {
        Self::default()
    }
    /// Gives the signal.
    pub fn trigger(&self) {
        let (m, c) = &*self.inner;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_all();
    }
    /// Whether the signal was given.
    pub fn is_set(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Sleeps up to `d` of real time; returns `true` if the signal was given (at once, when it
    /// was). Use a [`Clock`] for waits that tests should step.
    pub fn wait(&self, d: Duration) -> bool {
        let (m, c) = &*self.inner;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = c
            .wait_timeout_while(g, d, |stop| !*stop)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// Where the host reads the time and waits.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
    /// Waits until [`Clock::now`] reaches `deadline`, or `stop` is given; `true` when `stop`
    /// was given.
    fn sleep_until(&self, deadline: SystemTime, stop: &Shutdown) -> bool;
    /// Waits for `d` (nothing can stop it).
    fn sleep(&self, d: Duration) {
        self.sleep_until(self.now() + d, &Shutdown::new());
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    fn sleep_until(&self, deadline: SystemTime, stop: &Shutdown) -> bool {
        (**self).sleep_until(deadline, stop)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Longest single real wait, after which the wall clock is read again: a wall clock that jumps
/// (suspend, NTP steps) is noticed within this long.
const MAX_REAL_WAIT: Duration = Duration::from_secs(3600);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline: SystemTime, stop: &Shutdown) -> bool {
        loop {
            let Ok(left) = deadline.duration_since(SystemTime::now()) else {
                return stop.is_set();
            };
            if left.is_zero() {
                return stop.is_set();
            }
            if stop.wait(left.min(MAX_REAL_WAIT)) {
                return true;
            }
        }
    }
}

#[derive(Debug)]
struct State {
    now: SystemTime,
    sleeps: Vec<Duration>,
    /// Sleepers of a stepped clock: id → deadline.
    waiters: BTreeMap<u64, SystemTime>,
    next_id: u64,
}

/// A clock that tests own and step; see the [module docs](self).
pub struct VirtualClock {
    state: Mutex<State>,
    changed: Condvar,
    stepped: bool,
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualClock")
            .field("now", &self.now())
            .field("stepped", &self.stepped)
            .finish_non_exhaustive()
    }
}

impl VirtualClock {
    /// A virtual clock at `start` whose sleeps return at once, moving time to their deadline.
    pub fn new(start: SystemTime) -> Self {
        Self::with(start, false)
    }
    /// A virtual clock at `start` whose sleepers wait until the test moves time.
    pub fn stepped(start: SystemTime) -> Self {
        Self::with(start, true)
    }
    fn with(start: SystemTime, stepped: bool) -> Self {
        VirtualClock {
            state: Mutex::new(State {
                now: start,
                sleeps: Vec::new(),
                waiters: BTreeMap::new(),
                next_id: 0,
            }),
            changed: Condvar::new(),
            stepped,
        }
    }
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Every wait so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }
    /// Moves time forward by `d`, waking every sleeper whose deadline it reaches.
    pub fn advance(&self, d: Duration) {
        let mut g = self.lock();
        g.now += d;
        let now = g.now;
        g.waiters.retain(|_, t| *t > now);
        self.changed.notify_all();
    }
    /// The earliest deadline of a sleeper, if any sleeps.
    pub fn next_timer(&self) -> Option<SystemTime> {
        self.lock().waiters.values().min().copied()
    }
    /// Moves time to the earliest sleeper's deadline and wakes it (and any due with it);
    /// returns that time, or `None` (time unchanged) when nothing sleeps.
    pub fn advance_to_next_timer(&self) -> Option<SystemTime> {
        let mut g = self.lock();
        let next = g.waiters.values().min().copied()?;
        if next > g.now {
            g.now = next;
        }
        let now = g.now;
        g.waiters.retain(|_, t| *t > now);
        self.changed.notify_all();
        Some(now)
    }
    /// Blocks (real time, at most `timeout`) until at least `n` threads sleep on this clock;
    /// `false` if they did not. After [`VirtualClock::advance`] the woken sleepers no longer
    /// count, so this says when the code has done its work and is idle again.
    pub fn wait_for_sleepers(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut g = self.lock();
        while g.waiters.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }
    fn sleep_until(&self, deadline: SystemTime, stop: &Shutdown) -> bool {
        let mut g = self.lock();
        if stop.is_set() {
            return true;
        }
        let Ok(d) = deadline.duration_since(g.now) else {
            return false;
        };
        if d.is_zero() {
            return false;
        }
        g.sleeps.push(d);
        if !self.stepped {
            g.now = deadline;
            return stop.is_set();
        }
        let id = g.next_id;
        g.next_id += 1;
        g.waiters.insert(id, deadline);
        self.changed.notify_all();
        loop {
            g = self
                .changed
                .wait_timeout(g, Duration::from_millis(10))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if !g.waiters.contains_key(&id) {
                return stop.is_set();
            }
            if stop.is_set() {
                g.waiters.remove(&id);
                self.changed.notify_all();
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_sleepers_wake_when_time_reaches_them() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = Arc::new(VirtualClock::stepped(t0));
        let c = clock.clone();
        let sleeper = std::thread::spawn(move || {
            let stopped = c.sleep_until(t0 + Duration::from_secs(5), &Shutdown::new());
            (stopped, c.now())
        });
        assert!(clock.wait_for_sleepers(1, Duration::from_secs(5)));
        clock.advance(Duration::from_secs(4));
        assert_eq!(clock.next_timer(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            clock.advance_to_next_timer(),
            Some(t0 + Duration::from_secs(5))
        );
        assert_eq!(
            sleeper.join().unwrap(),
            (false, t0 + Duration::from_secs(5))
        );
        assert_eq!(clock.advance_to_next_timer(), None);
    }

    #[test]
    fn a_stepped_sleeper_stops_on_shutdown() {
        let t0 = SystemTime::UNIX_EPOCH;
        let clock = Arc::new(VirtualClock::stepped(t0));
        let stop = Shutdown::new();
        let (c, s) = (clock.clone(), stop.clone());
        let sleeper = std::thread::spawn(move || c.sleep_until(t0 + Duration::from_secs(3600), &s));
        assert!(clock.wait_for_sleepers(1, Duration::from_secs(5)));
        stop.trigger();
        assert!(sleeper.join().unwrap());
        assert_eq!(clock.now(), t0, "time did not move");
        assert_eq!(clock.next_timer(), None);
    }

    #[test]
    fn a_jumping_clock_moves_to_each_deadline() {
        let t0 = SystemTime::UNIX_EPOCH;
        let clock = VirtualClock::new(t0);
        clock.sleep(Duration::from_secs(2));
        assert!(!clock.sleep_until(t0 + Duration::from_secs(1), &Shutdown::new()));
        clock.sleep(Duration::from_secs(3));
        assert_eq!(clock.now(), t0 + Duration::from_secs(5));
        assert_eq!(
            clock.sleeps(),
            [Duration::from_secs(2), Duration::from_secs(3)]
        );
    }
}
