//! PostgreSQL connection strings as libpq reads them: `postgresql://…` URIs and `key=value`
//! conninfo strings.
//!
//! [`parse_conninfo`] turns either form into its settings, in the order written (a repeated key
//! keeps its last value, as in libpq). It only reads the syntax; which keys mean what is the
//! host's business. Errors name a position and never quote the input, which may hold a password.
//!
//! The rules, from libpq's `conninfo_uri_parse_options` and `conninfo_parse`:
//! - URI: `postgres[ql]://[user[:password]@][host[:port][,host[:port]…]][/dbname][?k=v&…]`. The
//!   user info ends at the first `@` that comes before any `/`; so a password may hold a raw `?`
//!   or `#`, but a raw `/` ends the host part (percent-encode it as `%2F`). Host and port lists
//!   are kept as comma-separated lists, positionally aligned (`h1,h2:5433` → host `h1,h2`, port
//!   `,5433`). An IPv6 host is written in brackets. Every part is percent-decoded; `+` is not a
//!   space. The query `ssl=true` means `sslmode=require`.
//! - conninfo: `key = value` pairs separated by white space. A value is either a run of
//!   non-space characters or a single-quoted string; in both, `\` escapes the next character.
//!   A bare `key=` at the end, or `key=''`, is an empty value.
//!
//! Decisions where SPEC is silent:
//! - A NUL byte anywhere is refused: it would end the value in libpq's C strings.
//! - URI keys `database` and `dbname` both name the database; the result says `dbname`.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A connection string that libpq would refuse. No variant holds any text of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConninfoError {
    /// The string holds a NUL byte.
    Nul,
    /// A conninfo word is not followed by `=` (byte offset of the word).
    MissingEquals(usize),
    /// A conninfo `=` has no key before it (byte offset of the `=`).
    EmptyKey(usize),
    /// A single-quoted conninfo value has no closing quote.
    UnterminatedQuote,
    /// A `%` is not followed by two hex digits, or decodes to invalid UTF-8 (which part).
    BadPercent(&'static str),
    /// An IPv6 host has no closing `]`.
    UnterminatedIpv6,
    /// An IPv6 host is `[]`.
    EmptyIpv6,
    /// A character that cannot follow an IPv6 host (byte offset).
    AfterIpv6(usize),
    /// A URI query parameter has no `=` (byte offset of the parameter).
    QueryWithoutEquals(usize),
    /// A URI query parameter has an empty key (byte offset of the parameter).
    QueryEmptyKey(usize),
}

impl fmt::Display for ConninfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConninfoError::Nul => f.write_str("it holds a NUL byte"),
            ConninfoError::MissingEquals(at) => {
                write!(f, "the word at byte {at} is not followed by \"=\"")
            }
            ConninfoError::EmptyKey(at) => write!(f, "the \"=\" at byte {at} has no key"),
            ConninfoError::UnterminatedQuote => f.write_str("a quoted value is not closed"),
            ConninfoError::BadPercent(part) => write!(
                f,
                "the {part} holds a \"%\" that is not followed by two hex digits of UTF-8"
            ),
            ConninfoError::UnterminatedIpv6 => f.write_str("an IPv6 host has no closing \"]\""),
            ConninfoError::EmptyIpv6 => f.write_str("an IPv6 host is empty"),
            ConninfoError::AfterIpv6(at) => {
                write!(f, "unexpected character at byte {at} after an IPv6 host")
            }
            ConninfoError::QueryWithoutEquals(at) => {
                write!(f, "the query parameter at byte {at} has no \"=\"")
            }
            ConninfoError::QueryEmptyKey(at) => {
                write!(f, "the query parameter at byte {at} has no key")
            }
        }
    }
}

impl core::error::Error for ConninfoError {}

