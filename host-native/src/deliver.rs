//! Delivery: `POST` one report to the target, retrying what is worth retrying (SPEC §6).
//!
//! The bytes come from the core and are sent unchanged on every attempt, with
//! `Content-Type: application/json`, `User-Agent: ttn-lw-telemetry/<version>` and an RFC 9530
//! `Content-Digest`. Each attempt has a bounded connect timeout and a bounded total timeout,
//! both cut to what is left before the deadline: an attempt in flight when the deadline comes
//! ends there (a timeout), so delivery never runs past its deadline by more than the time to
//! notice it.
//!
//! # Retry policy
//! - A 2xx status is success.
//! - Network errors (refused, reset, DNS, TLS), timeouts, 408, 429 and 5xx are retried until the
//!   deadline: for `send` the `--deadline` (default 5 min), for the daemon the due time of the
//!   next report, which supersedes this one.
//! - Other 4xx are not retried: the collector said the report is wrong, and sending the same
//!   bytes again cannot change its mind.
//! - **Redirects (3xx) are not followed and not retried.** A telemetry target that redirects is
//!   misconfigured (fix `telemetry.target`) or hostile (a redirect could move the report to a
//!   host the operator never named). The outcome names the status and the `Location` so the
//!   operator can decide.
//! - Backoff is capped exponential with full jitter: before retry *n* (n = 1, 2, …) the agent
//!   waits a uniformly random time in `[0, min(cap, base · 2^(n−1))]`. A `Retry-After` header
//!   (seconds or HTTP-date) raises that wait to at least what the server asked for. A wait that
//!   would end past the deadline ends delivery instead.
//!
//! # Receipt
//! A collector of this project answers a stored report with `{"stored":true,"sha256":"<hex>"}`
//! naming the SHA-256 of the body it stored. When the response carries its own
//! `Content-Digest`, that digest must match the response body, so a receipt mangled on the way is
//! reported as invalid rather than trusted. Other collectors may answer anything: no receipt is
//! not an error.
//!
//! # Signatures
//! With a deployment key ([`DeliverConfig::signing_key`], the agent's), every attempt carries
//! RFC 9421 `Signature-Input` and `Signature` headers over `@method`, `@target-uri` (the
//! target exactly as configured: write it as the collector sees it, without a default port)
//! and `Content-Digest`, created at the attempt's time on the injected clock. The body is not
//! changed. See `docs/signing.md`.
//!
//! Time and randomness are injected ([`Clock`], [`Rng`]) so tests step every wait on a
//! [`VirtualClock`]: the backoff and `Retry-After` waits, and the `Retry-After` date, follow
//! the clock.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use ttn_telemetry_core::{content_digest, parse_content_digest, sha256, sha256_hex};

/// Largest collector response body that is read (a receipt is tiny).
const MAX_RESPONSE_BYTES: u64 = 16 * 1024;

/// The `User-Agent` of every report.
pub fn user_agent() -> String {
    format!("ttn-lw-telemetry/{}", env!("CARGO_PKG_VERSION"))
}

pub use crate::clock::{Clock, SystemClock, VirtualClock};

/// The jitter's generator: the core's seeded [`Rng`] (one generator for the whole project).
pub use ttn_telemetry_core::Rng;

/// A generator seeded from the process's random hash keys, its id and the time: distinct per
/// process and per call, which is all jitter and claim tokens need (not for secrets).
pub fn entropy_rng() -> Rng {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    Rng::seeded(h.finish())
}

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first wait.
    pub base: Duration,
    /// Largest upper bound of any wait (before `Retry-After`).
    pub cap: Duration,
}

impl Default for Backoff {
    /// 2 s doubling to at most 10 min: quick recovery from a blip, gentle on a collector that is
    /// down for hours, and many tries within a 24 h interval.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// Upper bound of the wait before retry `n` (1-based): `min(cap, base · 2^(n−1))`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }
}

/// How one report is delivered.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// The collector URL (`telemetry.target`).
    pub target: String,
    /// Bound on TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Bound on one whole attempt (connect, send, response).
    pub attempt_timeout: Duration,
    /// Waits between attempts.
    pub backoff: Backoff,
    /// The deployment key that signs each attempt (RFC 9421, see `docs/signing.md`); `None`:
    /// unsigned, as the reference agent and CLI telemetry send.
    #[cfg(feature = "agent")]
    pub signing_key: Option<ttn_telemetry_core::SigningKey>,
}

