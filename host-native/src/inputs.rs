//! Gathering the plain inputs of the next report: configuration + database counts + OS facts.
//!
//! This is the one function the `preview` command, the daemon and the admin API call; the core
//! turns its result into bytes ([`Inputs::build`]). The host never builds report JSON itself.

use ttn_telemetry_core::{Config, EntitiesCount, Identity, Inputs, OsInfo, Payload};

use crate::count::{self, CountError};
use crate::os::os_info;

/// The plain inputs of one report and the database time `T` they were counted at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    /// Everything the core needs to build the report.
    pub inputs: Inputs,
    /// `T`, Unix microseconds (UTC), from the database's own clock.
    pub counted_at: i64,
}

/// Plain inputs from already known counts and OS facts. The identity is the UID elements in
/// use (SPEC §3 fallback applied), so the core computes the UID.
///
/// ```
/// use ttn_lw_telemetry::{inputs::from_counts, os::os_info};
/// use ttn_telemetry_core::{Config, EntitiesCount, compute_uid};
///
/// let config = Config::default();
/// let report = from_counts(&config, EntitiesCount::default(), os_info()).build().unwrap();
/// // No uid-elements configured: the five Console base URLs identify the deployment.
/// assert_eq!(report.uid, compute_uid(&["http://localhost:1885/api/v3"; 5]).unwrap());
/// assert!(report.to_bytes().ends_with(br#""organizations":{"total":0}}}}"#));
/// ```
pub fn from_counts(config: &Config, counts: EntitiesCount, os: OsInfo) -> Inputs {
    Inputs {
        identity: Identity::Elements(config.uid_elements()),
        os,
        payload: Payload::Entities(counts),
    }
}

/// Counts `is.database-uri` now and returns the inputs of the report that would be sent.
pub fn gather(config: &Config) -> Result<Gathered, CountError> {
    let counted = count::count(&config.database_uri)?;
    Ok(Gathered {
        inputs: from_counts(config, counted.counts, os_info()),
        counted_at: counted.at,
    })
}
