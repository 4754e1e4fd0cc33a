//! The pure core of The Things Stack telemetry.
//!
//! Once a day a TTS deployment reports how many gateways, end devices, applications, users and
//! organizations its Identity Server holds, with OS and build facts and an anonymous id. This
//! crate turns plain inputs into the exact bytes of that report, and does everything else that
//! must give the same answer wherever it runs: the UID, report validation for the collector,
//! the activity cut-offs for counting, the config model, and the table of field meanings.
//!
//! It never reads a clock, a socket, a file or a database, and has no entropy of its own: hosts
//! (the native agent, the browser, a wasm plugin) pass those in (randomness as bytes, or as the
//! seed of [`Rng`]). It is `#![no_std]` with `alloc`.
//!
//! # Inputs → report
//!
//! ```
//! use ttn_telemetry_core::*;
//!
//! // 1. The host resolves the UID elements from its configuration (SPEC §3 fallback included).
//! let config = Config::default();
//! let elements = config.uid_elements();
//!
//! // 2. The host counts its database, using cut-offs from the database's own clock T.
//! let t = civil_to_unix_micros(2026, 3, 31, 12 * 3_600_000_000);
//! let cut = cutoffs(t).unwrap(); // 31 March → 28 February 2026, same time of day
//! assert_eq!(cut.last_month, civil_to_unix_micros(2026, 2, 28, 12 * 3_600_000_000));
//! let mut counts = EntitiesCount::default();
//! counts.gateways.total = 2;
//! counts.gateways.gateways_by_frequency_plan_id.insert("US_902_928_FSB_1".into(), 1);
//! counts.gateways.gateways_by_frequency_plan_id.insert("US_902_928_FSB_2".into(), 1);
//!
//! // 3. The core builds and checks the report; the bytes are what goes on the wire.
//! let inputs = Inputs {
//!     identity: Identity::Elements(elements),
//!     os: OsInfo {
//!         operating_system: "linux".into(),
//!         arch: "amd64".into(),
//!         binary_version: "0.1.0".into(),
//!         golang_version: "rustc 1.95.0".into(),
//!     },
//!     payload: Payload::Entities(counts),
//! };
//! let report = inputs.build().unwrap();
//! let bytes = report.to_bytes();
//! assert!(bytes.starts_with(br#"{"uid":""#));
//! assert!(bytes.windows(20).any(|w| w == br#""cli":null,"entities"#));
//!
//! // 4. Anyone can check the bytes: the collector parses them back, and digests match.
//! assert_eq!(parse_report(&bytes).unwrap(), report);
//! let header = content_digest(&bytes);
//! assert_eq!(parse_content_digest(&header), Some(sha256(&bytes)));
//!
//! // 5. What each field is: the writer notes every leaf's path and byte span as it writes,
//! //    and the table of meanings says why it is collected. Every face shows this view.
//! let view = report.field_view();
//! assert_eq!(view.bytes, bytes);
//! let total = view.fields.iter().find(|f| f.path == "entities_count.gateways.total").unwrap();
//! assert_eq!(view.text(total), "2");
//! assert!(total.doc.meaning.starts_with("Gateways that are not deleted"));
//! ```
//!
//! # Features
//! - `sign` (default): deployment keys and RFC 9421 signatures of deliveries (Ed25519, see
//!   [`SigningKey`] and [`verify_request`]).
//! - `std` (default): nothing beyond `alloc` today; it exists so that hosts can opt in to std
//!   conveniences without the core ever depending on them. Build with
//!   `--no-default-features` for bare-metal or `wasm32-unknown-unknown`.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod calendar;
mod config;
mod conninfo;
mod digest;
mod fields;
mod inputs;
mod json;
mod parse;
pub mod plugin_abi;
mod redact;
mod rng;
#[cfg(feature = "sign")]
mod sign;
mod uid;
mod wire;
mod write;

pub use calendar::{
    Cutoffs, MICROS_PER_DAY, OutOfRange, civil_from_days, civil_to_unix_micros, cutoffs,
    days_in_month, format_rfc3339, format_rfc3339_micros, is_leap_year,
};
pub use config::{
    Config, ConfigError, DurationError, Form, KEYS, KeySpec, LOCAL_ONLY_NOTE,
    REFERENCE_DEFAULT_REDIS_ADDRESS, RawValue, RedisSettings, Slot, do_not_track, env_var_name,
    format_duration, key_spec, parse_bool, parse_duration,
};
pub use conninfo::{ConninfoError, is_postgres_uri, parse_conninfo};
pub use digest::{content_digest, parse_content_digest, sha256, sha256_hex};
pub use fields::{FIELDS, FieldDoc, field_doc, field_meaning};
pub use inputs::{Identity, Inputs, InputsError, build_report_bytes};
pub use parse::{ReportError, limits, parse_report};
pub use redact::{MASK, mask_secrets, redact_uri, uri_secrets};
pub use rng::Rng;
#[cfg(feature = "sign")]
pub use sign::{
    COVERED_COMPONENTS, KeyFileError, PublicKey, ROTATION_LABEL, Request, SIGNATURE_LABEL,
    SignatureError, SignatureHeaders, SigningKey, Verified, signature_base, verify_request,
};
pub use uid::{
    IS_UID_LEN, MAX_UID_ELEMENT_BYTES, MAX_UID_ELEMENTS, UUID_LEN, UidError, compute_uid,
    is_valid_is_uid, is_valid_uuid, uuid_v4_from_bytes,
};
pub use wire::{
    AccountCounts, ActiveEndDevices, AliasUsage, CliUsage, CommandUsage, EndDeviceCounts,
    EntitiesCount, GatewayCounts, OsInfo, Payload, Report, Total, UserCounts,
};
pub use write::{Field, FieldView};

/// This crate's version, as reported by the wasm builds.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
