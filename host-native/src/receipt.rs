//! The receipt a collector of this project answers an accepted report with (SPEC §6): written by
//! the collector (`collect`) and read by delivery (`deliver::check_receipt`), so it is defined
//! once here, outside both features.

/// The receipt of an accepted report: what the collector writes and the agent's
/// [`deliver::check_receipt`](crate::deliver::check_receipt) reads (one type for both).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Always true in a receipt: the report is stored (now or before).
    pub stored: bool,
    /// SHA-256 of the body exactly as stored, lower-case hex.
    pub sha256: String,
    /// True when the same report was already stored, so nothing new was written. Absent (false)
    /// in receipts of older collectors.
    #[serde(default)]
    pub repeat: bool,
    /// The key id whose signature the collector checked and pinned for the report's uid (issue
    /// 14 §2); absent for an unsigned report, so its receipt is what it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}