impl DeliverConfig {
    /// Defaults for `target`: 10 s connect, 30 s per attempt, [`Backoff::default`].
    pub fn new(target: impl Into<String>) -> Self {
        DeliverConfig {
            target: target.into(),
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            #[cfg(feature = "agent")]
            signing_key: None,
        }
    }
}

/// What a collector's receipt says about the stored body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The response holds no receipt of this project's shape.
    None,
    /// The collector stored a body with the same SHA-256 as the one sent.
    Matched,
    /// The collector says it stored a body with another SHA-256 (hex given).
    Mismatch(String),
    /// The response claims to be a receipt but is malformed, or its `Content-Digest` does not
    /// match it.
    Invalid(String),
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Receipt::None => f.write_str("none"),
            Receipt::Matched => f.write_str("matched"),
            Receipt::Mismatch(h) => write!(f, "mismatch: collector stored sha256 {h}"),
            Receipt::Invalid(m) => write!(f, "invalid: {m}"),
        }
    }
}

/// Checks a collector response for a receipt naming `sent_sha256_hex`.
pub fn check_receipt(
    response_body: &[u8],
    response_content_digest: Option<&str>,
    sent_sha256_hex: &str,
) -> Receipt {
    let Ok(crate::receipt::Receipt {
        stored,
        sha256: hex,
        ..
    }) = serde_json::from_slice(response_body)
    else {
        return Receipt::None;
    };
    if let Some(header) = response_content_digest {
        match parse_content_digest(header) {
            Some(d) if d == sha256(response_body) => {}
            Some(_) => return Receipt::Invalid("Content-Digest does not match the receipt".into()),
            None => return Receipt::Invalid("unreadable Content-Digest".into()),
        }
    }
    if !stored {
        return Receipt::Invalid("collector says it did not store the report".into());
    }
    if hex.eq_ignore_ascii_case(sent_sha256_hex) {
        Receipt::Matched
    } else {
        Receipt::Mismatch(hex.chars().take(64).collect())
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx status.
    Delivered {
        /// The status code.
        status: u16,
        /// What the receipt says.
        receipt: Receipt,
    },
    /// An HTTP status that will be retried (408, 429, 5xx).
    RetryableStatus {
        /// The status code.
        status: u16,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// A 4xx that is not retried.
    Rejected {
        /// The status code.
        status: u16,
        /// The start of the response body (the collector says what is wrong there).
        message: String,
    },
    /// A 3xx: not followed, not retried.
    Redirected {
        /// The status code.
        status: u16,
        /// The `Location` header.
        location: String,
    },
    /// Connect, send or receive did not finish within its timeout.
    Timeout(String),
    /// A network error (refused, reset, DNS, TLS).
    Network(String),
    /// The request could not be made at all (bad target URL); not retried.
    Unsendable(String),
}

impl Outcome {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Outcome::RetryableStatus { .. } | Outcome::Timeout(_) | Outcome::Network(_)
        )
    }
    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status, .. }
            | Outcome::RetryableStatus { status, .. }
            | Outcome::Rejected { status, .. }
            | Outcome::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// A short kind for logs and the audit log: `delivered`, `retryable-status`, `rejected`,
    /// `redirected`, `timeout`, `network`, `unsendable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::RetryableStatus { .. } => "retryable-status",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Redirected { .. } => "redirected",
            Outcome::Timeout(_) => "timeout",
            Outcome::Network(_) => "network",
            Outcome::Unsendable(_) => "unsendable",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered { status, receipt } => {
                write!(f, "delivered: HTTP {status}, receipt {receipt}")
            }
            Outcome::RetryableStatus {
                status,
                retry_after: Some(d),
            } => write!(f, "HTTP {status}, retry after {} s", d.as_secs()),
            Outcome::RetryableStatus { status, .. } => write!(f, "HTTP {status}"),
            Outcome::Rejected { status, message } => {
                write!(f, "rejected: HTTP {status}: {message}")
            }
            Outcome::Redirected { status, location } => write!(
                f,
                "HTTP {status} redirect to {location:?} not followed: set telemetry.target to the collector's real URL"
            ),
            Outcome::Timeout(m) => write!(f, "timeout: {m}"),
            Outcome::Network(m) => write!(f, "network error: {m}"),
            Outcome::Unsendable(m) => write!(f, "cannot send: {m}"),
        }
    }
}

