//! CLI telemetry (SPEC §7): once-a-day usage reports for command-line tools that embed this
//! library.
//!
//! A CLI calls [`record`] once per invocation with the command path it ran (and the alias the
//! user typed, if any), then [`Session::finish`] just before it exits. In between, a report that
//! is due is sent on a background thread, so telemetry costs the command at most
//! [`Options::timeout`] (default 1 s), and usually nothing.
//!
//! # State
//! One JSON file, `<user cache dir>/ttn-lorawan/cli-telemetry.json`, mode 0600, holding the
//! installation's random UUID (made once by the core from 16 bytes of OS randomness), the time
//! of the last successful report, and the usage counters. Every change happens under an
//! exclusive lock on a sibling lock file and is written atomically (temp file, `fsync`, rename),
//! so concurrent invocations never lose each other's counts and a crash never leaves a torn file.
//! A corrupt or truncated file is replaced, with a warning, and never stops the command.
//!
//! # Decisions where the spec is silent
//! - The first report is due 24 h after the state file is created, not at once: the first-run
//!   notice says what would be sent and how to turn it off *before* anything leaves.
//! - Counters are reset after a 2xx by subtracting exactly what was reported, so uses recorded
//!   by other invocations while the report was in flight are kept.
//! - A send in flight is marked in the state (`sending_since`) so that concurrent invocations do
//!   not send the same usage twice; the mark expires after [`CLAIM_TTL`], after which a new
//!   invocation may try again.
//! - Turned off (`enable == false`, which the caller derives from `telemetry.enable` and
//!   `DO_NOT_TRACK`): nothing is read, written or sent — not even the state directory is made.
//!
//! # The reference CLI's state
//! `ttn-lw-cli` keeps its telemetry state in `<user cache dir>/ttn-lw-cli/telemetry.yml`
//! (lorawan-stack `pkg/telemetry/exporter/cli`), YAML with `uid` (a UUID) and `last_sent` (Go
//! `time.RFC3339Nano`). When this library has no state of its own yet and that file holds a
//! valid UUID, the new state keeps that installation id, and its `last_sent` as the time of the
//! last report, so one installation stays one installation on the dashboard. The file is found
//! next to [`Options::state_dir`] (`<state_dir>/../ttn-lw-cli/telemetry.yml`), since both live
//! in the user's cache dir; it is only read, never written. One that cannot be read or holds no
//! valid UUID is ignored.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use ttn_telemetry_core::{
    AliasUsage, CliUsage, CommandUsage, Identity, Inputs, OsInfo, Payload, uuid_v4_from_bytes,
};

use crate::clock::{Clock, SystemClock};
use crate::deliver::{self, DeliverConfig};

/// Name of the state folder under the user's cache dir, shared by TTS command-line tools.
pub const CACHE_SUBDIR: &str = "ttn-lorawan";
/// Name of the state file.
pub const STATE_FILE: &str = "cli-telemetry.json";
/// At most one report per this much time.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Default bound on what telemetry may add to a command's run time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a send in flight keeps other invocations from sending.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// How CLI telemetry is set up for one invocation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether telemetry is on (`telemetry.enable` and no `DO_NOT_TRACK`).
    pub enable: bool,
    /// Where reports go (`telemetry.target`).
    pub target: String,
    /// The state folder, normally [`default_state_dir`].
    pub state_dir: PathBuf,
    /// Bound on the background send, and so on what telemetry adds to the command.
    pub timeout: Duration,
    /// Build and platform facts of the CLI.
    pub os: OsInfo,
    /// How to turn telemetry off, for the first-run notice (e.g. `--telemetry.enable=false`).
    pub how_to_disable: String,
}

/// What this invocation did.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    /// Canonical command words, space-separated (`end-devices list`).
    pub command_path: &'a str,
    /// `(command name, alias typed)` when the user typed an alias.
    pub alias: Option<(&'a str, &'a str)>,
}