/// Whether `s` is written as a PostgreSQL URI (`postgres://` or `postgresql://`).
pub fn is_postgres_uri(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// The settings of a PostgreSQL connection string in either form, in the order written, each
/// key once (the last value written wins, in the place it was first written).
///
/// ```
/// use ttn_telemetry_core::parse_conninfo;
/// let uri = parse_conninfo("postgresql://ttn:p%40ss?w@db:5432/is?sslmode=verify-full").unwrap();
/// let kv = parse_conninfo("user=ttn password='p@ss?w' host=db port=5432 dbname=is sslmode=verify-full").unwrap();
/// assert_eq!(uri, kv);
/// assert_eq!(uri[1], ("password".to_owned(), "p@ss?w".to_owned()));
/// ```
pub fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    if s.contains('\0') {
        return Err(ConninfoError::Nul);
    }
    let pairs = if is_postgres_uri(s) {
        parse_uri(s)?
    } else {
        parse_key_values(s)?
    };
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let k = if k == "database" {
            "dbname".to_owned()
        } else {
            k
        };
        match out.iter_mut().find(|(have, _)| *have == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// One `key=value` token of a conninfo string, as byte ranges into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KvToken {
    /// The key.
    pub key: (usize, usize),
    /// The value as written, quotes included.
    pub raw_value: (usize, usize),
    /// Whether the value is quoted.
    pub quoted: bool,
}

/// Splits a conninfo string into tokens. `Err` carries the error and the tokens read before it
/// (the redactor uses them; the parser refuses the string).
pub(crate) fn kv_tokens(s: &str) -> Result<Vec<KvToken>, (ConninfoError, Vec<KvToken>, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let key_end = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return Err((ConninfoError::MissingEquals(key_start), out, key_start));
        }
        if key_start == key_end {
            return Err((ConninfoError::EmptyKey(i), out, key_start));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let value_start = i;
        let quoted = i < b.len() && b[i] == b'\'';
        if quoted {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err((ConninfoError::UnterminatedQuote, out, key_start));
                }
                match b[i] {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < b.len() && !is_space(b[i]) {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(b.len());
        }
        out.push(KvToken {
            key: (key_start, key_end),
            raw_value: (value_start, i),
            quoted,
        });
    }
}

/// The value of a conninfo token with its quotes and escapes removed.
pub(crate) fn kv_value(s: &str, t: &KvToken) -> String {
    let (a, z) = t.raw_value;
    let raw = if t.quoted { &s[a + 1..z - 1] } else { &s[a..z] };
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let tokens = kv_tokens(s).map_err(|(e, _, _)| e)?;
    Ok(tokens
        .iter()
        .map(|t| (s[t.key.0..t.key.1].to_owned(), kv_value(s, t)))
        .collect())
}

/// Where the user info of a PostgreSQL URI ends (the index of its `@` in `rest`, the text
/// after `://`): the first `@` before any `/`, as libpq reads it.
pub(crate) fn uri_userinfo_end(rest: &str) -> Option<usize> {
    rest.find(['@', '/'])
        .filter(|&i| rest.as_bytes()[i] == b'@')
}

fn decode(s: &str, part: &'static str) -> Result<String, ConninfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(ConninfoError::BadPercent(part)),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| ConninfoError::BadPercent(part))?;
    if text.contains('\0') {
        return Err(ConninfoError::Nul);
    }
    Ok(text)
}

fn parse_uri(s: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let scheme_len = s.find("://").map_or(0, |i| i + 3);
    let mut p = &s[scheme_len..];
    let offset = |p: &str| s.len() - p.len();
    let mut out = Vec::new();
    if let Some(at) = uri_userinfo_end(p) {
        let (user, password) = match p[..at].split_once(':') {
            Some((u, pw)) => (u, Some(pw)),
            None => (&p[..at], None),
        };
        if !user.is_empty() {
            out.push(("user".to_owned(), decode(user, "user name")?));
        }
        if let Some(pw) = password.filter(|pw| !pw.is_empty()) {
            out.push(("password".to_owned(), decode(pw, "password")?));
        }
        p = &p[at + 1..];
    }

    let (mut hosts, mut ports) = (String::new(), String::new());
    loop {
        if let Some(v6) = p.strip_prefix('[') {
            let end = v6.find(']').ok_or(ConninfoError::UnterminatedIpv6)?;
            if end == 0 {
                return Err(ConninfoError::EmptyIpv6);
            }
            hosts.push_str(&v6[..end]);
            p = &v6[end + 1..];
            if !p.is_empty() && !p.starts_with([':', '/', '?', ',']) {
                return Err(ConninfoError::AfterIpv6(offset(p)));
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            hosts.push_str(&p[..end]);
            p = &p[end..];
        }
        if let Some(rest) = p.strip_prefix(':') {
            let end = rest.find(['/', '?', ',']).unwrap_or(rest.len());
            ports.push_str(&rest[..end]);
            p = &rest[end..];
        }
        match p.strip_prefix(',') {
            Some(rest) => {
                p = rest;
                hosts.push(',');
                ports.push(',');
            }
            None => break,
        }
    }
    if !hosts.is_empty() {
        out.push(("host".to_owned(), decode(&hosts, "host")?));
    }
    if !ports.is_empty() {
        out.push(("port".to_owned(), decode(&ports, "port")?));
    }
    if let Some(rest) = p.strip_prefix('/') {
        let end = rest.find('?').unwrap_or(rest.len());
        if end > 0 {
            out.push(("dbname".to_owned(), decode(&rest[..end], "database name")?));
        }
        p = &rest[end..];
    }
    if let Some(query) = p.strip_prefix('?') {
        let mut at = offset(query);
        for param in query.split('&') {
            if !param.is_empty() {
                let (k, v) = param
                    .split_once('=')
                    .ok_or(ConninfoError::QueryWithoutEquals(at))?;
                if k.is_empty() {
                    return Err(ConninfoError::QueryEmptyKey(at));
                }
                let k = decode(k, "query")?;
                let v = decode(v, "query")?;
                if k == "ssl" && v == "true" {
                    out.push(("sslmode".to_owned(), "require".to_owned()));
                } else {
                    out.push((k, v));
                }
            }
            at += param.len() + 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn uris_as_libpq_reads_them() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "postgresql://root:root@localhost:5432/ttn_lorawan_dev?sslmode=disable",
                &[
                    ("user", "root"),
                    ("password", "root"),
                    ("host", "localhost"),
                    ("port", "5432"),
                    ("dbname", "ttn_lorawan_dev"),
                    ("sslmode", "disable"),
                ],
            ),
            ("postgres://", &[]),
            ("postgres://h", &[("host", "h")]),
            ("postgres://u@h/", &[("user", "u"), ("host", "h")]),
            // `?` and `#` may be raw in a password; the user info ends at the first `@`.
            (
                "postgres://u:a?b#c@h/d",
                &[
                    ("user", "u"),
                    ("password", "a?b#c"),
                    ("host", "h"),
                    ("dbname", "d"),
                ],
            ),
            (
                "postgres://u:p%2Fw%40x@h/d",
                &[
                    ("user", "u"),
                    ("password", "p/w@x"),
                    ("host", "h"),
                    ("dbname", "d"),
                ],
            ),
            // A raw `/` ends the host part: no user info, and `pa` is the port.
            (
                "postgres://u:pa/ss@h/d",
                &[("host", "u"), ("port", "pa"), ("dbname", "ss@h/d")],
            ),
            (
                "postgres://h1,h2:5433,[::1]:5434/d",
                &[
                    ("host", "h1,h2,::1"),
                    ("port", ",5433,5434"),
                    ("dbname", "d"),
                ],
            ),
            (
                "postgres://h/d?ssl=true&application_name=a%20b&&x=",
                &[
                    ("host", "h"),
                    ("dbname", "d"),
                    ("sslmode", "require"),
                    ("application_name", "a b"),
                    ("x", ""),
                ],
            ),
            (
                "postgres:///d?host=/run/postgresql&database=e",
                &[("dbname", "e"), ("host", "/run/postgresql")],
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(
                parse_conninfo(uri).as_deref(),
                Ok(kv(want).as_slice()),
                "{uri}"
            );
        }
    }

    #[test]
    fn key_values_as_libpq_reads_them() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "host=db dbname=is sslmode=require",
                &[("host", "db"), ("dbname", "is"), ("sslmode", "require")],
            ),
            (
                "  password = 'a b\\'c\\\\' user=x\\ y port=",
                &[("password", "a b'c\\"), ("user", "x y"), ("port", "")],
            ),
            ("password='' host=h", &[("password", ""), ("host", "h")]),
            ("host=a host=b", &[("host", "b")]),
            ("", &[]),
        ];
        for (s, want) in cases {
            assert_eq!(parse_conninfo(s).as_deref(), Ok(kv(want).as_slice()), "{s}");
        }
    }

    #[test]
    fn errors_never_quote_the_input() {
        let cases = [
            ("host=h secret", ConninfoError::MissingEquals(7)),
            ("=x", ConninfoError::EmptyKey(0)),
            ("password='secret", ConninfoError::UnterminatedQuote),
            (
                "postgres://u:sec%zzret@h",
                ConninfoError::BadPercent("password"),
            ),
            ("postgres://[::1", ConninfoError::UnterminatedIpv6),
            ("postgres://[]/d", ConninfoError::EmptyIpv6),
            ("postgres://[::1]x/d", ConninfoError::AfterIpv6(16)),
            (
                "postgres://h/d?secret",
                ConninfoError::QueryWithoutEquals(15),
            ),
            ("postgres://h/d?=secret", ConninfoError::QueryEmptyKey(15)),
            ("host=h\0", ConninfoError::Nul),
        ];
        for (s, want) in cases {
            let got = parse_conninfo(s).unwrap_err();
            assert_eq!(got, want, "{s}");
            assert!(!alloc::format!("{got}").contains("secret"));
        }
        assert_eq!(
            parse_conninfo("x").unwrap_err(),
            ConninfoError::MissingEquals(0)
        );
    }
}
