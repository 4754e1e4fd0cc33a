//! Plain inputs: everything a report is built from.
//!
//! The agent serves this type to the Console, the browser and plugin builds accept it, and
//! `ttn-lw-telemetry report --inputs FILE` reads it. The core reads it with its own parser
//! ([`Inputs::from_json`]) and writes it with the report's writer ([`Inputs::to_json`]); no
//! serde. Its JSON form is the report's own shape,
//! except that the identity is either `uid_elements` (the core computes the UID) or a ready
//! `uid`:
//!
//! ```json
//! {"uid_elements":["foo","bar"],"os":{…},"entities_count":{…}}
//! {"uid":"0b6f…-…","os":{…},"cli":{"commands":[…],"aliases":[…]}}
//! {"uid":"0b6f…-…","os":{…},"cli":{}}
//! ```
//!
//! `"cli":{}` is a CLI report without usage data ([`Payload::CliWithoutUsage`]), the form the
//! reference ttn-lw-cli sends.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::parse::ReportError;
use crate::uid::{UidError, compute_uid};
use crate::wire::{CliUsage, EntitiesCount, OsInfo, Payload, Report};
use crate::write::{Writer, write_cli, write_entities, write_os};

/// Where a report's UID comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Elements hashed into an IS deployment UID (SPEC §3). These are the elements actually
    /// used, after the fallback to the Console base URLs (see [`crate::Config::uid_elements`]).
    Elements(Vec<String>),
    /// A ready UID, such as a CLI installation's UUID.
    Uid(String),
}

/// Everything a report is built from. See the module docs for the JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// UID elements or a ready UID.
    pub identity: Identity,
    /// Build and platform facts.
    pub os: OsInfo,
    /// Entity counts or CLI usage.
    pub payload: Payload,
}

/// Why plain inputs could not become a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputsError {
    /// The JSON is malformed or does not have the inputs' shape; names the field.
    Invalid(ReportError),
    /// Neither or both of `uid_elements` and `uid`.
    Identity,
    /// Neither or both of `entities_count` and `cli`.
    Payload,
    /// The UID elements were refused.
    Uid(UidError),
    /// The report built from the inputs is not valid.
    Report(ReportError),
}

impl fmt::Display for InputsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputsError::Invalid(e) => write!(f, "inputs: {e}"),
            InputsError::Identity => {
                f.write_str("inputs: give exactly one of `uid_elements` and `uid`")
            }
            InputsError::Payload => {
                f.write_str("inputs: give exactly one of `entities_count` and `cli`")
            }
            InputsError::Uid(e) => write!(f, "inputs: {e}"),
            InputsError::Report(e) => write!(f, "inputs: {e}"),
        }
    }
}

impl core::error::Error for InputsError {}

impl From<UidError> for InputsError {
    fn from(e: UidError) -> Self {
        InputsError::Uid(e)
    }
}

impl From<ReportError> for InputsError {
    fn from(e: ReportError) -> Self {
        InputsError::Report(e)
    }
}

impl Inputs {
    /// Parses plain inputs from JSON, with the report parser's limits and typed errors.
    ///
    /// `null` for `uid_elements`, `uid`, `entities_count` or `cli` means absent.
    pub fn from_json(json: &[u8]) -> Result<Inputs, InputsError> {
        crate::parse::parse_inputs(json)
    }

    /// The plain inputs as compact JSON, in the key order of the module docs. Counts are exact
    /// JSON integers (readers must not round them through floating point).
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::with_capacity(512), false);
        w.object(|w| {
            match &self.identity {
                Identity::Elements(elements) => {
                    w.member("uid_elements", |w| w.array(elements, |w, e| w.string(e)))
                }
                Identity::Uid(uid) => w.member("uid", |w| w.string(uid)),
            }
            w.member("os", |w| write_os(w, &self.os));
            match &self.payload {
                Payload::Entities(e) => w.member("entities_count", |w| write_entities(w, e)),
                Payload::Cli(c) => w.member("cli", |w| write_cli(w, c)),
                Payload::CliWithoutUsage => w.member("cli", |w| w.object(|_| {})),
            }
        });
        w.finish().0
    }

    /// Builds the report: computes the UID if needed, then validates the result.
    pub fn build(&self) -> Result<Report, InputsError> {
        let uid = match &self.identity {
            Identity::Elements(e) => compute_uid(e)?,
            Identity::Uid(u) => u.clone(),
        };
        let report = Report {
            uid,
            os: self.os.clone(),
            payload: self.payload.clone(),
        };
        report.validate()?;
        Ok(report)
    }
}

/// Builds the exact report bytes from plain-inputs JSON: the one call the thin hosts make.
///
/// ```
/// let inputs = br#"{"uid_elements":["foo","bar"],
///   "os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},
///   "entities_count":{"gateways":{"total":1,"gateways_by_frequency_plan_id":{"EU_863_870":1}},
///     "end_devices":{"total":0,"activate_end_devices":{"total":0,"last_day":0,"last_week":0,"last_month":0}},
///     "applications":{"total":0},"accounts":{"users":{"standard":0,"admin":1},"organizations":{"total":0}}}}"#;
/// let bytes = ttn_telemetry_core::build_report_bytes(inputs).unwrap();
/// assert!(bytes.starts_with(br#"{"uid":"wBs9NNSl"#));
/// assert!(bytes.ends_with(br#""organizations":{"total":0}}}}"#));
/// ```
pub fn build_report_bytes(inputs_json: &[u8]) -> Result<Vec<u8>, InputsError> {
    Ok(Inputs::from_json(inputs_json)?.build()?.to_bytes())
}

/// The flat shape of plain inputs as the parser reads it, before the one-of checks.
pub(crate) struct InputsRepr {
    pub(crate) uid_elements: Option<Vec<String>>,
    pub(crate) uid: Option<String>,
    pub(crate) os: OsInfo,
    pub(crate) entities_count: Option<EntitiesCount>,
    pub(crate) cli: Option<CliRepr>,
}

/// The `cli` member of plain inputs: usage lists, or `{}` (no usage, as the reference CLI sends).
pub(crate) enum CliRepr {
    /// `{"commands":[…],"aliases":[…]}`.
    Usage(CliUsage),
    /// `{}`.
    WithoutUsage,
}

impl TryFrom<InputsRepr> for Inputs {
    type Error = InputsError;

    fn try_from(r: InputsRepr) -> Result<Self, InputsError> {
        let identity = match (r.uid_elements, r.uid) {
            (Some(e), None) => Identity::Elements(e),
            (None, Some(u)) => Identity::Uid(u),
            _ => return Err(InputsError::Identity),
        };
        let payload = match (r.entities_count, r.cli) {
            (Some(e), None) => Payload::Entities(e),
            (None, Some(CliRepr::Usage(c))) => Payload::Cli(c),
            (None, Some(CliRepr::WithoutUsage)) => Payload::CliWithoutUsage,
            _ => return Err(InputsError::Payload),
        };
        Ok(Inputs {
            identity,
            os: r.os,
            payload,
        })
    }
}
