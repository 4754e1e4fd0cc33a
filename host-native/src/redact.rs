//! The guard every output line passes through: known secrets are masked by value, wherever
//! they show up.
//!
//! Passwords are first masked by structure where a URI or conninfo string is shown (core
//! [`redact_uri`](ttn_telemetry_core::redact_uri)). That cannot catch a secret that reaches the
//! output some other way (a driver that quotes what it was given, a value echoed by a parser,
//! a log line). So the command line registers every secret it learns of ([`register`]) before
//! anything is printed, and everything it prints goes through [`guard`]:
//! - command output on standard output, through [`Guarded`] (`cmd::run`);
//! - notes and warnings on standard error, through [`note`];
//! - log lines, through the `tracing` writer (`cmd::init_logging`);
//! - the final error line and panic messages (`cmd::main`).
//!
//! The secrets are: the password of `is.database-uri` (URI or conninfo, as written and as
//! decoded), the credentials of `telemetry.target` and of the Console base URLs, `redis.password`,
//! `telemetry.admin.token`, the collector's `collector.database-uri` password, and any URI password on
//! the command line.
//!
//! Decisions where SPEC is silent:
//! - A value that comes from the built-in defaults is public (the default database URI's
//!   `root:root` is in every TTS guide), so it is not masked by value; it is still masked by
//!   structure in the URI.
//! - Secrets shorter than [`MIN_SECRET_LEN`] bytes are masked by structure only: masking every
//!   `ab` in the output would garble it (a report body, a path) and hide nothing from someone
//!   who can guess two characters.
//! - Masking is per line, so a secret split across two lines is not matched; no output of this
//!   program breaks a value across lines.

use std::io::{self, Write};
use std::sync::RwLock;

use ttn_telemetry_core::{KEYS, MASK, parse_conninfo, uri_secrets};

use crate::config::{Loaded, Source};

