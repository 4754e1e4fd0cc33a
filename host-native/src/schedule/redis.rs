//! The schedule shared by replicas through Redis (`redis.address` set).
//!
//! # Keys (namespace `<ns>`, default [`DEFAULT_NAMESPACE`])
//! - `<ns>:epoch`: the deployment's first start, Unix ms, written once with `SET NX`. Slot `s`
//!   is due at `epoch + s·interval` (see [`super`]).
//! - `<ns>:claim:<slot>`: `<owner>|claimed` while an agent sends that slot's report, with a
//!   lease (`PX`, default [`DEFAULT_LEASE`]) the holder renews while it retries; then
//!   `<owner>|done`, kept until one interval after the slot ends so nobody claims it again.
//!
//! A claim is one `SET key value NX PX lease`: atomic, so two replicas asking at the same moment
//! get one grant. A holder killed mid-send stops renewing; when its lease runs out the key
//! vanishes and the next replica to ask takes the slot over (the report is sent once more at
//! most). Renewal and completion are Lua scripts that act only if the key still names this
//! owner, so a holder that lost its lease cannot overwrite the new holder.
//!
//! When Redis cannot be reached every call fails: the agent says so and does not send, so
//! nothing is sent twice when Redis comes back (the claim keys tell who sent what).

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{Claim, Coordinator, Grant, due_of, slot_at};
use crate::audit::{from_unix_ms, unix_ms};

/// Default key namespace, after TTS's `ttn:v3:` key prefix.
pub const DEFAULT_NAMESPACE: &str = "ttn:v3:telemetry:entity-count";
/// Default claim lease: long enough to ride out one attempt (30 s) between renewals.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Connect, read and write timeout of Redis calls.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

// A missing key (our lease ran out and nobody took over) is completed too, so the slot is not
// sent again.
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or v == false then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisTarget {
    url: String,
    shown: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl RedisTarget {
    /// From the TTS keys `redis.address` (`host:port`), `redis.password`, `redis.database`.
    pub fn from_config(address: &str, password: &str, database: u32) -> Self {
        let userinfo = if password.is_empty() {
            String::new()
        } else {
            format!(":{}@", percent_encode(password))
        };
        RedisTarget {
            url: format!("redis://{userinfo}{address}/{database}"),
            shown: format!("redis {address} database {database}"),
        }
    }
    /// From a `redis://` URL (tests use `TTN_TEST_REDIS_URL`).
    pub fn from_url(url: &str) -> Self {
        RedisTarget {
            url: url.to_owned(),
            shown: ttn_telemetry_core::redact_uri(url),
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Redis coordinator.
pub struct RedisSchedule {
    client: redis::Client,
    target: RedisTarget,
    conn: Option<redis::Connection>,
    ns: String,
    owner: String,
    interval: Duration,
    lease: Duration,
}

impl std::fmt::Debug for RedisSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSchedule")
            .field("target", &self.target)
            .field("ns", &self.ns)
            .field("owner", &self.owner)
            .finish()
    }
}

impl RedisSchedule {
    /// A coordinator for `target` under namespace `ns`. It connects lazily, so an agent starts
    /// even while Redis is down (and then refuses to send until it is back).
    pub fn new(target: RedisTarget, ns: &str, interval: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(target.url.as_str())
            .map_err(|e| anyhow::anyhow!("bad Redis address ({}): {:?}", target.shown, e.kind()))?;
        Ok(RedisSchedule {
            client,
            target,
            conn: None,
            ns: ns.to_owned(),
            owner: owner_id(),
            interval,
            lease: DEFAULT_LEASE,
        })
    }

    /// Sets the claim lease (tests use short ones).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the owner id (defaults to host, pid and a random suffix).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// This agent's owner id, as written into claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The deployment epoch, if one was stored.
    pub fn epoch(&mut self) -> anyhow::Result<Option<SystemTime>> {
        let key = format!("{}:epoch", self.ns);
        let v: Option<u64> = self.call(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(v.map(from_unix_ms))
    }

    /// When the next report is due, without claiming or writing anything (for `status`):
    /// `None` before any agent of the deployment has started.
    pub fn next_due(&mut self, now: SystemTime) -> anyhow::Result<Option<SystemTime>> {
        let Some(epoch) = self.epoch()? else {
            return Ok(None);
        };
        let slot = slot_at(epoch, self.interval, now);
        if slot == 0 {
            return Ok(Some(due_of(epoch, self.interval, 1)));
        }
        let key = self.claim_key(slot);
        let holder: Option<String> = self.call(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(Some(match holder {
            Some(h) if h.ends_with("|done") => due_of(epoch, self.interval, slot + 1),
            _ => due_of(epoch, self.interval, slot),
        }))
    }

    fn claim_key(&self, slot: u64) -> String {
        format!("{}:claim:{slot}", self.ns)
    }

    /// Runs one Redis call, connecting first if needed; a failed call drops the connection so
    /// the next one reconnects.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> anyhow::Result<T> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(IO_TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(IO_TIMEOUT))?;
                    c.set_write_timeout(Some(IO_TIMEOUT))?;
                    Ok(c)
                })
                .map_err(|e| redis_error(&self.target, e))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().context("no Redis connection")?;
        f(conn).map_err(|e| {
            self.conn = None;
            redis_error(&self.target, e)
        })
    }

    fn ensure_epoch(&mut self, now: SystemTime) -> anyhow::Result<SystemTime> {
        let key = format!("{}:epoch", self.ns);
        let now_ms = unix_ms(now);
        let _: Option<String> =
            self.call(|c| redis::cmd("SET").arg(&key).arg(now_ms).arg("NX").query(c))?;
        self.epoch()?
            .context("the Redis schedule epoch vanished right after it was written")
    }

    fn done_ttl(&self, epoch: SystemTime, slot: u64, now: SystemTime) -> u64 {
        let keep_until = due_of(epoch, self.interval, slot + 2);
        keep_until
            .duration_since(now)
            .unwrap_or(self.interval)
            .as_millis()
            .max(1) as u64
    }
}

fn redis_error(target: &RedisTarget, e: redis::RedisError) -> anyhow::Error {
    // The error text may quote the URL; only the kind and the redacted address are shown.
    anyhow::anyhow!(
        "Redis unreachable or failing ({}): {:?}{}",
        target.shown,
        e.kind(),
        if e.is_timeout() { " (timeout)" } else { "" }
    )
}

fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let r = crate::deliver::entropy_rng().next_u64();
    format!("{host}/{}/{r:016x}", std::process::id())
}

