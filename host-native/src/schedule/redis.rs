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
//!
//! # A damaged epoch
//! The epoch is checked like the state directory's ([`super::local`]): it must be Unix
//! milliseconds, no later than year 9999 and no later than one interval from now. A damaged
//! epoch is set aside, renamed `<ns>:epoch.corrupt-<unix ms>` (never deleted) only if it still
//! holds the value found (a script, so a replica never sets aside an epoch another one has just
//! written), a new epoch is written as on a first start, and one warning line says so. `status`
//! only reads: it says the epoch is damaged. A claim key without a lease, or whose value is not
//! `<owner>|claimed` or `<owner>|done`, is set aside the same way, since no agent writes one
//! and it would otherwise hold its slot for ever.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{Claim, Coordinator, Grant, due_of, slot_at};
use crate::audit::{LATEST_UNIX_MS, from_unix_ms, unix_ms};

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

// Renames a damaged epoch only if it still holds the value that was found damaged.
const SET_ASIDE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 1
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

impl RedisTarget {
    /// A connection with the coordinator's I/O timeouts (one-off calls outside a schedule, such
    /// as sharing the deployment key, see [`crate::signing`]).
    pub fn connect(&self) -> anyhow::Result<redis::Connection> {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(IO_TIMEOUT))
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            })
            .map_err(|e| redis_error(self, e))
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

    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.ns)
    }

    /// The stored epoch as found, and whether it can be used at `now` (`Err` says why not).
    fn read_epoch(
        &mut self,
        now: Option<SystemTime>,
    ) -> anyhow::Result<Option<(String, Result<SystemTime, String>)>> {
        let key = self.epoch_key();
        let raw: Option<String> = self.call(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(raw.map(|raw| {
            let checked = check_epoch(&raw, self.interval, now);
            (raw, checked)
        }))
    }

    /// The deployment epoch, if one was stored; a damaged one is an error that says why.
    pub fn epoch(&mut self) -> anyhow::Result<Option<SystemTime>> {
        match self.read_epoch(None)? {
            None => Ok(None),
            Some((_, Ok(t))) => Ok(Some(t)),
            Some((_, Err(why))) => Err(self.damaged(&why)),
        }
    }

    fn damaged(&self, why: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "the Redis schedule epoch {} is damaged ({why}); `run` sets it aside and starts a new one",
            self.epoch_key()
        )
    }

    /// When the next report is due, without claiming or writing anything (for `status`):
    /// `None` before any agent of the deployment has started.
    pub fn next_due(&mut self, now: SystemTime) -> anyhow::Result<Option<SystemTime>> {
        let epoch = match self.read_epoch(Some(now))? {
            None => return Ok(None),
            Some((_, Ok(t))) => t,
            Some((_, Err(why))) => return Err(self.damaged(&why)),
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
        let key = self.epoch_key();
        let now_ms = unix_ms(now);
        // Twice at most: the second round follows setting a damaged epoch aside.
        for _ in 0..2 {
            let _: Option<String> =
                self.call(|c| redis::cmd("SET").arg(&key).arg(now_ms).arg("NX").query(c))?;
            let (raw, checked) = self
                .read_epoch(Some(now))?
                .context("the Redis schedule epoch vanished right after it was written")?;
            let why = match checked {
                Ok(t) => return Ok(t),
                Err(why) => why,
            };
            let aside = format!("{key}.corrupt-{now_ms}");
            let moved: i64 = self.call(|c| {
                redis::Script::new(SET_ASIDE)
                    .key(&key)
                    .key(&aside)
                    .arg(&raw)
                    .invoke(c)
            })?;
            if moved == 1 {
                tracing::warn!(
                    "telemetry schedule epoch {key} in Redis is damaged ({why}): set aside as {aside} and started again; the next report is due one interval from now"
                );
            }
        }
        anyhow::bail!(
            "the Redis schedule epoch {key} is damaged again right after it was set aside"
        )
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

/// Checks a stored epoch: Unix milliseconds, no later than year 9999, and (with `now`) no later
/// than one interval from now, nor so late that the next due times run past year 9999.
fn check_epoch(
    raw: &str,
    interval: Duration,
    now: Option<SystemTime>,
) -> Result<SystemTime, String> {
    let shown: String = raw.chars().take(40).collect();
    let ms: u64 = raw
        .parse()
        .map_err(|_| format!("{shown:?} is not Unix milliseconds"))?;
    if ms > LATEST_UNIX_MS {
        return Err(format!("{ms} is past year 9999"));
    }
    let epoch = from_unix_ms(ms);
    if let Some(now) = now {
        if epoch > now + interval {
            return Err(format!("{ms} is later than one interval from now"));
        }
        let next = slot_at(epoch, interval, now).saturating_add(2);
        if u128::from(ms) + interval.as_millis() * u128::from(next) > u128::from(LATEST_UNIX_MS) {
            return Err("its due times run past year 9999".into());
        }
    }
    Ok(epoch)
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
        let deadline = due_of(epoch, self.interval, slot + 1);
        // Twice at most: the second round follows setting a damaged claim aside.
        for _ in 0..2 {
            let set: Option<String> = self.call(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query(c)
            })?;
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
            let holder = match holder {
                Some(h) if h.ends_with("|done") => return Ok(Claim::NotDue { next_due: deadline }),
                // Held by a live (or not yet expired) agent: ask again when its lease may run
                // out. Never later than the next slot, which this agent may have to send.
                Some(h) if h.ends_with("|claimed") && pttl > 0 => {
                    return Ok(Claim::Busy {
                        retry_at: (now
                            + Duration::from_millis(pttl.min(lease_ms as i64).max(50) as u64))
                        .min(deadline),
                    });
                }
                // Expired between the two calls: ask again at once.
                None => return Ok(Claim::Busy { retry_at: now }),
                // No agent writes a claim without a lease or in another form: it is damaged,
                // and would otherwise hold the slot (and a retry every 50 ms) for ever.
                Some(h) => h,
            };
            let aside = format!("{key}.corrupt-{}", unix_ms(now));
            let moved: i64 = self.call(|c| {
                redis::Script::new(SET_ASIDE)
                    .key(&key)
                    .key(&aside)
                    .arg(&holder)
                    .invoke(c)
            })?;
            if moved == 1 {
                tracing::warn!(
                    "telemetry schedule claim {key} in Redis is damaged (no lease, or not a claim): set aside as {aside}"
                );
            }
        }
        Ok(Claim::Busy { retry_at: now })
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
