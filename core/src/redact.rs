//! Masking secrets in what people see: passwords in URIs and conninfo strings, and any known
//! secret in free text.
//!
//! Two tools, used together by every host:
//! - [`redact_uri`] masks by structure: the password of a URI's user info, a `password=` query
//!   parameter, or a conninfo `password=…` value, whatever characters the password holds.
//! - [`mask_secrets`] masks by value: every occurrence of a known secret in a line of text (a
//!   driver's error message, a log line). [`uri_secrets`] lists the secrets that
//!   [`redact_uri`] would mask, as written and decoded, so that a host can feed them to it.
//!
//! Decisions where SPEC is silent:
//! - A password may hold any character raw (`/`, `?`, `#`, `@`, `:`), and a URI may be malformed
//!   (no `://`): so everything from the first `:` after the scheme to the last `@` is masked.
//!   This can hide more than the password (`http://h:80/p?mail=a@b` shows as
//!   `http://h:***@b`), never less.
//! - `sslpassword` (the key file's passphrase) is masked like `password`. User names are shown:
//!   they are needed to understand an authentication error and are not secrets.
//! - A conninfo string that cannot be read to its end is masked from the first `password` word
//!   that follows the last readable pair to the end of the string.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use crate::conninfo::{kv_tokens, kv_value};

/// What a secret is replaced with.
pub const MASK: &str = "***";

fn is_secret_key(k: &str) -> bool {
    k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword")
}

/// Whether `s` is a `key=value` conninfo string rather than a URI or a path: it starts with a
/// keyword followed by `=` (a URI starts with a scheme and `:`).
fn looks_like_conninfo(s: &str) -> bool {
    let t = s.trim_start();
    let word = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    word > 0 && t[word..].trim_start().starts_with('=')
}

#[derive(Debug, Clone, Copy)]
enum SpanKind {
    /// Percent-encoded (URI user info or query).
    Uri,
    /// A conninfo value, possibly quoted and escaped.
    Conninfo { quoted: bool },
    /// Unreadable text: masked as is.
    Plain,
}

/// Byte ranges of `s` that hold secrets, in order, not overlapping.
fn secret_spans(s: &str) -> Vec<(usize, usize, SpanKind)> {
    let mut spans = Vec::new();
    if looks_like_conninfo(s) {
        let (tokens, rest) = match kv_tokens(s) {
            Ok(t) => (t, None),
            Err((_, t, at)) => (t, Some(at)),
        };
        for t in &tokens {
            if is_secret_key(&s[t.key.0..t.key.1]) && t.raw_value.1 > t.raw_value.0 {
                spans.push((
                    t.raw_value.0,
                    t.raw_value.1,
                    SpanKind::Conninfo { quoted: t.quoted },
                ));
            }
        }
        if let Some(at) = rest {
            let lower = s[at..].to_ascii_lowercase();
            if let Some(word) = lower.find("password") {
                let mut from = at + word + "password".len();
                if let Some(eq) = s[from..].find('=') {
                    from += eq + 1;
                }
                if from < s.len() {
                    spans.push((from, s.len(), SpanKind::Plain));
                }
            }
        }
        return spans;
    }

    let rest_start = s.find("://").map_or(0, |i| i + 3);
    let rest = &s[rest_start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last `@` that has a `:` before it ends the user info: a password may hold any raw
    // character, `@` and `/` included. Only a URI without such an `@` is read by its authority.
    let at = rest
        .rfind('@')
        .filter(|&a| rest[..a].contains(':'))
        .or_else(|| rest[..auth_end].rfind('@'));
    let mut query_from = rest_start;
    if let Some(at) = at {
        if let Some(colon) = rest[..at].find(':').filter(|&c| c + 1 < at) {
            spans.push((rest_start + colon + 1, rest_start + at, SpanKind::Uri));
        }
        query_from = rest_start + at;
    }
    if let Some(q) = s[query_from..].find('?') {
        let query_start = query_from + q + 1;
        let query_end = s[query_start..]
            .find('#')
            .map_or(s.len(), |h| query_start + h);
        let mut pos = query_start;
        for param in s[query_start..query_end].split('&') {
            if let Some((k, v)) = param
                .split_once('=')
                .filter(|(k, v)| is_secret_key(k) && !v.is_empty())
            {
                let from = pos + k.len() + 1;
                spans.push((from, from + v.len(), SpanKind::Uri));
            }
            pos += param.len() + 1;
        }
    }
    spans
}

/// Masks the passwords of a URI or a PostgreSQL conninfo string so that it can be shown: the
/// password of the user info, `password=` and `sslpassword=` query parameters or conninfo
/// values. Anything else is returned unchanged.
///
/// ```
/// use ttn_telemetry_core::redact_uri;
/// assert_eq!(redact_uri("postgresql://root:hunter2@db:5432/is?sslmode=disable"),
///            "postgresql://root:***@db:5432/is?sslmode=disable");
/// assert_eq!(redact_uri("postgres://db/is?password=hunter2&x=1"), "postgres://db/is?password=***&x=1");
/// assert_eq!(redact_uri("postgres://u:a/b#c?d@db/is"), "postgres://u:***@db/is");
/// assert_eq!(redact_uri("host=db password='a b' dbname=is"), "host=db password=*** dbname=is");
/// assert_eq!(redact_uri("http://user:pw@host/collect"), "http://user:***@host/collect");
/// assert_eq!(redact_uri("sqlite:/var/lib/is.db"), "sqlite:/var/lib/is.db");
/// ```
pub fn redact_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut last = 0;
    for (a, z, _) in secret_spans(uri) {
        out.push_str(&uri[last..a]);
        out.push_str(MASK);
        last = z;
    }
    out.push_str(&uri[last..]);
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16));
            match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => return None,
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The secrets that [`redact_uri`] masks in `uri`, each as written and as the driver reads it
/// (percent-decoded, or unquoted and unescaped). Hosts hand them to [`mask_secrets`] so that a
/// password is masked wherever it shows up, not only inside the URI.
///
/// ```
/// use ttn_telemetry_core::uri_secrets;
/// assert_eq!(uri_secrets("postgres://u:p%2Fw@h/d"), ["p%2Fw", "p/w"]);
/// assert_eq!(uri_secrets("password='a b' host=h"), ["'a b'", "a b"]);
/// assert!(uri_secrets("postgres://u@h/d").is_empty());
/// ```
pub fn uri_secrets(uri: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    for (a, z, kind) in secret_spans(uri) {
        let raw = &uri[a..z];
        add(raw.to_owned());
        match kind {
            SpanKind::Uri => {
                if let Some(d) = percent_decode(raw) {
                    add(d);
                }
            }
            SpanKind::Conninfo { quoted } => {
                let token = crate::conninfo::KvToken {
                    key: (a, a),
                    raw_value: (a, z),
                    quoted,
                };
                add(kv_value(uri, &token));
            }
            SpanKind::Plain => {}
        }
    }
    out
}

