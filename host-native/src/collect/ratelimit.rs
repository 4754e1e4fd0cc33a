//! Token buckets keyed by client address or uid, in a bounded map.
//!
//! Each bucket is kept as one instant (GCRA, the generic cell rate algorithm): its "theoretical
//! arrival time" `tat`. A take at `now` moves it to `max(tat, now) + T`, where `T = 1/rate`, and is
//! allowed while that stays within `burst · T` of `now`. That is exactly a token bucket of `burst`
//! tokens refilled at `rate`, and a bucket whose `tat` has passed is full: it carries no state and
//! can be forgotten.
//!
//! # Decisions where SPEC is silent
//! - **Bounded memory, no scan.** The map holds at most `capacity` keys. Beside it, an ordered
//!   index by `tat` names the bucket that refills first, so a new key, when the map is full,
//!   costs one O(log n) look-up: the first bucket is forgotten if it is full, else the new key is
//!   refused (with a Retry-After of when that bucket will be full). The lock is never held for a
//!   walk over the buckets, whatever an attacker sends. (`governor` was considered: its keyed
//!   limiter bounds memory only by a periodic `retain_recent` walk over every key, which is the
//!   scan this replaces.)
//! - **IPv6 by /64.** One IPv6 host usually holds a whole /64 and can pick a fresh address per
//!   request, so the per-address limit keys IPv6 on the /64 prefix ([`addr_key`]); IPv4 (and
//!   IPv4-mapped IPv6) keys on the whole address.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token-bucket rate: up to `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: requests allowed back to back.
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

/// The longest Retry-After we announce, and the refill period of a rate of 0 (never, in effect).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// The key of a client address for the per-address limit: IPv4 as is (IPv4-mapped IPv6 counts
/// as IPv4), IPv6 by its /64 prefix.
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// A Retry-After: at least a second, at most [`MAX_WAIT`].
fn retry_after(d: Duration) -> Duration {
    d.clamp(Duration::from_secs(1), MAX_WAIT)
}

/// One take from a bucket whose theoretical arrival time is `ahead` of now (zero when it has
/// passed: the bucket is full). Gives the new `ahead`, or, when the bucket is empty, how long
/// to wait. The one GCRA step of the in-memory [`Buckets`] and of the shared buckets a
/// PostgreSQL store keeps across collectors (see [`super::store`]).
pub fn step(limit: RateLimit, ahead: Duration) -> Result<Duration, Duration> {
    let period = period(limit);
    let tolerance = period.saturating_mul(limit.burst.max(1));
    let Some(next) = ahead.checked_add(period) else {
        return Err(MAX_WAIT);
    };
    if next > tolerance {
        return Err(retry_after(next - tolerance));
    }
    Ok(next)
}

/// One token's refill time; a rate of 0 (or too small to matter) refills after [`MAX_WAIT`].
fn period(limit: RateLimit) -> Duration {
    if limit.per_second > 1.0 / MAX_WAIT.as_secs_f64() {
        Duration::from_secs_f64(1.0 / limit.per_second)
    } else {
        MAX_WAIT
    }
}

#[derive(Debug)]
struct State<K> {
    /// Each key's theoretical arrival time.
    tat: HashMap<K, Instant>,
    /// The same pairs, ordered by time: the first is the bucket that is full first.
    by_time: BTreeSet<(Instant, K)>,
}

/// Buckets for many keys, at most `capacity` of them (see the module docs).
#[derive(Debug)]
pub struct Buckets<K> {
    limit: Option<RateLimit>,
    capacity: usize,
    state: Mutex<State<K>>,
}

