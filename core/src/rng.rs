//! The project's one pseudo-random generator: SplitMix64, seeded by the caller.
//!
//! It is pure (the same seed gives the same sequence on every target), so it belongs here; where
//! the seed comes from is the host's business (the agent seeds delivery jitter and Redis claim
//! tokens from the OS, the demo and the test corpus use fixed seeds). Not for secrets: UIDs and
//! UUIDs take their random bytes from the host's CSPRNG.

use core::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and statistically good enough for
/// jitter, sample data and test corpora.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`; `n` must be greater than 0. (The modulo bias is below 2⁻³² for any
    /// `n` under 2³², which these uses never come near.)
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// 16 pseudo-random bytes (for example for [`crate::uuid_v4_from_bytes`] in sample data).
    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        b
    }

    /// A uniformly random duration in `[0, max]`, at millisecond resolution (backoff jitter).
    pub fn upto(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().min(u128::from(u64::MAX)) as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(match ms.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_sequence() {
        // The published SplitMix64 outputs for seed 1234567.
        let mut r = Rng::seeded(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(r.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn bounded_and_repeatable() {
        let (mut a, mut b) = (Rng::seeded(7), Rng::seeded(7));
        let max = Duration::from_millis(250);
        for _ in 0..1000 {
            let x = a.upto(max);
            assert!(x <= max);
            assert_eq!(x, b.upto(max));
            assert!(a.below(3) < 3);
            b.below(3);
        }
        assert_eq!(a.upto(Duration::ZERO), Duration::ZERO);
        assert!(a.upto(Duration::MAX) <= Duration::MAX);
    }
}