/// One finished attempt, as handed to the [`Observer`].
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt of this report.
    pub number: u32,
    /// When the attempt started.
    pub started: SystemTime,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// A 2xx status.
    Delivered {
        /// The status code.
        status: u16,
        /// What the receipt says.
        receipt: Receipt,
    },
    /// An outcome that is not retried (other 4xx, 3xx, a bad URL).
    Failed(Outcome),
    /// The deadline came (or the next report superseded this one) after retryable failures.
    DeadlinePassed {
        /// The last attempt's outcome.
        last: Outcome,
    },
    /// The observer stopped delivery (shutdown, or a lost Redis claim).
    Stopped,
}

impl Final {
    /// Whether the report was delivered.
    pub fn delivered(&self) -> bool {
        matches!(self, Final::Delivered { .. })
    }
}

impl fmt::Display for Final {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Final::Delivered { status, receipt } => {
                write!(f, "delivered: HTTP {status}, receipt {receipt}")
            }
            Final::Failed(o) => write!(f, "not delivered: {o}"),
            Final::DeadlinePassed { last } => {
                write!(
                    f,
                    "not delivered before the deadline; last attempt: {o}",
                    o = last
                )
            }
            Final::Stopped => f.write_str("delivery stopped"),
        }
    }
}

/// What delivery did.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// How it ended.
    pub result: Final,
    /// Number of attempts made.
    pub attempts: u32,
}

/// Hooks around each attempt: audit, metrics, keeping a claim alive, shutdown.
pub trait Observer {
    /// Called before attempt `number`; returning `false` stops delivery.
    fn before_attempt(&mut self, _number: u32) -> bool {
        true
    }
    /// Called after each attempt.
    fn after_attempt(&mut self, _attempt: &Attempt) {}
    /// Called at least every [`WAIT_SLICE`] while waiting between attempts; `false` stops.
    fn keep_waiting(&mut self) -> bool {
        true
    }
}

/// The no-op observer.
impl Observer for () {}

/// Longest single sleep while waiting between attempts, so observers can renew leases or stop.
pub const WAIT_SLICE: Duration = Duration::from_secs(1);

/// Sends `body` to the target until a 2xx, a non-retryable outcome, or `deadline`.
pub fn deliver(
    cfg: &DeliverConfig,
    body: &[u8],
    deadline: SystemTime,
    clock: &dyn Clock,
    rng: &mut Rng,
    observer: &mut dyn Observer,
) -> Delivery {
    let agent = agent(cfg);
    let digest = content_digest(body);
    let sent_hex = sha256_hex(body);
    let mut number = 0u32;
    loop {
        number += 1;
        if !observer.before_attempt(number) {
            return Delivery {
                result: Final::Stopped,
                attempts: number - 1,
            };
        }
        let started = clock.now();
        let left = deadline.duration_since(started).unwrap_or_default();
        let outcome = attempt(&agent, cfg, left, body, &digest, &sent_hex, clock);
        tracing::debug!(attempt = number, outcome = %outcome, "telemetry delivery attempt");
        let attempt = Attempt {
            number,
            started,
            outcome,
        };
        observer.after_attempt(&attempt);
        let outcome = attempt.outcome;
        if let Outcome::Delivered { status, receipt } = outcome {
            return Delivery {
                result: Final::Delivered { status, receipt },
                attempts: number,
            };
        }
        if !outcome.retryable() {
            return Delivery {
                result: Final::Failed(outcome),
                attempts: number,
            };
        }
        let mut wait = rng.upto(cfg.backoff.ceiling(number));
        if let Outcome::RetryableStatus {
            retry_after: Some(ra),
            ..
        } = outcome
        {
            wait = wait.max(ra);
        }
        let now = clock.now();
        if now + wait >= deadline {
            return Delivery {
                result: Final::DeadlinePassed { last: outcome },
                attempts: number,
            };
        }
        let until = now + wait;
        let never = crate::clock::Shutdown::new();
        loop {
            let now = clock.now();
            if now >= until {
                break;
            }
            clock.sleep_until(until.min(now + WAIT_SLICE), &never);
            if !observer.keep_waiting() {
                return Delivery {
                    result: Final::Stopped,
                    attempts: number,
                };
            }
        }
    }
}