impl<K: Hash + Ord + Clone> Buckets<K> {
    /// Buckets with `limit` (`None`: unlimited) for at most `capacity` keys.
    pub fn new(limit: Option<RateLimit>, capacity: usize) -> Self {
        Buckets {
            limit,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                // Sized for the bound up front (up to 2^17 keys): growing moves every entry
                // at once, under the lock every request takes (the SQLite uid index's growth
                // stalled its writer 60-140 ms at 229k uids). At the default bound, about
                // 5 MB of address space, paged in as keys arrive.
                tat: HashMap::with_capacity(capacity.clamp(1, 1 << 17)),
                by_time: BTreeSet::new(),
            }),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, says when to retry.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        let old = state.tat.get(&key).copied();
        if old.is_none() && state.tat.len() >= self.capacity {
            // Full: forget the bucket that refills first, if it has.
            let (first, first_key) = state
                .by_time
                .first()
                .cloned()
                .expect("the index mirrors the map");
            if first > now {
                return Err(retry_after(first - now));
            }
            state.by_time.remove(&(first, first_key.clone()));
            state.tat.remove(&first_key);
        }
        let ahead = old.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let next = now.checked_add(step(limit, ahead)?).ok_or(MAX_WAIT)?;
        if let Some(t) = old {
            state.by_time.remove(&(t, key.clone()));
        }
        state.by_time.insert((next, key.clone()));
        state.tat.insert(key, next);
        Ok(())
    }

    /// Gives back the token a request took for `key` when the request turned out not to be
    /// the key's own: a report refused because its uid's pinned key did not sign it must not
    /// spend that uid's tokens, or anyone could silence a deployment by spoofing it.
    pub fn give_back(&self, key: &K) {
        let Some(limit) = self.limit else {
            return;
        };
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        if let Some(t) = state.tat.get(key).copied() {
            let back = t.checked_sub(period(limit)).unwrap_or(t);
            state.by_time.remove(&(t, key.clone()));
            state.by_time.insert((back, key.clone()));
            state.tat.insert(key.clone(), back);
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tat
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(burst: u32, per_second: f64) -> Option<RateLimit> {
        Some(RateLimit { burst, per_second })
    }

    #[test]
    fn burst_then_refill() {
        let b = Buckets::new(limit(2, 1.0), 10);
        let t = Instant::now();
        assert!(b.take("a", t).is_ok());
        assert!(b.take("a", t).is_ok());
        assert_eq!(b.take("a", t), Err(Duration::from_secs(1)));
        assert!(b.take("b", t).is_ok(), "keys are independent");
        assert!(b.take("a", t + Duration::from_millis(1100)).is_ok());
        assert!(b.take("a", t + Duration::from_millis(1100)).is_err());
    }

    #[test]
    fn a_slow_rate_says_when_to_retry() {
        let b = Buckets::new(limit(10, 1.0 / 600.0), 10);
        let t = Instant::now();
        for _ in 0..10 {
            assert!(b.take("uid", t).is_ok());
        }
        assert_eq!(b.take("uid", t), Err(Duration::from_secs(600)));
        assert!(b.take("uid", t + Duration::from_secs(600)).is_ok());
        // A rate of 0: the burst, then one token a day.
        let never = Buckets::new(limit(1, 0.0), 10);
        assert!(never.take(1, t).is_ok());
        assert!(never.take(1, t + Duration::from_secs(3600)).is_err());
        assert!(never.take(1, t + MAX_WAIT).is_ok());
    }

    #[test]
    fn bounded() {
        let b = Buckets::new(limit(1, 0.001), 2);
        let t = Instant::now();
        assert!(b.take(1, t).is_ok());
        assert!(b.take(2, t).is_ok());
        assert!(b.take(3, t).is_err(), "full of live buckets");
        assert_eq!(b.len(), 2);
        // After a bucket refills, it makes room.
        assert!(b.take(3, t + Duration::from_secs(2000)).is_ok());
        assert_eq!(b.len(), 2);
        assert!(Buckets::<u8>::new(None, 1).take(1, t).is_ok());
    }

    #[test]
    fn a_full_map_forgets_the_bucket_that_refilled_first() {
        // 1 token a second, burst 3. Key 1 takes once (full again at t+1s); key 2 three times
        // (full again at t+3s).
        let b = Buckets::new(limit(3, 1.0), 2);
        let t = Instant::now();
        assert!(b.take(1, t).is_ok());
        for _ in 0..3 {
            assert!(b.take(2, t).is_ok());
        }
        assert_eq!(
            b.take(3, t),
            Err(Duration::from_secs(1)),
            "key 1 is full at t+1s"
        );
        let later = t + Duration::from_millis(1500);
        assert!(b.take(3, later).is_ok(), "key 1 made room");
        // Key 2 kept its state: one token back after 1.5 s, so one take, then refused.
        assert!(b.take(2, later).is_ok());
        assert!(b.take(2, later).is_err());
        // Key 1 was forgotten (it was full): it starts a new, full bucket once there is room.
        assert!(b.take(1, later).is_err(), "no room: keys 2 and 3 are live");
    }

    #[test]
    fn a_full_map_of_many_keys_refuses_a_new_one_without_walking_them() {
        // 100,000 live buckets: each refusal looks at the first one only, so this is quick.
        let b = Buckets::new(limit(1, 0.001), 100_000);
        let t = Instant::now();
        for k in 0..100_000u32 {
            assert!(b.take(k, t).is_ok());
        }
        for k in 100_000..200_000u32 {
            assert!(b.take(k, t).is_err());
        }
        assert_eq!(b.len(), 100_000);
    }

    #[test]
    fn ipv6_keys_on_the_64_prefix_and_ipv4_on_the_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(addr_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            addr_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            addr_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            addr_key(ip("2001:db8:1:2::1")),
            addr_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(addr_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(addr_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(addr_key(ip("192.0.2.7")), addr_key(ip("192.0.2.8")));

        // So one host rotating addresses in its /64 shares one bucket.
        let b = Buckets::new(limit(2, 1.0), 10);
        let t = Instant::now();
        assert!(b.take(addr_key(ip("2001:db8::1")), t).is_ok());
        assert!(b.take(addr_key(ip("2001:db8::2")), t).is_ok());
        assert!(b.take(addr_key(ip("2001:db8::3")), t).is_err());
        assert!(b.take(addr_key(ip("2001:db8:0:1::3")), t).is_ok());
    }
}
