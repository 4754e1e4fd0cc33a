//! Token buckets keyed by client address or uid, in a bounded map.

use std::collections::HashMap;
use std::hash::Hash;
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

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets for many keys. The map holds at most `capacity` keys: when it is full, buckets that
/// have refilled completely (and so carry no state) are dropped; if none has, a new key is
/// refused until some have, which bounds memory whatever an attacker sends.
#[derive(Debug)]
pub struct Buckets<K> {
    limit: Option<RateLimit>,
    capacity: usize,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> Buckets<K> {
    /// Buckets with `limit` (`None`: unlimited) for at most `capacity` keys.
    pub fn new(limit: Option<RateLimit>, capacity: usize) -> Self {
        Buckets {
            limit,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, says when to retry.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst.max(1));
        let refill = |b: &mut Bucket| {
            let dt = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + dt * limit.per_second).min(burst);
            b.last = now;
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.capacity {
            map.retain(|_, b| {
                refill(b);
                b.tokens < burst
            });
            if map.len() >= self.capacity {
                return Err(Duration::from_secs(1));
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        refill(b);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if limit.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                ((1.0 - b.tokens) / limit.per_second).clamp(1.0, 86_400.0),
            ))
        } else {
            Err(Duration::from_secs(86_400))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let b = Buckets::new(
            Some(RateLimit {
                burst: 2,
                per_second: 1.0,
            }),
            10,
        );
        let t = Instant::now();
        assert!(b.take("a", t).is_ok());
        assert!(b.take("a", t).is_ok());
        assert!(b.take("a", t).is_err());
        assert!(b.take("b", t).is_ok(), "keys are independent");
        assert!(b.take("a", t + Duration::from_millis(1100)).is_ok());
    }

    #[test]
    fn bounded() {
        let b = Buckets::new(
            Some(RateLimit {
                burst: 1,
                per_second: 0.001,
            }),
            2,
        );
        let t = Instant::now();
        assert!(b.take(1, t).is_ok());
        assert!(b.take(2, t).is_ok());
        assert!(b.take(3, t).is_err(), "full of live buckets");
        // After the buckets refill, they are dropped to make room.
        assert!(b.take(3, t + Duration::from_secs(2000)).is_ok());
        assert!(Buckets::<u8>::new(None, 1).take(1, t).is_ok());
    }
}