/// The user's cache folder for TTS tools, as Go's `os.UserCacheDir` finds it, plus
/// [`CACHE_SUBDIR`]: `$XDG_CACHE_HOME` or `~/.cache` on Linux and BSDs, `~/Library/Caches` on
/// macOS, `%LocalAppData%` on Windows.
pub fn default_state_dir() -> Option<PathBuf> {
    let base = if cfg!(windows) {
        std::env::var_os("LocalAppData").map(PathBuf::from)
    } else if cfg!(target_os = "macos") {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Caches"))
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
    };
    base.map(|b| b.join(CACHE_SUBDIR))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CommandState {
    execution_count: u64,
    last_used_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    uid: String,
    created_at: u64,
    last_sent_at: Option<u64>,
    sending_since: Option<u64>,
    commands: BTreeMap<String, CommandState>,
    /// Keyed by (command name, alias).
    aliases: BTreeMap<String, BTreeMap<String, u64>>,
}

impl State {
    fn new(now: u64) -> io::Result<State> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(State {
            uid: uuid_v4_from_bytes(bytes),
            created_at: now,
            last_sent_at: None,
            sending_since: None,
            commands: BTreeMap::new(),
            aliases: BTreeMap::new(),
        })
    }

    fn usage(&self) -> CliUsage {
        CliUsage {
            commands: self
                .commands
                .iter()
                .map(|(path, c)| CommandUsage {
                    command_path: path.clone(),
                    execution_count: c.execution_count,
                    last_used_at: c.last_used_at,
                })
                .collect(),
            aliases: self
                .aliases
                .iter()
                .flat_map(|(name, by_alias)| {
                    by_alias.iter().map(move |(alias, n)| AliasUsage {
                        command_name: name.clone(),
                        alias: alias.clone(),
                        usage_count: *n,
                    })
                })
                .collect(),
        }
    }

    /// Takes away what a delivered report carried; uses recorded meanwhile stay.
    fn subtract(&mut self, sent: &CliUsage) {
        for c in &sent.commands {
            if let Some(s) = self.commands.get_mut(&c.command_path) {
                s.execution_count = s.execution_count.saturating_sub(c.execution_count);
                if s.execution_count == 0 {
                    self.commands.remove(&c.command_path);
                }
            }
        }
        for a in &sent.aliases {
            if let Some(by_alias) = self.aliases.get_mut(&a.command_name) {
                if let Some(n) = by_alias.get_mut(&a.alias) {
                    *n = n.saturating_sub(a.usage_count);
                    if *n == 0 {
                        by_alias.remove(&a.alias);
                    }
                }
                if by_alias.is_empty() {
                    self.aliases.remove(&a.command_name);
                }
            }
        }
    }

    fn due(&self, now: u64) -> bool {
        let since = self.last_sent_at.unwrap_or(self.created_at);
        let claimed = self
            .sending_since
            .is_some_and(|t| now < t.saturating_add(CLAIM_TTL.as_secs()));
        !claimed
            && now >= since.saturating_add(REPORT_INTERVAL.as_secs())
            && !self.commands.is_empty()
    }
}

/// The locked state folder: holds an exclusive lock on `<dir>/cli-telemetry.lock` while alive.
struct Locked {
    path: PathBuf,
    _lock: File,
}

impl Locked {
    fn open(dir: &Path) -> io::Result<Locked> {
        create_private_dir(dir)?;
        let lock = private_options().open(dir.join("cli-telemetry.lock"))?;
        lock.lock()?;
        Ok(Locked {
            path: dir.join(STATE_FILE),
            _lock: lock,
        })
    }

    /// Reads the state; `Ok(None)` when there is none, a warning and `Ok(None)` when corrupt.
    fn read(&self) -> io::Result<Option<State>> {
        match fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(s) if ttn_telemetry_core::is_valid_uuid(&s.uid) => Ok(Some(s)),
                Ok(_) | Err(_) => {
                    eprintln!(
                        "warning: telemetry state {} is corrupt; starting a new one",
                        self.path.display()
                    );
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, state: &State) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = private_options().truncate(true).open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(state).map_err(io::Error::other)?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)
    }
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.create(true).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Where `ttn-lw-cli` keeps its telemetry state, next to `state_dir` in the user's cache dir.
pub fn reference_state_path(state_dir: &Path) -> Option<PathBuf> {
    Some(state_dir.parent()?.join("ttn-lw-cli").join("telemetry.yml"))
}

/// What this library keeps of `ttn-lw-cli`'s state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReferenceState {
    uid: String,
    /// `last_sent` in Unix seconds, when it is a time after 1970.
    last_sent: Option<u64>,
}