impl Coordinator for RedisSchedule {
    fn claim(&mut self, now: SystemTime) -> anyhow::Result<Claim> {
        let epoch = self.ensure_epoch(now)?;
        let slot = slot_at(epoch, self.interval, now);
        if slot == 0 {
            return Ok(Claim::NotDue {
                next_due: due_of(epoch, self.interval, 1),
            });
        }
        let key = self.claim_key(slot);
        let value = format!("{}|claimed", self.owner);
        let lease_ms = self.lease.as_millis().max(1) as u64;
        let set: Option<String> = self.call(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query(c)
        })?;
        let deadline = due_of(epoch, self.interval, slot + 1);
        if set.is_some() {
            return Ok(Claim::Granted(Grant {
                slot,
                due: due_of(epoch, self.interval, slot),
                deadline,
                resumed: false,
            }));
        }
        let (holder, pttl): (Option<String>, i64) =
            self.call(|c| redis::pipe().get(&key).pttl(&key).query(c))?;
        match holder {
            Some(h) if h.ends_with("|done") => Ok(Claim::NotDue { next_due: deadline }),
            // Held by a live (or not yet expired) agent: ask again when its lease may run out.
            // Never later than the next slot, which this agent may have to send.
            Some(_) => Ok(Claim::Busy {
                retry_at: (now + Duration::from_millis(pttl.clamp(50, lease_ms as i64) as u64))
                    .min(deadline),
            }),
            // Expired between the two calls: ask again at once.
            None => Ok(Claim::Busy { retry_at: now }),
        }
    }

    fn renew(&mut self, grant: &Grant, _now: SystemTime) -> anyhow::Result<bool> {
        let key = self.claim_key(grant.slot);
        let value = format!("{}|claimed", self.owner);
        let lease_ms = self.lease.as_millis().max(1) as u64;
        let n: i64 = self.call(|c| {
            redis::Script::new(RENEW)
                .key(&key)
                .arg(&value)
                .arg(lease_ms)
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    fn complete(&mut self, grant: &Grant, now: SystemTime) -> anyhow::Result<()> {
        let epoch = match self.epoch()? {
            Some(e) => e,
            None => anyhow::bail!("the Redis schedule epoch is gone (Redis lost its data?)"),
        };
        let key = self.claim_key(grant.slot);
        let ttl = self.done_ttl(epoch, grant.slot, now);
        let claimed = format!("{}|claimed", self.owner);
        let done = format!("{}|done", self.owner);
        let n: i64 = self.call(|c| {
            redis::Script::new(COMPLETE)
                .key(&key)
                .arg(&claimed)
                .arg(&done)
                .arg(ttl)
                .invoke(c)
        })?;
        if n != 1 {
            tracing::warn!(
                slot = grant.slot,
                "the Redis claim of this report expired before it finished; another replica may have sent it too"
            );
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} (namespace {})", self.target.shown, self.ns)
    }

    fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}
