//! Report digests: the SHA-256 that the agent, the browser and the collector all compare.

use alloc::string::String;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of `bytes` as 64 lowercase hex digits, the form shown to people and kept in logs.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in sha256(bytes) {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// The RFC 9530 `Content-Digest` header value for `bytes`: `sha-256=:<base64>:`.
pub fn content_digest(bytes: &[u8]) -> String {
    let mut s = String::from("sha-256=:");
    s.push_str(&STANDARD.encode(sha256(bytes)));
    s.push(':');
    s
}

/// Extracts the SHA-256 from a `Content-Digest` header value, if it has a well-formed one.
///
/// Other algorithms in the same header are skipped, as RFC 9530 allows several.
pub fn parse_content_digest(header: &str) -> Option<[u8; 32]> {
    header.split(',').find_map(|member| {
        let (alg, value) = member.trim().split_once('=')?;
        if !alg.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let b64 = value.trim().strip_prefix(':')?.strip_suffix(':')?;
        STANDARD.decode(b64).ok()?.try_into().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        // RFC 9530 appendix example body.
        let body = b"{\"hello\": \"world\"}";
        assert_eq!(
            content_digest(body),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        assert_eq!(
            parse_content_digest(&content_digest(body)),
            Some(sha256(body))
        );
        assert_eq!(
            parse_content_digest(
                "sha-512=:AA==:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
            ),
            Some(sha256(body))
        );
        assert_eq!(parse_content_digest("sha-256=:AA==:"), None);
        assert_eq!(parse_content_digest("garbage"), None);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
