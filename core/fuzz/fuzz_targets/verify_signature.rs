//! The collector parses `Signature-Input` and `Signature` from the network: whatever the two
//! headers hold, verification must never panic, and a signature it accepts must be by the key
//! its key id names over this very request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ttn_telemetry_core::{PublicKey, Request, SIGNATURE_LABEL, verify_request};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The two header values, split at the first newline (the rest of the input is the input).
    let (input, signature) = text.split_once('\n').unwrap_or((&text, ""));
    let request = Request {
        method: "POST",
        target_uri: "https://telemetry.example/collect",
        content_digest: "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
    };
    if let Ok(v) = verify_request(SIGNATURE_LABEL, input, signature, &request) {
        assert!(PublicKey::from_keyid(&v.keyid).is_ok());
    }
});
