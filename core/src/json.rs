//! A tiny JSON writer that produces the same bytes as Go's `encoding/json`.
//!
//! The collector that TTS reports to is written in Go, and operators compare digests, so the
//! bytes matter, not just the value. Go's encoder (1.22 and later) writes compact JSON and
//! escapes strings as follows, which this module reproduces:
//!
//! - `"` and `\` as `\"` and `\\`;
//! - `\n`, `\r`, `\t`, `\b` (U+0008) and `\f` (U+000C) by their short escapes;
//! - every other control character below U+0020 as `\u00XX` (lowercase hex);
//! - `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (HTML-safe escaping is on by default);
//! - U+2028 and U+2029 as `\u2028` and `\u2029`;
//! - everything else, including all other non-ASCII text, as raw UTF-8.

use alloc::vec::Vec;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, escaped exactly as Go's `encoding/json` does.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        let short: &[u8] = match ch {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + ch.len_utf8();
        if short.is_empty() {
            let c = ch as u32;
            out.extend_from_slice(b"\\u");
            for shift in [12u32, 8, 4, 0] {
                out.push(HEX[((c >> shift) & 0xf) as usize]);
            }
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends an unsigned integer in decimal, as Go writes a `uint64`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        write_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(esc("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(esc("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(esc("\"\\\n\r\t\u{8}\u{c}"), r#""\"\\\n\r\t\b\f""#);
        assert_eq!(esc("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(esc("Zürich 東京 🛰"), "\"Zürich 東京 🛰\"");
        assert_eq!(esc("/'"), "\"/'\"");
    }

    #[test]
    fn writes_u64() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut v = Vec::new();
            write_u64(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), alloc::format!("{n}"));
        }
    }
}