/// Replaces every occurrence of each secret in `text` with [`MASK`], longest secrets first.
/// Empty secrets, and secrets that [`MASK`] itself contains, are skipped.
///
/// ```
/// use ttn_telemetry_core::mask_secrets;
/// let secrets = ["hunter2".to_owned(), "hunter".to_owned()];
/// assert_eq!(mask_secrets("login hunter2 failed (hunter)", &secrets), "login *** failed (***)");
/// ```
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets
        .iter()
        .filter(|s| !s.is_empty() && !MASK.contains(s.as_str()))
        .collect();
    sorted.sort_by_key(|s| core::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_of_every_shape_hide_the_password() {
        let cases = [
            (
                "postgresql://root:root@localhost:5432/ttn?sslmode=disable",
                "postgresql://root:***@localhost:5432/ttn?sslmode=disable",
            ),
            ("postgresql://u:p@ss@h/d", "postgresql://u:***@h/d"),
            ("postgresql://u:pa/ss@h/d", "postgresql://u:***@h/d"),
            ("postgresql://u:pa#ss@h/d", "postgresql://u:***@h/d"),
            (
                "postgresql://u:pa?ss@h/d?sslmode=require",
                "postgresql://u:***@h/d?sslmode=require",
            ),
            (
                "postgresql://u:pa?ss@h/d?password=x&sslpassword=y",
                "postgresql://u:***@h/d?password=***&sslpassword=***",
            ),
            (
                "postgresql://u@h/d?application_name=a@b",
                "postgresql://u@h/d?application_name=a@b",
            ),
            ("postgresql://[::1]:5432/d", "postgresql://[::1]:5432/d"),
            (
                "http://user:PW@host/collect",
                "http://user:***@host/collect",
            ),
            (
                "http://user:P/W@host/collect",
                "http://user:***@host/collect",
            ),
            (
                "http://user:PW@ho st/collect",
                "http://user:***@ho st/collect",
            ),
            ("http//user:PW@host/collect", "http//user:***@host/collect"),
            ("user:PW@host", "user:***@host"),
            ("http://u:@h/", "http://u:@h/"),
            ("sqlite:/x/y", "sqlite:/x/y"),
            ("", ""),
        ];
        for (uri, want) in cases {
            assert_eq!(redact_uri(uri), want, "{uri}");
        }
    }

    #[test]
    fn conninfo_hides_the_password_even_when_unreadable() {
        let cases = [
            (
                "host=h password=secret dbname=d",
                "host=h password=*** dbname=d",
            ),
            ("password = 'se cr\\'et' host=h", "password = *** host=h"),
            ("host=h PASSWORD=secret", "host=h PASSWORD=***"),
            ("host=h password='secret", "host=h password=***"),
            (
                "host=h user x password=secret",
                "host=h user x password=***",
            ),
            ("host=h sslpassword=secret", "host=h sslpassword=***"),
            ("host=h password=", "host=h password="),
        ];
        for (s, want) in cases {
            assert_eq!(redact_uri(s), want, "{s}");
        }
    }

    #[test]
    fn secrets_are_listed_as_written_and_decoded() {
        assert_eq!(
            uri_secrets("postgres://u:a%23b?c@h/d"),
            ["a%23b?c", "a#b?c"]
        );
        assert_eq!(
            uri_secrets("password='it\\'s' host=h"),
            ["'it\\'s'", "it's"]
        );
        assert_eq!(uri_secrets("host=h password='x y"), ["'x y"]);
        assert!(uri_secrets("sqlite:/x").is_empty());
    }

    #[test]
    fn masking_by_value() {
        let s = ["pw".to_owned(), "*".to_owned(), String::new()];
        assert_eq!(mask_secrets("a pw b * c", &s), "a *** b * c");
    }
}