/// Reads `ttn-lw-cli`'s `telemetry.yml`; `None` when absent, unreadable, or without a valid UUID.
fn read_reference_state(path: &Path) -> Option<ReferenceState> {
    #[derive(Deserialize)]
    struct Raw {
        uid: Option<String>,
        last_sent: Option<serde_norway::Value>,
    }
    let text = fs::read_to_string(path).ok()?;
    let raw: Raw = serde_norway::from_str(&text).ok()?;
    let uid = raw.uid.filter(|u| ttn_telemetry_core::is_valid_uuid(u))?;
    let last_sent = raw
        .last_sent
        .as_ref()
        .and_then(serde_norway::Value::as_str)
        .and_then(parse_rfc3339_secs);
    Some(ReferenceState { uid, last_sent })
}

/// Parses Go's `time.RFC3339Nano` output (`2024-10-24T15:28:12.123456789+02:00`, `…Z`) to
/// Unix seconds; `None` for other text or a time before 1970.
fn parse_rfc3339_secs(s: &str) -> Option<u64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, rest) = s.split_once(['T', 't'])?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = match rest.strip_suffix(['Z', 'z']) {
        Some(c) => (c, 0),
        None => {
            let at = rest.rfind(['+', '-'])?;
            let (c, o) = rest.split_at(at);
            let (oh, om) = o[1..].split_once(':')?;
            let secs = num(oh)? * 3600 + num(om)? * 60;
            (c, if o.starts_with('-') { -secs } else { secs })
        }
    };
    let clock = clock.split_once('.').map_or(clock, |(c, _)| c);
    let mut c = clock.splitn(3, ':');
    let (h, m, sec) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let micros_of_day = ((h * 60 + m) * 60 + sec) * 1_000_000;
    let micros =
        ttn_telemetry_core::civil_to_unix_micros(year, month as u32, day as u32, micros_of_day);
    u64::try_from(micros / 1_000_000 - offset).ok()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A background send, if one was started; see [`Session::finish`].
#[derive(Debug)]
pub struct Session {
    pending: Option<(mpsc::Receiver<bool>, Instant)>,
}

impl Session {
    /// Waits for a background send, at most until its timeout runs out, and says whether a
    /// report was delivered (`None`: nothing was sent, or it did not finish in time).
    pub fn finish(self) -> Option<bool> {
        let (rx, deadline) = self.pending?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }
}

/// Records one invocation and, when a report is due, starts sending it in the background.
///
/// Errors (an unwritable cache dir, say) are for the caller to print as a warning; they must
/// never fail the command itself.
pub fn record(opts: &Options, usage: Usage<'_>, now: SystemTime) -> io::Result<Session> {
    record_at(opts, usage, now, Arc::new(SystemClock))
}

/// [`record`] on `clock`: the time of the invocation and the delivery's waits (backoff,
/// `Retry-After`) come from it. [`Session::finish`] still bounds what telemetry costs the
/// command in real time.
pub fn record_on(opts: &Options, usage: Usage<'_>, clock: Arc<dyn Clock>) -> io::Result<Session> {
    record_at(opts, usage, clock.now(), clock)
}