/// Secrets shorter than this are masked by structure only.
pub const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds secrets to the process-wide set that [`guard`] masks. Empty and short ones are skipped.
pub fn register<I, S>(secrets: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut set = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for s in secrets {
        let s = s.into();
        if s.len() >= MIN_SECRET_LEN && !set.contains(&s) {
            set.push(s);
        }
    }
    // Longest first, so that a secret holding another is masked whole.
    set.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// The secrets of a database URI, a target URL or a conninfo string: what [`uri_secrets`]
/// finds by structure, and the passwords the driver would read from it.
pub fn secrets_of(value: &str) -> Vec<String> {
    let mut out = uri_secrets(value);
    if let Ok(settings) = parse_conninfo(value) {
        for (k, v) in settings {
            if (k == "password" || k == "sslpassword") && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// Registers the secrets of raw command-line arguments, before they are parsed: URI passwords
/// anywhere, and the values of secret keys (`--redis.password X`, `--telemetry.admin.token=X`).
pub fn register_args<I: AsRef<str>>(args: &[I]) {
    let secret_flags: Vec<String> = KEYS
        .iter()
        .filter(|k| k.secret)
        .map(|k| format!("--{}", k.key))
        .collect();
    let mut found = Vec::new();
    let mut next_is_secret = false;
    for arg in args {
        let arg = arg.as_ref();
        if next_is_secret {
            found.push(arg.to_owned());
            next_is_secret = false;
        }
        let value = match arg.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => {
                if secret_flags.iter().any(|f| f == flag) {
                    found.push(v.to_owned());
                }
                v
            }
            _ => {
                next_is_secret = secret_flags.iter().any(|f| f == arg);
                arg
            }
        };
        found.extend(secrets_of(value));
    }
    register(found);
}

/// Registers the secrets of the effective configuration, except values that came from the
/// built-in defaults.
pub fn register_config(loaded: &Loaded) {
    let c = &loaded.config;
    let set = |key: &str| !matches!(loaded.sources.get(key), None | Some(Source::Default));
    let mut found = Vec::new();
    if set("is.database-uri") {
        found.extend(secrets_of(&c.database_uri));
    }
    if set("telemetry.target") {
        found.extend(uri_secrets(&c.target));
    }
    for (key, url) in ["is", "gs", "ns", "as", "js"]
        .iter()
        .zip(c.console_base_urls.iter())
    {
        if set(&format!("console.ui.{key}.base-url")) {
            found.extend(uri_secrets(url));
        }
    }
    found.push(c.cache_redis_password.clone());
    found.push(c.redis_password.clone());
    found.push(c.admin_token.clone());
    register(found);
}

/// `text` with every registered secret replaced by `***`.
pub fn guard(text: &str) -> String {
    let set = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    ttn_telemetry_core::mask_secrets(text, &set)
}

fn guard_bytes(line: &[u8]) -> Vec<u8> {
    let set = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = line.to_vec();
    for secret in set.iter() {
        let s = secret.as_bytes();
        if MASK.as_bytes().windows(s.len()).any(|w| w == s) {
            continue;
        }
        let mut masked = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(s) {
                masked.extend_from_slice(MASK.as_bytes());
                i += s.len();
            } else {
                masked.push(out[i]);
                i += 1;
            }
        }
        out = masked;
    }
    out
}

/// Prints one line to standard error through [`guard`].
pub fn note(line: &str) {
    let mut err = Guarded::new(io::stderr());
    let _ = writeln!(err, "{line}");
}

/// A writer that passes each complete line through [`guard`] and writes the rest when flushed
/// or dropped.
#[derive(Debug)]
pub struct Guarded<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> Guarded<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Guarded {
            inner,
            pending: Vec::new(),
        }
    }

    fn write_lines(&mut self, all: bool) -> io::Result<()> {
        let end = if all {
            self.pending.len()
        } else {
            match self.pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        if end == 0 {
            return Ok(());
        }
        let chunk: Vec<u8> = self.pending.drain(..end).collect();
        for line in chunk.split_inclusive(|&b| b == b'\n') {
            self.inner.write_all(&guard_bytes(line))?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.write_lines(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_lines(true)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Guarded<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_masked_even_when_written_in_pieces() {
        register(["Pa55/w#rd?x"]);
        let mut out = Vec::new();
        {
            let mut g = Guarded::new(&mut out);
            g.write_all(b"connecting with Pa55/").unwrap();
            g.write_all(b"w#rd?x failed\nand no newline Pa55/w#rd?x")
                .unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "connecting with *** failed\nand no newline ***"
        );
        assert_eq!(guard("x Pa55/w#rd?x y"), "x *** y");
    }

    #[test]
    fn short_secrets_and_uri_forms() {
        register(["ab"]);
        assert_eq!(guard("ab"), "ab");
        assert_eq!(
            secrets_of("host=h password='a b c' user=u"),
            ["'a b c'", "a b c"]
        );
        assert_eq!(
            secrets_of("postgres://u:p%2Fw0rd@h/d"),
            ["p%2Fw0rd", "p/w0rd"]
        );
    }

    #[test]
    fn config_secrets_are_registered_but_public_defaults_are_not() {
        let args = crate::config::Args {
            files: None,
            flags: vec![
                ("telemetry.admin.token", vec!["cfg-t0ken-1".to_owned()]),
                (
                    "telemetry.target",
                    vec!["https://u:cfg-tgt-pw@collector.example/collect".to_owned()],
                ),
            ],
        };
        let loaded = crate::config::load(&args, |_| None).unwrap();
        register_config(&loaded);
        assert_eq!(guard("cfg-t0ken-1 cfg-tgt-pw"), "*** ***");
        // The default database URI's `root:root` is in every guide: /root stays readable.
        assert_eq!(guard("/root/.ttn-lw-telemetry"), "/root/.ttn-lw-telemetry");
    }

    #[test]
    fn args_register_flag_values_and_uri_passwords() {
        register_args(&[
            "status",
            "--redis.password",
            "r3dis-pw",
            "--telemetry.admin.token=t0ken-x",
            "--is.database-uri=postgres://u:db-pw-1@h/d",
            "--telemetry.target",
            "http://u:tgt-pw-1@h/c",
        ]);
        for s in ["r3dis-pw", "t0ken-x", "db-pw-1", "tgt-pw-1"] {
            assert_eq!(guard(&format!("<{s}>")), "<***>", "{s}");
        }
    }
}
