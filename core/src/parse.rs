//! Parsing and validating an incoming report (the collector's side of SPEC §2 and §9).
//!
//! The parser reads the report's schema directly instead of building a generic JSON tree, so
//! every error knows the field it is about, and hostile input is bounded by [`limits`] before
//! anything large is allocated. It accepts any valid JSON spelling of a report (whitespace, key
//! order, escapes): the bytes a collector stores are the bytes it received, and validation is
//! about values.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::inputs::{CliRepr, Inputs, InputsError, InputsRepr};
use crate::uid::{MAX_UID_ELEMENT_BYTES, is_valid_is_uid, is_valid_uuid};
use crate::wire::*;

/// Bounds on what a report may contain. Reports that our builder makes always fit.
pub mod limits {
    /// Largest accepted body, in bytes (SPEC §9).
    pub const MAX_REPORT_BYTES: usize = 64 * 1024;
    /// Deepest nesting of objects and arrays; a report needs four levels.
    pub const MAX_DEPTH: usize = 8;
    /// Most keys in one object, which bounds the frequency-plan map.
    pub const MAX_OBJECT_KEYS: usize = 1024;
    /// Most items in one array (CLI commands or aliases).
    pub const MAX_ARRAY_ITEMS: usize = 1024;
    /// Longest string or key, in bytes after unescaping.
    pub const MAX_STRING_BYTES: usize = 256;
    /// Largest plain-inputs document: a report plus up to 64 UID elements of 2 KiB each.
    pub const MAX_INPUTS_BYTES: usize = 256 * 1024;
}
use limits::*;

/// Why a report was refused. Messages are short, lowercase, and name the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// The body is larger than [`limits::MAX_REPORT_BYTES`].
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not valid JSON at `offset`.
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 {
        /// Byte offset of the bad sequence.
        offset: usize,
    },
    /// Objects or arrays nest deeper than [`limits::MAX_DEPTH`].
    TooDeep {
        /// Byte offset where the limit was crossed.
        offset: usize,
    },
    /// An object or array has more entries than its limit.
    TooManyEntries {
        /// The field.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A string is longer than its limit ([`limits::MAX_STRING_BYTES`], or
    /// [`crate::MAX_UID_ELEMENT_BYTES`] for a UID element of plain inputs).
    StringTooLong {
        /// The field (or the object whose key is too long).
        path: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A key appears twice in one object.
    DuplicateKey {
        /// The repeated field.
        path: String,
    },
    /// A key the report format does not have.
    UnknownKey {
        /// The unknown field.
        path: String,
    },
    /// A required key is absent.
    MissingKey {
        /// The missing field.
        path: String,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// The field.
        path: String,
        /// The type it must have.
        expected: &'static str,
    },
    /// A count that is negative, fractional, or written with an exponent.
    NotAnUnsignedInteger {
        /// The field.
        path: String,
    },
    /// A count above `u64::MAX`.
    OutOfRange {
        /// The field.
        path: String,
    },
    /// A string holds U+0000 (NUL). See [`Report::validate`] for why.
    Nul {
        /// The field.
        path: String,
    },
    /// A frequency-plan id or CLI name that is empty.
    EmptyString {
        /// The field.
        path: String,
    },
    /// The `uid` does not have the form the report kind needs.
    InvalidUid {
        /// The form it must have.
        expected: &'static str,
    },
    /// Both `cli` and `entities_count` are null: the report says nothing.
    NoPayload,
    /// Both `cli` and `entities_count` are set: a report is one kind or the other.
    BothPayloads,
    /// Counts that contradict each other (one consistent snapshot cannot produce them).
    Inconsistent {
        /// The field that is too large.
        path: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReportError::*;
        match self {
            TooLarge { limit } => write!(f, "report is larger than {limit} bytes"),
            Syntax { offset, expected } => {
                write!(f, "invalid json at byte {offset}: expected {expected}")
            }
            InvalidUtf8 { offset } => write!(f, "invalid utf-8 at byte {offset}"),
            TooDeep { offset } => {
                write!(f, "nesting deeper than {MAX_DEPTH} levels at byte {offset}")
            }
            TooManyEntries { path, limit } => write!(f, "`{path}`: more than {limit} entries"),
            StringTooLong { path, limit } => {
                write!(f, "`{path}`: string longer than {limit} bytes")
            }
            DuplicateKey { path } => write!(f, "`{path}`: duplicate key"),
            UnknownKey { path } => write!(f, "`{path}`: unknown key"),
            MissingKey { path } => write!(f, "`{path}`: missing"),
            WrongType { path, expected } => write!(f, "`{path}`: expected {expected}"),
            NotAnUnsignedInteger { path } => {
                write!(
                    f,
                    "`{path}`: expected an unsigned integer without fraction or exponent"
                )
            }
            OutOfRange { path } => write!(f, "`{path}`: number exceeds 18446744073709551615"),
            Nul { path } => write!(f, "`{path}`: must not contain U+0000 (NUL)"),
            EmptyString { path } => write!(f, "`{path}`: must not be empty"),
            InvalidUid { expected } => write!(f, "`uid`: expected {expected}"),
            NoPayload => f.write_str("`cli` and `entities_count` are both null"),
            BothPayloads => f.write_str("`cli` and `entities_count` are both set"),
            Inconsistent { path, rule } => write!(f, "`{path}`: {rule}"),
        }
    }
}

impl core::error::Error for ReportError {}

/// Parses and validates a report body. On success, the report re-encodes to the canonical bytes
/// with [`Report::to_bytes`].
///
/// ```
/// use ttn_telemetry_core::{parse_report, ReportError};
/// let err = parse_report(br#"{"uid":"x","os":null,"cli":null,"entities_count":null}"#).unwrap_err();
/// assert_eq!(err.to_string(), "`os`: expected an object");
/// ```
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    if body.len() > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge {
            limit: MAX_REPORT_BYTES,
        });
    }
    let report = Parser::new(body).whole(Parser::report)?;
    report.validate()?;
    Ok(report)
}

