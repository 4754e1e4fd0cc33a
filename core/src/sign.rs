//! Signed deliveries: HTTP Message Signatures (RFC 9421) with Ed25519, for one fixed profile.
//!
//! A deployment key is an Ed25519 key made from 32 seed bytes the host passes in (the core has
//! no randomness of its own). Its *key id* is the unpadded base64url of the 32-byte public key,
//! so a verifier learns the public key from the key id alone and can pin it without any lookup.
//!
//! The profile (see `docs/signing.md`):
//!
//! ```text
//! Signature-Input: ttn=("@method" "@target-uri" "content-digest");created=<unix s>;keyid="<id>";alg="ed25519"
//! Signature: ttn=:<base64 of the 64-byte Ed25519 signature>:
//! ```
//!
//! Every request of the profile covers the same three components, whatever its method: a `GET`
//! or `DELETE` carries the `Content-Digest` of its empty body. The signature base is built as
//! RFC 9421 §2.5 says; [`signature_base`] builds it for any list of components, which lets the
//! tests check it against the RFC's own Ed25519 example (Appendix B.2.6).
//!
//! Parsing reads the `Signature-Input` and `Signature` dictionaries (RFC 8941) far enough to find
//! one member by label, and accepts only this profile in it: exactly the three components in
//! order, an integer `created`, a string `keyid`, and `alg` absent or `"ed25519"`. Other members
//! (another party's signatures) are ignored. The `@signature-params` line of the base is the
//! member re-serialized canonically, so optional whitespace after `;` does not change it.

use alloc::string::{String, ToString as _};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer as _;

/// The label of the agent's signature in `Signature-Input` and `Signature`.
pub const SIGNATURE_LABEL: &str = "ttn";

/// The label of the second signature of a key rotation, made with the new key (proof that the
/// sender holds it).
pub const ROTATION_LABEL: &str = "ttn-new";

/// The components every signature of the profile covers, in order.
pub const COVERED_COMPONENTS: [&str; 3] = ["@method", "@target-uri", "content-digest"];

/// A deployment's signing key (Ed25519). Its seed is secret: it is never printed (`Debug`
/// shows the key id only).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.keyid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key made from 32 secret seed bytes (RFC 8032 §5.1.5), which the host draws from its
    /// CSPRNG or reads from its key file.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32 seed bytes, for the host to keep in its key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as a PEM `PRIVATE KEY` (PKCS#8, RFC 8410): the form of a key file, the same that
    /// `openssl genpkey -algorithm ed25519` writes.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_PREFIX);
        der.extend_from_slice(&self.seed());
        let b64 = STANDARD.encode(&der);
        der.fill(0);
        alloc::format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    /// Reads a PEM `PRIVATE KEY` of an Ed25519 key (PKCS#8 v1 without attributes, as
    /// [`SigningKey::to_pkcs8_pem`] and openssl write it).
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyFileError> {
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|s| s.strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or(KeyFileError::NotPem)?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| KeyFileError::NotPem)?;
        if der.len() != 48 || der[..16] != PKCS8_PREFIX {
            return Err(KeyFileError::NotEd25519);
        }
        let seed: [u8; 32] = der[16..].try_into().map_err(|_| KeyFileError::NotEd25519)?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The key id: the unpadded base64url of the public key.
    pub fn keyid(&self) -> String {
        self.public().keyid()
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The `Signature-Input` and `Signature` header values (label [`SIGNATURE_LABEL`]) for a
    /// request of the profile, created at `created` (Unix seconds).
    pub fn sign_request(&self, request: &Request<'_>, created: i64) -> SignatureHeaders {
        self.sign_request_as(SIGNATURE_LABEL, request, created)
    }

    /// As [`SigningKey::sign_request`], under another label.
    pub fn sign_request_as(
        &self,
        label: &str,
        request: &Request<'_>,
        created: i64,
    ) -> SignatureHeaders {
        let params = Params {
            created,
            keyid: self.keyid(),
            alg: true,
        }
        .serialize();
        let base = request.base(&params);
        let sig = self.sign(base.as_bytes());
        SignatureHeaders {
            input: alloc::format!("{label}={params}"),
            signature: alloc::format!("{label}=:{}:", STANDARD.encode(sig)),
        }
    }
}

/// The DER of a PKCS#8 Ed25519 private key before its 32 seed bytes: SEQUENCE, version 0,
/// AlgorithmIdentifier id-Ed25519 (1.3.101.112), OCTET STRING { OCTET STRING (32) }.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why a key file was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileError {
    /// Not a PEM `PRIVATE KEY` block.
    NotPem,
    /// A private key, but not a plain PKCS#8 Ed25519 one.
    NotEd25519,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFileError::NotPem => "not a PEM \"PRIVATE KEY\" block",
            KeyFileError::NotEd25519 => "not a PKCS#8 Ed25519 private key",
        })
    }
}

