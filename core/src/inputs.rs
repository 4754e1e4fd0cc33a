//! Plain inputs: everything a report is built from, as one serde type.
//!
//! The agent serves this type to the Console, the browser and plugin builds accept it, and
//! `ttn-lw-telemetry report --inputs FILE` reads it. Its JSON form is the report's own shape,
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
use serde::{Deserialize, Serialize};

use crate::json::{write_key, write_str};
use crate::parse::ReportError;
use crate::uid::{UidError, compute_uid};
use crate::wire::{
    CliUsage, EntitiesCount, OsInfo, Payload, Report, write_cli, write_entities, write_os,
};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "InputsRepr", into = "InputsRepr")]
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
        let mut out = Vec::with_capacity(512);
        out.push(b'{');
        match &self.identity {
            Identity::Elements(elements) => {
                write_key(&mut out, "uid_elements");
                out.push(b'[');
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(&mut out, e);
                }
                out.push(b']');
            }
            Identity::Uid(uid) => {
                write_key(&mut out, "uid");
                write_str(&mut out, uid);
            }
        }
        out.push(b',');
        write_key(&mut out, "os");
        write_os(&mut out, &self.os);
        out.push(b',');
        match &self.payload {
            Payload::Entities(e) => {
                write_key(&mut out, "entities_count");
                write_entities(&mut out, e);
            }
            Payload::Cli(c) => {
                write_key(&mut out, "cli");
                write_cli(&mut out, c);
            }
            Payload::CliWithoutUsage => {
                write_key(&mut out, "cli");
                out.extend_from_slice(b"{}");
            }
        }
        out.push(b'}');
        out
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

/// The flat shape of plain inputs, shared by the serde impls and the core's own parser.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputsRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid_elements: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    pub(crate) os: OsInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) entities_count: Option<EntitiesCount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cli: Option<CliRepr>,
}

/// The `cli` member of plain inputs: usage lists, or `{}` (no usage, as the reference CLI sends).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum CliRepr {
    /// `{"commands":[…],"aliases":[…]}`.
    Usage(CliUsage),
    /// `{}`.
    WithoutUsage(NoFields),
}

/// An object with no members (`{}`), and nothing else.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFields {}

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
            (None, Some(CliRepr::WithoutUsage(_))) => Payload::CliWithoutUsage,
            _ => return Err(InputsError::Payload),
        };
        Ok(Inputs {
            identity,
            os: r.os,
            payload,
        })
    }
}

impl From<Inputs> for InputsRepr {
    fn from(i: Inputs) -> Self {
        let (uid_elements, uid) = match i.identity {
            Identity::Elements(e) => (Some(e), None),
            Identity::Uid(u) => (None, Some(u)),
        };
        let (entities_count, cli) = match i.payload {
            Payload::Entities(e) => (Some(e), None),
            Payload::Cli(c) => (None, Some(CliRepr::Usage(c))),
            Payload::CliWithoutUsage => (None, Some(CliRepr::WithoutUsage(NoFields {}))),
        };
        InputsRepr {
            uid_elements,
            uid,
            os: i.os,
            entities_count,
            cli,
        }
    }
}