/// Parses plain inputs (see [`Inputs`]) with the same parser and limits as reports: any JSON
/// spelling, typed errors that name the field, and no float or generic-JSON machinery.
pub(crate) fn parse_inputs(json: &[u8]) -> Result<Inputs, InputsError> {
    if json.len() > MAX_INPUTS_BYTES {
        return Err(InputsError::Invalid(ReportError::TooLarge {
            limit: MAX_INPUTS_BYTES,
        }));
    }
    let repr = Parser::new(json)
        .whole(Parser::inputs)
        .map_err(InputsError::Invalid)?;
    Inputs::try_from(repr)
}

impl Report {
    /// Checks everything a valid report must satisfy beyond its JSON shape: the UID's form for
    /// the report kind, string and entry limits, and counts that one snapshot can produce.
    ///
    /// # Decisions where SPEC is silent: control characters in strings
    /// - **U+0000 (NUL) is refused in every string field** (`os.*`, frequency-plan ids, CLI
    ///   command paths, command names and aliases), with an error naming the field. JSON can
    ///   carry it (`\u0000`), but PostgreSQL `text` cannot hold it, C-based tools cut strings
    ///   at it, and nothing The Things Stack reports (Go's `runtime` names, versions,
    ///   frequency-plan ids, cobra command names) can contain it. Refusing it here, in the one
    ///   validator that both the builder and the collector call, makes every store agree: a
    ///   report either is valid and fits every store, or is refused before any store sees it.
    /// - **Every other control character (U+0001–U+001F, U+007F, U+0080–U+009F) is accepted**
    ///   and kept exactly: Go's encoder escapes them on the wire (the golden vector
    ///   `plan_needs_escaping` pins that), SQLite and PostgreSQL store them as they are, and the
    ///   dashboard shows every reported string as text, never as markup.
    pub fn validate(&self) -> Result<(), ReportError> {
        let strings = [
            ("os.operating_system", &self.os.operating_system),
            ("os.arch", &self.os.arch),
            ("os.binary_version", &self.os.binary_version),
            ("os.golang_version", &self.os.golang_version),
        ];
        for (path, s) in strings {
            check_len(s, || path.to_string())?;
        }
        match &self.payload {
            Payload::Entities(e) => {
                if !is_valid_is_uid(&self.uid) {
                    return Err(ReportError::InvalidUid {
                        expected: "88 characters of padded standard base64 (64 bytes)",
                    });
                }
                validate_entities(e)
            }
            Payload::Cli(_) | Payload::CliWithoutUsage => {
                if !is_valid_uuid(&self.uid) {
                    return Err(ReportError::InvalidUid {
                        expected: "a lower-case uuid v4 (8-4-4-4-12 hex)",
                    });
                }
                match &self.payload {
                    Payload::Cli(c) => validate_cli(c),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The checks every string field gets: its length, and no NUL (see [`Report::validate`]).
fn check_len(s: &str, path: impl Fn() -> String) -> Result<(), ReportError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(ReportError::StringTooLong {
            path: path(),
            limit: MAX_STRING_BYTES,
        });
    }
    if s.contains('\0') {
        return Err(ReportError::Nul { path: path() });
    }
    Ok(())
}

fn check_name(s: &str, path: impl Fn() -> String) -> Result<(), ReportError> {
    check_len(s, &path)?;
    if s.is_empty() {
        return Err(ReportError::EmptyString { path: path() });
    }
    Ok(())
}

fn at_most(value: u64, bound: u64, path: &str, rule: &'static str) -> Result<(), ReportError> {
    if value > bound {
        return Err(ReportError::Inconsistent {
            path: path.to_string(),
            rule,
        });
    }
    Ok(())
}

fn validate_entities(e: &EntitiesCount) -> Result<(), ReportError> {
    let plans = &e.gateways.gateways_by_frequency_plan_id;
    const PLANS: &str = "entities_count.gateways.gateways_by_frequency_plan_id";
    if plans.len() > MAX_OBJECT_KEYS {
        return Err(ReportError::TooManyEntries {
            path: PLANS.to_string(),
            limit: MAX_OBJECT_KEYS,
        });
    }
    for (plan, n) in plans {
        let path = || alloc::format!("{PLANS}.{}", plan.escape_debug());
        check_name(plan, path)?;
        if *n > e.gateways.total {
            return Err(ReportError::Inconsistent {
                path: path(),
                rule: "exceeds gateways.total (a gateway counts once per plan)",
            });
        }
    }
    let a = &e.end_devices.activate_end_devices;
    const P: &str = "entities_count.end_devices.activate_end_devices";
    at_most(
        a.total,
        e.end_devices.total,
        "entities_count.end_devices.activate_end_devices.total",
        "exceeds end_devices.total",
    )?;
    at_most(
        a.last_month,
        a.total,
        &alloc::format!("{P}.last_month"),
        "exceeds activate_end_devices.total",
    )?;
    at_most(
        a.last_week,
        a.last_month,
        &alloc::format!("{P}.last_week"),
        "exceeds last_month",
    )?;
    at_most(
        a.last_day,
        a.last_week,
        &alloc::format!("{P}.last_day"),
        "exceeds last_week",
    )
}

fn validate_cli(c: &CliUsage) -> Result<(), ReportError> {
    for (name, len) in [
        ("cli.commands", c.commands.len()),
        ("cli.aliases", c.aliases.len()),
    ] {
        if len > MAX_ARRAY_ITEMS {
            return Err(ReportError::TooManyEntries {
                path: name.to_string(),
                limit: MAX_ARRAY_ITEMS,
            });
        }
    }
    for (i, cmd) in c.commands.iter().enumerate() {
        check_name(&cmd.command_path, || {
            alloc::format!("cli.commands[{i}].command_path")
        })?;
    }
    for (i, a) in c.aliases.iter().enumerate() {
        check_name(&a.command_name, || {
            alloc::format!("cli.aliases[{i}].command_name")
        })?;
        check_name(&a.alias, || alloc::format!("cli.aliases[{i}].alias"))?;
    }
    Ok(())
}

enum Seg {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
    path: Vec<Seg>,
    max_string: usize,
}

type Res<T> = Result<T, ReportError>;

/// Stores a field's value, refusing a second one for the same key.
fn set<T>(p: &Parser<'_>, slot: &mut Option<T>, value: T) -> Res<()> {
    if slot.is_some() {
        return Err(ReportError::DuplicateKey { path: p.path() });
    }
    *slot = Some(value);
    Ok(())
}

impl<'a> Parser<'a> {
    fn new(src: &'a [u8]) -> Self {
        Parser {
            src,
            pos: 0,
            depth: 0,
            path: Vec::new(),
            max_string: MAX_STRING_BYTES,
        }
    }

    /// Parses one value with `f` and requires nothing but whitespace after it.
    fn whole<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let value = f(self)?;
        self.ws();
        if self.pos != self.src.len() {
            return Err(self.syntax("end of input"));
        }
        Ok(value)
    }

    fn path(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    // Keys come from the network: show control characters escaped.
                    for c in k.escape_debug() {
                        s.push(c);
                    }
                }
                Seg::Index(i) => {
                    s.push('[');
                    s.push_str(&i.to_string());
                    s.push(']');
                }
            }
        }
        if s.is_empty() {
            String::from("(root)")
        } else {
            s
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.src.get(self.pos).copied()
    }