fn record_at(
    opts: &Options,
    usage: Usage<'_>,
    now: SystemTime,
    clock: Arc<dyn Clock>,
) -> io::Result<Session> {
    if !opts.enable {
        return Ok(Session { pending: None });
    }
    let now_s = unix_secs(now);
    let locked = Locked::open(&opts.state_dir)?;
    let mut state = match locked.read()? {
        Some(s) => s,
        None => {
            eprintln!(
                "Telemetry: once a day this tool reports which of its commands and aliases were \
                 used and how often, its version, OS and architecture, and a random installation \
                 id; nothing else. Reports go to {}. To turn this off, use {} or set \
                 DO_NOT_TRACK=1.",
                ttn_telemetry_core::redact_uri(&opts.target),
                opts.how_to_disable
            );
            let mut state = State::new(now_s)?;
            if let Some(path) = reference_state_path(&opts.state_dir)
                && let Some(reference) = read_reference_state(&path)
            {
                eprintln!(
                    "Telemetry: keeping the installation id of {}",
                    path.display()
                );
                state.uid = reference.uid;
                state.last_sent_at = reference.last_sent;
            }
            state
        }
    };
    let cmd = state
        .commands
        .entry(usage.command_path.to_owned())
        .or_default();
    cmd.execution_count = cmd.execution_count.saturating_add(1);
    cmd.last_used_at = now_s;
    if let Some((name, alias)) = usage.alias {
        let n = state
            .aliases
            .entry(name.to_owned())
            .or_default()
            .entry(alias.to_owned())
            .or_default();
        *n = n.saturating_add(1);
    }
    if !state.due(now_s) {
        locked.write(&state)?;
        return Ok(Session { pending: None });
    }
    let sent = state.usage();
    let inputs = Inputs {
        identity: Identity::Uid(state.uid.clone()),
        os: opts.os.clone(),
        payload: Payload::Cli(sent.clone()),
    };
    let body = match inputs.build() {
        Ok(report) => report.to_bytes(),
        Err(e) => {
            // Usage the core refuses (a command path over its limits) is dropped, not sent.
            eprintln!("warning: telemetry usage is not reportable ({e}); resetting it");
            state.commands.clear();
            state.aliases.clear();
            locked.write(&state)?;
            return Ok(Session { pending: None });
        }
    };
    state.sending_since = Some(now_s);
    locked.write(&state)?;
    drop(locked);

    let (tx, rx) = mpsc::channel();
    let opts = opts.clone();
    let deadline = Instant::now() + opts.timeout;
    thread::spawn(move || {
        let delivered = send(&opts, &body, now, &*clock);
        // Whatever happened, release the claim; on a 2xx also reset what was reported.
        if let Ok(locked) = Locked::open(&opts.state_dir)
            && let Ok(Some(mut state)) = locked.read()
        {
            state.sending_since = None;
            if delivered {
                state.subtract(&sent);
                state.last_sent_at = Some(now_s);
            }
            let _ = locked.write(&state);
        }
        let _ = tx.send(delivered);
    });
    Ok(Session {
        pending: Some((rx, deadline)),
    })
}

fn send(opts: &Options, body: &[u8], now: SystemTime, clock: &dyn Clock) -> bool {
    let mut cfg = DeliverConfig::new(opts.target.clone());
    cfg.connect_timeout = opts.timeout;
    cfg.attempt_timeout = opts.timeout;
    let deadline = now + opts.timeout;
    deliver::deliver(
        &cfg,
        body,
        deadline,
        clock,
        &mut deliver::entropy_rng(),
        &mut (),
    )
    .result
    .delivered()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_keeps_uses_recorded_meanwhile() {
        let mut s = State::new(0).unwrap();
        s.commands.insert(
            "a".into(),
            CommandState {
                execution_count: 5,
                last_used_at: 1,
            },
        );
        s.commands.insert(
            "b".into(),
            CommandState {
                execution_count: 2,
                last_used_at: 1,
            },
        );
        s.aliases
            .entry("a".into())
            .or_default()
            .insert("x".into(), 3);
        let sent = s.usage();
        s.commands.get_mut("a").unwrap().execution_count += 2;
        s.subtract(&sent);
        assert_eq!(s.commands.len(), 1);
        assert_eq!(s.commands["a"].execution_count, 2);
        assert!(s.aliases.is_empty());
    }

    #[test]
    fn reference_times_parse_as_go_writes_them() {
        assert_eq!(parse_rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_secs("2024-10-24T15:28:12.123456789+02:00"),
            Some(1_729_776_492)
        );
        assert_eq!(
            parse_rfc3339_secs("2024-10-24T13:28:12Z"),
            Some(1_729_776_492)
        );
        assert_eq!(
            parse_rfc3339_secs("2024-10-24T10:28:12-03:00"),
            Some(1_729_776_492)
        );
        // Go's zero time, and text that is no time.
        assert_eq!(parse_rfc3339_secs("0001-01-01T00:00:00Z"), None);
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-10-24 13:28:12",
        ] {
            assert_eq!(parse_rfc3339_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn due_rules() {
        let day = REPORT_INTERVAL.as_secs();
        let mut s = State::new(1000).unwrap();
        s.commands.insert(
            "a".into(),
            CommandState {
                execution_count: 1,
                last_used_at: 1,
            },
        );
        assert!(!s.due(1000 + day - 1), "not within 24 h of creation");
        assert!(s.due(1000 + day));
        s.sending_since = Some(1000 + day);
        assert!(!s.due(1000 + day + 1), "a fresh claim blocks");
        assert!(
            s.due(1000 + day + CLAIM_TTL.as_secs()),
            "an expired claim does not"
        );
        s.sending_since = None;
        s.last_sent_at = Some(5000 + day);
        assert!(!s.due(5000 + 2 * day - 1));
        s.commands.clear();
        assert!(!s.due(5000 + 3 * day), "nothing to report");
    }
}