impl core::error::Error for KeyFileError {}

/// A deployment's public key (32 bytes of a compressed Edwards point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key id: the unpadded base64url of the 32 bytes (43 characters).
    pub fn keyid(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The public key a key id names, if it is one (43 base64url characters of a valid point).
    pub fn from_keyid(keyid: &str) -> Result<PublicKey, SignatureError> {
        Ok(PublicKey(verifying_key(keyid)?.to_bytes()))
    }

    /// Whether `signature` is this key's Ed25519 signature of `message` (strict verification:
    /// no weak keys, no malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).is_ok()
    }
}

/// The two header values of one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// The `Signature-Input` member, `label=(…);created=…;keyid="…";alg="ed25519"`.
    pub input: String,
    /// The `Signature` member, `label=:…:`.
    pub signature: String,
}

/// What a signature of the profile covers: the request's method, its full target URI and its
/// `Content-Digest` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `POST`, `GET`, `DELETE` (upper case, as sent).
    pub method: &'a str,
    /// The absolute URI the request is sent to, `scheme://authority/path?query`.
    pub target_uri: &'a str,
    /// The `Content-Digest` header value (see [`crate::content_digest`]).
    pub content_digest: &'a str,
}

impl Request<'_> {
    /// The RFC 9421 signature base of this request for the serialized `params`.
    pub fn base(&self, params: &str) -> String {
        signature_base(
            &[
                ("\"@method\"", self.method),
                ("\"@target-uri\"", self.target_uri),
                ("\"content-digest\"", self.content_digest),
            ],
            params,
        )
    }
}

/// The RFC 9421 §2.5 signature base: one line `<component id>: <value>` per covered component
/// (the identifier already serialized, such as `"@method"`), then the `"@signature-params"`
/// line with `params` (the serialized inner list and its parameters), lines joined by `\n`.
pub fn signature_base(components: &[(&str, &str)], params: &str) -> String {
    let mut s = String::new();
    for (id, value) in components {
        s.push_str(id);
        s.push_str(": ");
        s.push_str(value);
        s.push('\n');
    }
    s.push_str("\"@signature-params\": ");
    s.push_str(params);
    s
}

/// The signature parameters of the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    created: i64,
    keyid: String,
    /// Whether `alg="ed25519"` is given (it is optional in RFC 9421; the agent always gives it).
    alg: bool,
}

impl Params {
    fn serialize(&self) -> String {
        let mut s = String::from("(");
        for (i, c) in COVERED_COMPONENTS.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push('"');
            s.push_str(c);
            s.push('"');
        }
        s.push_str(");created=");
        s.push_str(&self.created.to_string());
        s.push_str(";keyid=\"");
        s.push_str(&self.keyid);
        s.push('"');
        if self.alg {
            s.push_str(";alg=\"ed25519\"");
        }
        s
    }
}

/// A signature that checked out: who made it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's key id (the public key, see [`PublicKey::keyid`]).
    pub keyid: String,
    /// `created`, Unix seconds, as signed. The caller checks it against its clock.
    pub created: i64,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// `Signature-Input` has no member with the label, or `Signature` none, or not both.
    Missing,
    /// A header is not a well-formed dictionary of the profile.
    Malformed,
    /// The covered components are not exactly `("@method" "@target-uri" "content-digest")`.
    Components,
    /// `alg` names an algorithm other than `ed25519`.
    Algorithm,
    /// `keyid` is not the base64url of an Ed25519 public key.
    KeyId,
    /// The signature does not verify with the key id's key.
    Invalid,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "no signature with the expected label",
            SignatureError::Malformed => "malformed Signature-Input or Signature header",
            SignatureError::Components => {
                "the signature must cover (\"@method\" \"@target-uri\" \"content-digest\")"
            }
            SignatureError::Algorithm => "the signature algorithm must be ed25519",
            SignatureError::KeyId => {
                "keyid must be the unpadded base64url of an Ed25519 public key"
            }
            SignatureError::Invalid => "the signature does not verify",
        })
    }
}

impl core::error::Error for SignatureError {}

/// Checks the signature labelled `label` in the `Signature-Input` and `Signature` header values
/// against `request`, with the key its `keyid` names. The caller then checks `created` against
/// its clock and the key id against the key it trusts.
pub fn verify_request(
    label: &str,
    signature_input: &str,
    signature: &str,
    request: &Request<'_>,
) -> Result<Verified, SignatureError> {
    let input = dict_member(signature_input, label)?.ok_or(SignatureError::Missing)?;
    let sig = dict_member(signature, label)?.ok_or(SignatureError::Missing)?;
    let params = parse_params(input)?;
    let sig: [u8; 64] = sig
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Malformed)?;
    let key = verifying_key(&params.keyid)?;
    let base = request.base(&params.serialize());
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    if key.verify_strict(base.as_bytes(), &sig).is_err() {
        return Err(SignatureError::Invalid);
    }
    Ok(Verified {
        keyid: params.keyid,
        created: params.created,
    })
}