    fn syntax(&self, expected: &'static str) -> ReportError {
        ReportError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    fn eat(&mut self, b: u8, expected: &'static str) -> Res<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Res<()> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax("a json value"))
        }
    }

    /// Checks the next value's type without consuming it (except `null`, when allowed).
    fn expect(&mut self, start: u8, expected: &'static str) -> Res<()> {
        match self.peek() {
            Some(b) if b == start => Ok(()),
            Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                Err(ReportError::WrongType {
                    path: self.path(),
                    expected,
                })
            }
            _ => Err(self.syntax("a json value")),
        }
    }

    /// `null` → `None`; otherwise parses with `f`.
    fn nullable<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<Option<T>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(None)
        } else {
            f(self).map(Some)
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ReportError::TooDeep { offset: self.pos });
        }
        Ok(())
    }

    /// Iterates an object's members; `f` gets each key with the parser at its value.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &str) -> Res<()>) -> Res<()> {
        self.expect(b'{', "an object")?;
        self.enter()?;
        self.pos += 1;
        let mut n = 0usize;
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                n += 1;
                if n > MAX_OBJECT_KEYS {
                    return Err(ReportError::TooManyEntries {
                        path: self.path(),
                        limit: MAX_OBJECT_KEYS,
                    });
                }
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("a string key"));
                }
                let key = self.raw_string()?;
                self.eat(b':', "`:`")?;
                self.path.push(Seg::Key(key.clone()));
                f(self, &key)?;
                self.path.pop();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("`,` or `}`")),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn array<T>(&mut self, mut f: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        self.expect(b'[', "an array")?;
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                if items.len() == MAX_ARRAY_ITEMS {
                    return Err(ReportError::TooManyEntries {
                        path: self.path(),
                        limit: MAX_ARRAY_ITEMS,
                    });
                }
                self.path.push(Seg::Index(items.len()));
                items.push(f(self)?);
                self.path.pop();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("`,` or `]`")),
                }
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    fn string(&mut self) -> Res<String> {
        self.expect(b'"', "a string")?;
        self.raw_string()
    }

    /// Parses a string literal at `pos` (which is at the opening quote).
    fn raw_string(&mut self) -> Res<String> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.src.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = &self.src[run_start..self.pos];
            if let Err(e) = core::str::from_utf8(run) {
                return Err(ReportError::InvalidUtf8 {
                    offset: run_start + e.valid_up_to(),
                });
            }
            out.extend_from_slice(run);
            if out.len() > self.max_string {
                return Err(ReportError::StringTooLong {
                    path: self.path(),
                    limit: self.max_string,
                });
            }
            match self.src.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    // Every piece was checked as UTF-8 on its own and escapes push whole
                    // characters, so the concatenation is valid too.
                    return String::from_utf8(out)
                        .map_err(|_| ReportError::InvalidUtf8 { offset: self.pos });
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(_) => return Err(self.syntax("no raw control characters in a string")),
                None => return Err(self.syntax("`\"`")),
            }
        }
    }

    fn escape(&mut self) -> Res<char> {
        let Some(&b) = self.src.get(self.pos) else {
            return Err(self.syntax("an escape"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if !self.src[self.pos..].starts_with(b"\\u") {
                        return Err(self.syntax("a low surrogate escape"));
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.syntax("a low surrogate escape"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or_else(|| self.syntax("a unicode scalar value"))?
            }
            _ => {
                self.pos -= 1;
                return Err(self.syntax("a valid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Res<u32> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.syntax("four hex digits"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("four hex digits"))?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    fn count(&mut self) -> Res<u64> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {}
            _ => {
                self.expect(b'0', "an unsigned integer")?;
            }
        }
        let negative = self.src[self.pos] == b'-';
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        self.digits();
        let int = &self.src[int_start..self.pos];
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            self.pos = int_start;
            return Err(self.syntax("a json number"));
        }
        let mut plain = !negative;
        if self.src.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax("digits after `.`"));
            }
            plain = false;
        }
        if let Some(b'e' | b'E') = self.src.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.src.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("exponent digits"));
            }
            plain = false;
        }
        // "-0" is not a count either: Go never writes it for an unsigned field.
        if !plain {
            return Err(ReportError::NotAnUnsignedInteger { path: self.path() });
        }
        int.iter()
            .try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or_else(|| ReportError::OutOfRange { path: self.path() })
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.src.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn missing(&self, key: &str) -> ReportError {
        let mut path = self.path();
        if path == "(root)" {
            path.clear();
        } else {
            path.push('.');
        }
        path.push_str(key);
        ReportError::MissingKey { path }
    }

    fn inputs(&mut self) -> Res<InputsRepr> {
        let (mut elements, mut uid, mut os, mut ent, mut cli) = (None, None, None, None, None);
        self.object(|p, key| match key {
            "uid_elements" => {
                // UID elements are URLs and may be longer than report strings.
                p.max_string = MAX_UID_ELEMENT_BYTES;
                let v = p.nullable(|p| p.array(Self::string));
                p.max_string = MAX_STRING_BYTES;
                set(p, &mut elements, v?)
            }
            "uid" => {
                let v = p.nullable(Self::string)?;
                set(p, &mut uid, v)
            }
            "os" => {
                let v = p.os()?;
                set(p, &mut os, v)
            }
            "entities_count" => {
                let v = p.nullable(Self::entities)?;
                set(p, &mut ent, v)
            }
            "cli" => {
                let v = p.nullable(Self::cli)?;
                set(p, &mut cli, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(InputsRepr {
            uid_elements: elements.flatten(),
            uid: uid.flatten(),
            os: os.ok_or_else(|| self.missing("os"))?,
            entities_count: ent.flatten(),
            cli: cli.flatten().map(|c| match c {
                Payload::Cli(c) => CliRepr::Usage(c),
                _ => CliRepr::WithoutUsage,
            }),
        })
    }

    fn report(&mut self) -> Res<Report> {
        let (mut uid, mut os, mut cli, mut ent) = (None, None, None, None);
        self.object(|p, key| match key {
            "uid" => {
                let v = p.string()?;
                set(p, &mut uid, v)
            }
            "os" => {
                let v = p.os()?;
                set(p, &mut os, v)
            }
            "cli" => {
                let v = p.nullable(Self::cli)?;
                set(p, &mut cli, v)
            }
            "entities_count" => {
                let v = p.nullable(Self::entities)?;
                set(p, &mut ent, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        let uid = uid.ok_or_else(|| self.missing("uid"))?;
        let os = os.ok_or_else(|| self.missing("os"))?;
        let cli = cli.ok_or_else(|| self.missing("cli"))?;
        let ent = ent.ok_or_else(|| self.missing("entities_count"))?;
        let payload = match (cli, ent) {
            (Some(c), None) => c,
            (None, Some(e)) => Payload::Entities(e),
            (None, None) => return Err(ReportError::NoPayload),
            (Some(_), Some(_)) => return Err(ReportError::BothPayloads),
        };
        Ok(Report { uid, os, payload })
    }

    /// Parses an object whose fields are all strings, in the order of `names`.
    fn strings<const N: usize>(&mut self, names: [&'static str; N]) -> Res<[String; N]> {
        let mut vals: [Option<String>; N] = core::array::from_fn(|_| None);
        self.object(|p, key| match names.iter().position(|n| *n == key) {
            Some(i) => {
                let v = p.string()?;
                set(p, &mut vals[i], v)
            }
            None => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        let mut out: [String; N] = core::array::from_fn(|_| String::new());
        for (i, v) in vals.into_iter().enumerate() {
            out[i] = v.ok_or_else(|| self.missing(names[i]))?;
        }
        Ok(out)
    }

    /// Parses an object whose fields are all counts, in the order of `names`.
    fn counts<const N: usize>(&mut self, names: [&'static str; N]) -> Res<[u64; N]> {
        let mut vals = [None; N];
        self.object(|p, key| match names.iter().position(|n| *n == key) {
            Some(i) => {
                let v = p.count()?;
                set(p, &mut vals[i], v)
            }
            None => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        let mut out = [0u64; N];
        for (i, v) in vals.into_iter().enumerate() {
            out[i] = v.ok_or_else(|| self.missing(names[i]))?;
        }
        Ok(out)
    }

    fn os(&mut self) -> Res<OsInfo> {
        let [operating_system, arch, binary_version, golang_version] = self.strings([
            "operating_system",
            "arch",
            "binary_version",
            "golang_version",
        ])?;
        Ok(OsInfo {
            operating_system,
            arch,
            binary_version,
            golang_version,
        })
    }

    fn entities(&mut self) -> Res<EntitiesCount> {
        let (mut gw, mut ed, mut apps, mut acc) = (None, None, None, None);
        self.object(|p, key| match key {
            "gateways" => {
                let v = p.gateways()?;
                set(p, &mut gw, v)
            }
            "end_devices" => {
                let v = p.end_devices()?;
                set(p, &mut ed, v)
            }
            "applications" => {
                let [total] = p.counts(["total"])?;
                set(p, &mut apps, Total { total })
            }
            "accounts" => {
                let v = p.accounts()?;
                set(p, &mut acc, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(EntitiesCount {
            gateways: gw.ok_or_else(|| self.missing("gateways"))?,
            end_devices: ed.ok_or_else(|| self.missing("end_devices"))?,
            applications: apps.ok_or_else(|| self.missing("applications"))?,
            accounts: acc.ok_or_else(|| self.missing("accounts"))?,
        })
    }

    fn gateways(&mut self) -> Res<GatewayCounts> {
        let (mut total, mut plans) = (None, None);
        self.object(|p, key| match key {
            "total" => {
                let v = p.count()?;
                set(p, &mut total, v)
            }
            "gateways_by_frequency_plan_id" => {
                let mut map = BTreeMap::new();
                p.object(|p, plan| {
                    let n = p.count()?;
                    match map.insert(plan.to_string(), n) {
                        Some(_) => Err(ReportError::DuplicateKey { path: p.path() }),
                        None => Ok(()),
                    }
                })?;
                set(p, &mut plans, map)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(GatewayCounts {
            total: total.ok_or_else(|| self.missing("total"))?,
            gateways_by_frequency_plan_id: plans
                .ok_or_else(|| self.missing("gateways_by_frequency_plan_id"))?,
        })
    }

    fn end_devices(&mut self) -> Res<EndDeviceCounts> {
        let (mut total, mut active) = (None, None);
        self.object(|p, key| match key {
            "total" => {
                let v = p.count()?;
                set(p, &mut total, v)
            }
            "activate_end_devices" => {
                let [total, last_day, last_week, last_month] =
                    p.counts(["total", "last_day", "last_week", "last_month"])?;
                set(
                    p,
                    &mut active,
                    ActiveEndDevices {
                        total,
                        last_day,
                        last_week,
                        last_month,
                    },
                )
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(EndDeviceCounts {
            total: total.ok_or_else(|| self.missing("total"))?,
            activate_end_devices: active.ok_or_else(|| self.missing("activate_end_devices"))?,
        })
    }

    fn accounts(&mut self) -> Res<AccountCounts> {
        let (mut users, mut orgs) = (None, None);
        self.object(|p, key| match key {
            "users" => {
                let [standard, admin] = p.counts(["standard", "admin"])?;
                set(p, &mut users, UserCounts { standard, admin })
            }
            "organizations" => {
                let [total] = p.counts(["total"])?;
                set(p, &mut orgs, Total { total })
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(AccountCounts {
            users: users.ok_or_else(|| self.missing("users"))?,
            organizations: orgs.ok_or_else(|| self.missing("organizations"))?,
        })
    }

    /// `{"commands":[…],"aliases":[…]}` → [`Payload::Cli`]; `{}` → [`Payload::CliWithoutUsage`].
    fn cli(&mut self) -> Res<Payload> {
        let (mut commands, mut aliases) = (None, None);
        self.object(|p, key| match key {
            "commands" => {
                let v = p.array(Self::command)?;
                set(p, &mut commands, v)
            }
            "aliases" => {
                let v = p.array(Self::alias)?;
                set(p, &mut aliases, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        if commands.is_none() && aliases.is_none() {
            return Ok(Payload::CliWithoutUsage);
        }
        Ok(Payload::Cli(CliUsage {
            commands: commands.ok_or_else(|| self.missing("commands"))?,
            aliases: aliases.ok_or_else(|| self.missing("aliases"))?,
        }))
    }

    fn command(&mut self) -> Res<CommandUsage> {
        let (mut path, mut count, mut last) = (None, None, None);
        self.object(|p, key| match key {
            "command_path" => {
                let v = p.string()?;
                set(p, &mut path, v)
            }
            "execution_count" => {
                let v = p.count()?;
                set(p, &mut count, v)
            }
            "last_used_at" => {
                let v = p.count()?;
                set(p, &mut last, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(CommandUsage {
            command_path: path.ok_or_else(|| self.missing("command_path"))?,
            execution_count: count.ok_or_else(|| self.missing("execution_count"))?,
            last_used_at: last.ok_or_else(|| self.missing("last_used_at"))?,
        })
    }

    fn alias(&mut self) -> Res<AliasUsage> {
        let (mut name, mut alias, mut count) = (None, None, None);
        self.object(|p, key| match key {
            "command_name" => {
                let v = p.string()?;
                set(p, &mut name, v)
            }
            "alias" => {
                let v = p.string()?;
                set(p, &mut alias, v)
            }
            "usage_count" => {
                let v = p.count()?;
                set(p, &mut count, v)
            }
            _ => Err(ReportError::UnknownKey { path: p.path() }),
        })?;
        Ok(AliasUsage {
            command_name: name.ok_or_else(|| self.missing("command_name"))?,
            alias: alias.ok_or_else(|| self.missing("alias"))?,
            usage_count: count.ok_or_else(|| self.missing("usage_count"))?,
        })
    }
}