pub(crate) fn agent(cfg: &DeliverConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_global(Some(cfg.attempt_timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(user_agent())
        // A proxy from the environment would see every report; operators who need one can set
        // it explicitly later. Reports go where `telemetry.target` says.
        .proxy(None)
        .build()
        .new_agent()
}

/// One attempt, within `cfg`'s timeouts and within `left`, the time left before the deadline.
fn attempt(
    agent: &ureq::Agent,
    cfg: &DeliverConfig,
    left: Duration,
    body: &[u8],
    digest: &str,
    sent_hex: &str,
    clock: &dyn Clock,
) -> Outcome {
    if left.is_zero() {
        return Outcome::Timeout("the deadline passed before the attempt".into());
    }
    let total = cfg.attempt_timeout.min(left);
    let req = agent
        .post(&cfg.target)
        .config()
        .timeout_global(Some(total))
        .timeout_connect(Some(cfg.connect_timeout.min(total)))
        .build()
        .header("Content-Type", "application/json")
        .header("Content-Digest", digest);
    // Each attempt is signed anew: `created` must be recent when the collector checks it.
    #[cfg(feature = "agent")]
    let req = match &cfg.signing_key {
        Some(key) => {
            let h = sign("POST", &cfg.target, digest, key, clock.now());
            req.header("Signature-Input", h.input)
                .header("Signature", h.signature)
        }
        None => req,
    };
    let result = req.send(body);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => return classify_error(e),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let location = header("location");
    let resp_digest = header("content-digest");
    let body_read = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec();
    match status {
        200..=299 => {
            let receipt = match &body_read {
                Ok(b) => check_receipt(b, resp_digest.as_deref(), sent_hex),
                Err(_) => Receipt::None,
            };
            Outcome::Delivered { status, receipt }
        }
        300..=399 => Outcome::Redirected {
            status,
            location: location.unwrap_or_default(),
        },
        408 | 429 | 500..=599 => Outcome::RetryableStatus {
            status,
            retry_after: retry_after.and_then(|v| parse_retry_after(&v, clock.now())),
        },
        _ => Outcome::Rejected {
            status,
            message: body_read
                .map(|b| excerpt(&b))
                .unwrap_or_else(|e| format!("(body unreadable: {e})")),
        },
    }
}

/// The signature headers of a request to `target_uri` whose `Content-Digest` is `digest`,
/// created at `now`.
#[cfg(feature = "agent")]
pub fn sign(
    method: &str,
    target_uri: &str,
    digest: &str,
    key: &ttn_telemetry_core::SigningKey,
    now: SystemTime,
) -> ttn_telemetry_core::SignatureHeaders {
    let created = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    key.sign_request(
        &ttn_telemetry_core::Request {
            method,
            target_uri,
            content_digest: digest,
        },
        created,
    )
}

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>();
    s.trim().to_owned()
}

fn classify_error(e: ureq::Error) -> Outcome {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => Outcome::Timeout(t.to_string()),
        E::Io(ref io) if io.kind() == io::ErrorKind::TimedOut => Outcome::Timeout(e.to_string()),
        E::Io(_) => Outcome::Network(e.to_string()),
        E::BadUri(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl | E::Http(_) => {
            Outcome::Unsendable(e.to_string())
        }
        other => Outcome::Network(other.to_string()),
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        };
        let c: Vec<u64> = (1..=8).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(c, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
    }

    #[test]
    fn jitter_is_bounded_and_seeded() {
        let mut a = Rng::seeded(7);
        let mut b = Rng::seeded(7);
        let max = Duration::from_millis(1500);
        let xs: Vec<_> = (0..1000).map(|_| a.upto(max)).collect();
        let ys: Vec<_> = (0..1000).map(|_| b.upto(max)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|d| *d <= max));
        // Full jitter spreads over the whole range.
        assert!(xs.iter().any(|d| *d < Duration::from_millis(150)));
        assert!(xs.iter().any(|d| *d > Duration::from_millis(1350)));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn receipts() {
        let body = br#"{"uid":"x"}"#;
        let hex = sha256_hex(body);
        let r = format!(r#"{{"stored":true,"sha256":"{hex}"}}"#);
        assert_eq!(check_receipt(r.as_bytes(), None, &hex), Receipt::Matched);
        let d = content_digest(r.as_bytes());
        assert_eq!(
            check_receipt(r.as_bytes(), Some(&d), &hex),
            Receipt::Matched
        );
        assert!(matches!(
            check_receipt(r.as_bytes(), Some(&content_digest(b"other")), &hex),
            Receipt::Invalid(_)
        ));
        let other = sha256_hex(b"other");
        let r2 = format!(r#"{{"stored":true,"sha256":"{other}"}}"#);
        assert_eq!(
            check_receipt(r2.as_bytes(), None, &hex),
            Receipt::Mismatch(other)
        );
        assert_eq!(check_receipt(b"ok", None, &hex), Receipt::None);
        assert_eq!(check_receipt(b"{}", None, &hex), Receipt::None);
        assert!(matches!(
            check_receipt(br#"{"stored":false,"sha256":"ab"}"#, None, &hex),
            Receipt::Invalid(_)
        ));
    }
}