/// The key a key id names, decompressed once.
fn verifying_key(keyid: &str) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(keyid)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::KeyId)?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::KeyId)
}

/// The value of the member `label` of a structured-field dictionary (RFC 8941 §3.2), as text:
/// members are split at commas outside strings, inner lists and byte sequences.
fn dict_member<'a>(header: &'a str, label: &str) -> Result<Option<&'a str>, SignatureError> {
    for member in split_members(header)? {
        let member = member.trim_matches([' ', '\t']);
        let Some((key, value)) = member.split_once('=') else {
            continue;
        };
        if key == label {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

fn split_members(header: &str) -> Result<Vec<&str>, SignatureError> {
    let mut out = Vec::new();
    let (mut start, mut in_str, mut esc, mut depth, mut in_bytes) = (0, false, false, 0u32, false);
    for (i, c) in header.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            ':' => in_bytes = !in_bytes,
            '(' if !in_bytes => depth += 1,
            ')' if !in_bytes => depth = depth.checked_sub(1).ok_or(SignatureError::Malformed)?,
            ',' if depth == 0 && !in_bytes => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_str || depth != 0 || in_bytes {
        return Err(SignatureError::Malformed);
    }
    out.push(&header[start..]);
    Ok(out)
}

/// Parses `("@method" "@target-uri" "content-digest");created=…;keyid="…"[;alg="ed25519"]`.
fn parse_params(input: &str) -> Result<Params, SignatureError> {
    let rest = input.strip_prefix('(').ok_or(SignatureError::Malformed)?;
    let (list, rest) = rest.split_once(')').ok_or(SignatureError::Malformed)?;
    let items: Vec<&str> = list.split(' ').filter(|s| !s.is_empty()).collect();
    let want = COVERED_COMPONENTS.map(|c| alloc::format!("\"{c}\""));
    if items.len() != want.len() || items.iter().zip(&want).any(|(a, b)| *a != b.as_str()) {
        return Err(SignatureError::Components);
    }
    let (mut created, mut keyid, mut alg) = (None, None, false);
    for p in rest.split(';').skip(1) {
        let (name, value) = p
            .trim_start_matches(' ')
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match name {
            "created" => {
                if value.is_empty()
                    || value.len() > 15
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(SignatureError::Malformed);
                }
                created = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "keyid" => keyid = Some(sf_string(value)?),
            "alg" if sf_string(value)? == "ed25519" => alg = true,
            "alg" => return Err(SignatureError::Algorithm),
            _ => return Err(SignatureError::Malformed),
        }
    }
    if !rest.is_empty() && !rest.starts_with(';') {
        return Err(SignatureError::Malformed);
    }
    Ok(Params {
        created: created.ok_or(SignatureError::Malformed)?,
        keyid: keyid.ok_or(SignatureError::Malformed)?,
        alg,
    })
}

/// An sf-string without escapes (key ids and algorithm names never need them).
fn sf_string(v: &str) -> Result<String, SignatureError> {
    let s = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or(SignatureError::Malformed)?;
    if s.bytes()
        .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
    {
        return Err(SignatureError::Malformed);
    }
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content_digest;

    /// RFC 9421 Appendix B.1.4, `test-key-ed25519`: the seed is the last 32 bytes of the PKCS#8
    /// document.
    fn rfc_key() -> SigningKey {
        SigningKey::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n\
             -----END PRIVATE KEY-----\n",
        )
        .unwrap()
    }

    #[test]
    fn key_files_round_trip() {
        let key = SigningKey::from_seed(&[9; 32]);
        let pem = key.to_pkcs8_pem();
        assert_eq!(SigningKey::from_pkcs8_pem(&pem).unwrap().seed(), [9; 32]);
        assert_eq!(
            SigningKey::from_pkcs8_pem("hello").unwrap_err(),
            KeyFileError::NotPem
        );
        let short = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw\n-----END PRIVATE KEY-----";
        assert_eq!(
            SigningKey::from_pkcs8_pem(short).unwrap_err(),
            KeyFileError::NotEd25519
        );
        assert!(!alloc::format!("{key:?}").contains(&pem[28..40]));
    }

    #[test]
    fn rfc9421_b26_ed25519() {
        let key = rfc_key();
        // B.1.4's public key (SubjectPublicKeyInfo), its last 32 bytes.
        let spki = STANDARD
            .decode("MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=")
            .unwrap();
        assert_eq!(key.public().0[..], spki[12..]);
        let params = "(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \
                      \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
        let base = signature_base(
            &[
                ("\"date\"", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("\"@method\"", "POST"),
                ("\"@path\"", "/foo"),
                ("\"@authority\"", "example.com"),
                ("\"content-type\"", "application/json"),
                ("\"content-length\"", "18"),
            ],
            params,
        );
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\
             \"@authority\": example.com\n\"content-type\": application/json\n\
             \"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \
             \"@authority\" \"content-type\" \"content-length\");created=1618884473;\
             keyid=\"test-key-ed25519\""
        );
        let want = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==";
        let sig = key.sign(base.as_bytes());
        assert_eq!(STANDARD.encode(sig), want);
        assert!(key.public().verify(base.as_bytes(), &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!key.public().verify(base.as_bytes(), &bad));
    }

    fn request(digest: &str) -> Request<'_> {
        Request {
            method: "POST",
            target_uri: "https://telemetry.example/collect",
            content_digest: digest,
        }
    }

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::from_seed(&[7; 32]);
        let digest = content_digest(b"{}");
        let h = key.sign_request(&request(&digest), 1_700_000_000);
        assert_eq!(
            h.input,
            alloc::format!(
                "ttn=(\"@method\" \"@target-uri\" \"content-digest\");created=1700000000;keyid=\"{}\";alg=\"ed25519\"",
                key.keyid()
            )
        );
        let v = verify_request("ttn", &h.input, &h.signature, &request(&digest)).unwrap();
        assert_eq!(v.keyid, key.keyid());
        assert_eq!(v.created, 1_700_000_000);
        assert_eq!(key.keyid().len(), 43);
        assert_eq!(PublicKey::from_keyid(&key.keyid()), Ok(key.public()));
        // Another party's signature in the same headers is ignored; ours is found by label.
        let input = alloc::format!("proxy=(\"@method\");keyid=\"a,b\", {}", h.input);
        let sig = alloc::format!("proxy=:AAAA:, {}", h.signature);
        assert!(verify_request("ttn", &input, &sig, &request(&digest)).is_ok());
        // Optional whitespace after `;` is not part of the canonical form.
        let spaced = h.input.replace(";created", "; created");
        assert!(verify_request("ttn", &spaced, &h.signature, &request(&digest)).is_ok());
    }

    #[test]
    fn refuses_what_it_does_not_cover() {
        let key = SigningKey::from_seed(&[7; 32]);
        let digest = content_digest(b"{}");
        let h = key.sign_request(&request(&digest), 1_700_000_000);
        let other = content_digest(b"{ }");
        let check =
            |input: &str, sig: &str, req: &Request<'_>| verify_request("ttn", input, sig, req);
        assert_eq!(
            check(&h.input, &h.signature, &request(&other)),
            Err(SignatureError::Invalid)
        );
        let elsewhere = Request {
            target_uri: "https://evil.example/collect",
            ..request(&digest)
        };
        assert_eq!(
            check(&h.input, &h.signature, &elsewhere),
            Err(SignatureError::Invalid)
        );
        let get = Request {
            method: "GET",
            ..request(&digest)
        };
        assert_eq!(
            check(&h.input, &h.signature, &get),
            Err(SignatureError::Invalid)
        );
        // A later `created` is a different signature base.
        let later = h.input.replace("1700000000", "1700000001");
        assert_eq!(
            check(&later, &h.signature, &request(&digest)),
            Err(SignatureError::Invalid)
        );
        // Another key's id with this signature.
        let other_key = SigningKey::from_seed(&[8; 32]);
        let swapped = h.input.replace(&key.keyid(), &other_key.keyid());
        assert_eq!(
            check(&swapped, &h.signature, &request(&digest)),
            Err(SignatureError::Invalid)
        );
        let fewer = h.input.replace(" \"content-digest\"", "");
        assert_eq!(
            check(&fewer, &h.signature, &request(&digest)),
            Err(SignatureError::Components)
        );
        let rsa = h.input.replace("ed25519", "rsa-pss-sha512");
        assert_eq!(
            check(&rsa, &h.signature, &request(&digest)),
            Err(SignatureError::Algorithm)
        );
        assert_eq!(
            check("", &h.signature, &request(&digest)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(&h.input, "ttn=:AAAA:", &request(&digest)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(
                &h.input.replace("keyid=\"", "keyid=\"x"),
                &h.signature,
                &request(&digest)
            ),
            Err(SignatureError::KeyId)
        );
        assert_eq!(
            check("ttn=(\"@method\"", &h.signature, &request(&digest)),
            Err(SignatureError::Malformed)
        );
    }
}
