//! Deployment UIDs (SPEC §3) and CLI installation UUIDs (SPEC §7).

use alloc::string::String;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha512};

/// Length of an IS UID: 64 bytes of SHA-512, padded standard base64.
pub const IS_UID_LEN: usize = 88;
/// Length of a hyphenated UUID.
pub const UUID_LEN: usize = 36;
/// At most this many UID elements; a deployment names a handful of URLs.
pub const MAX_UID_ELEMENTS: usize = 64;
/// At most this many bytes in one UID element.
pub const MAX_UID_ELEMENT_BYTES: usize = 2048;

/// Why UID elements were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidError {
    /// The list is empty, or every element is an empty string: every such deployment would
    /// share one id.
    AllEmpty,
    /// More elements than [`MAX_UID_ELEMENTS`].
    TooManyElements,
    /// An element longer than [`MAX_UID_ELEMENT_BYTES`]; the index says which.
    ElementTooLong(usize),
}

impl fmt::Display for UidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UidError::AllEmpty => {
                f.write_str("uid elements are all empty: every such deployment would share one id")
            }
            UidError::TooManyElements => {
                write!(f, "more than {MAX_UID_ELEMENTS} uid elements")
            }
            UidError::ElementTooLong(i) => {
                write!(
                    f,
                    "uid element {i} is longer than {MAX_UID_ELEMENT_BYTES} bytes"
                )
            }
        }
    }
}

impl core::error::Error for UidError {}

/// Computes a deployment UID: `base64(SHA-512(e1 + ":" + … + en + ":"))`.
///
/// ```
/// let uid = ttn_telemetry_core::compute_uid(&["foo", "bar"]).unwrap();
/// assert_eq!(uid, "wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q==");
/// ```
pub fn compute_uid<S: AsRef<str>>(elements: &[S]) -> Result<String, UidError> {
    if elements.len() > MAX_UID_ELEMENTS {
        return Err(UidError::TooManyElements);
    }
    if let Some(i) = elements
        .iter()
        .position(|e| e.as_ref().len() > MAX_UID_ELEMENT_BYTES)
    {
        return Err(UidError::ElementTooLong(i));
    }
    if elements.iter().all(|e| e.as_ref().is_empty()) {
        return Err(UidError::AllEmpty);
    }
    let mut h = Sha512::new();
    for e in elements {
        h.update(e.as_ref().as_bytes());
        h.update(b":");
    }
    Ok(STANDARD.encode(h.finalize()))
}

/// Whether `uid` is an IS UID: 64 bytes in canonical padded standard base64.
pub fn is_valid_is_uid(uid: &str) -> bool {
    uid.len() == IS_UID_LEN
        && match STANDARD.decode(uid) {
            // Re-encoding rejects non-canonical trailing bits, so one id has one spelling.
            Ok(raw) => raw.len() == 64 && STANDARD.encode(&raw) == uid,
            Err(_) => false,
        }
}

/// Formats a version-4 UUID from 16 random bytes the caller supplies (lowercase, hyphenated).
///
/// The version and variant bits are set here, so any 16 bytes make a valid v4 UUID.
///
/// ```
/// let id = ttn_telemetry_core::uuid_v4_from_bytes([0xff; 16]);
/// assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
/// ```
pub fn uuid_v4_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(UUID_LEN);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Whether `uid` is a CLI installation id in its one canonical form: a hyphenated UUID v4
/// (8-4-4-4-12 hex digits) in lower case, with version 4 and the RFC 9562 variant (`8`–`b`).
///
/// One installation must have one spelling, or it would count twice: `ABC…` and `abc…` are the
/// same UUID. Every real client sends this form (the reference ttn-lw-cli uses Go's
/// `uuid.NewString()`, this crate [`uuid_v4_from_bytes`]), so other spellings are refused rather
/// than normalised: normalising would store a body whose `uid` differs from the one counted.
///
/// ```
/// use ttn_telemetry_core::is_valid_uuid;
/// assert!(is_valid_uuid("0b6f3c2e-6a4d-4f1e-9c3a-2b1d0e9f8a7c"));
/// assert!(!is_valid_uuid("0B6F3C2E-6A4D-4F1E-9C3A-2B1D0E9F8A7C")); // upper case
/// assert!(!is_valid_uuid("0b6f3c2e-6a4d-1f1e-9c3a-2b1d0e9f8a7c")); // version 1
/// assert!(!is_valid_uuid("0b6f3c2e-6a4d-4f1e-7c3a-2b1d0e9f8a7c")); // not the RFC variant
/// ```
pub fn is_valid_uuid(uid: &str) -> bool {
    let b = uid.as_bytes();
    uid.len() == UUID_LEN
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vector() {
        assert_eq!(
            compute_uid(&["foo", "bar"]).unwrap(),
            "wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q=="
        );
    }

    #[test]
    fn rejects_all_empty() {
        assert_eq!(compute_uid::<&str>(&[]), Err(UidError::AllEmpty));
        assert_eq!(compute_uid(&["", ""]), Err(UidError::AllEmpty));
        assert!(compute_uid(&["", "x"]).is_ok());
        let many = alloc::vec!["a"; MAX_UID_ELEMENTS + 1];
        assert_eq!(compute_uid(&many), Err(UidError::TooManyElements));
        let long = "x".repeat(MAX_UID_ELEMENT_BYTES + 1);
        assert_eq!(compute_uid(&["a", &long]), Err(UidError::ElementTooLong(1)));
    }

    #[test]
    fn separator_matters() {
        // "a:b" as one element must differ from ["a", "b"]? It does not: the format is
        // e1:e2:, so this documents the (inherited) ambiguity instead of hiding it.
        assert_eq!(
            compute_uid(&["a:b"]).unwrap(),
            compute_uid(&["a", "b"]).unwrap()
        );
        assert_ne!(
            compute_uid(&["ab"]).unwrap(),
            compute_uid(&["a", "b"]).unwrap()
        );
    }

    #[test]
    fn validates_uids() {
        let uid = compute_uid(&["x"]).unwrap();
        assert!(is_valid_is_uid(&uid));
        assert!(!is_valid_is_uid(&uid[1..]));
        assert!(!is_valid_is_uid(&uid.replace('=', "A")));
        // 64 bytes end in one byte spread over two characters; the second one's low four bits
        // are padding and must be zero (`A`, `Q`, `g`, `w`). `B` sets one of them.
        let mut bad = String::from(&uid[..85]);
        bad.push_str("B==");
        assert!(!is_valid_is_uid(&bad));
        let id = uuid_v4_from_bytes([0; 16]);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
        assert!(is_valid_uuid(&id));
        assert!(is_valid_uuid(&id.to_uppercase()));
        assert!(!is_valid_uuid(&id.replace('-', "")));
        assert!(!is_valid_uuid("0000000g-0000-4000-8000-000000000000"));
    }
}
