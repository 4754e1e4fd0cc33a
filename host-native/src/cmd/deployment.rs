//! `collected`, `forget` and `rotate-key`: what the collector holds about this deployment, its
//! erasure, and a new deployment key (issue 14 §2 and §3). Each sends one request signed with
//! the deployment key (see [`crate::signing`]) to the collector of `telemetry.target`:
//!
//! | command | request |
//! |---|---|
//! | `collected` | `GET /api/v1/deployments/{uid}` |
//! | `forget` | `DELETE /api/v1/deployments/{uid}` |
//! | `rotate-key` | `POST /api/v1/deployments/{uid}/key` with `{"keyid":"<new>"}`, signed by the current key (`ttn`) and the new one (`ttn-new`) |
//!
//! The URL is `telemetry.target` with its last path segment (`collect`) replaced by
//! `api/v1/deployments/{uid}`, the uid percent-encoded (an Identity Server uid is base64, with
//! `/`, `+` and `=`). The answer (JSON) is printed as received, indented; a refusal is an
//! error with the collector's message (exit code 1). `rotate-key` keeps the new key where the
//! old one was (the key file, or Redis and the state directory) once the collector accepted
//! it; running agents load it before their next report.
//!
//! With telemetry off (`DO_NOT_TRACK`, `telemetry.enable: false`, …) or local-only, each
//! refuses with one line saying why, and opens no connection: off means no connection, even
//! for a request the operator types.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use ttn_telemetry_core::{ROTATION_LABEL, SigningKey, compute_uid, content_digest, redact_uri};

use crate::config::Loaded;
use crate::deliver::{self, DeliverConfig};

/// Which request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `collected`.
    Collected,
    /// `forget`.
    Forget,
    /// `rotate-key`.
    RotateKey,
}

/// The URL of this deployment's resource at the collector of `target`.
pub fn deployment_url(target: &str, uid: &str) -> String {
    let (base, _) = target.split_once('?').unwrap_or((target, ""));
    let base = base.trim_end_matches('/');
    let base = match base.rsplit_once('/') {
        Some((head, _))
            if head.contains("://") && head.find("://").map(|i| i + 3) < Some(head.len()) =>
        {
            head
        }
        _ => base,
    };
    let mut enc = String::new();
    for b in uid.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{base}/api/v1/deployments/{enc}")
}

/// Runs one of the commands.
impl Action {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Collected => "collected",
            Action::Forget => "forget",
            Action::RotateKey => "rotate-key",
        }
    }
}

pub fn run(loaded: &Loaded, action: Action, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = &loaded.config;
    // Every way of saying off means no connection (SPEC §5), for these commands too: they
    // refuse, saying why, before a key is read or a socket opened. To ask the collector, turn
    // telemetry on for the one command (e.g. `--telemetry.enable=true`, without DO_NOT_TRACK).
    if let Some(reason) = c.off_reason() {
        anyhow::bail!(
            "telemetry is off ({reason}): `{}` opens no connection to the collector",
            action.name()
        );
    }
    if c.local_only() {
        anyhow::bail!(
            "local only: reports are kept here and never sent, and `{}` opens no connection to the collector",
            action.name()
        );
    }
    let uid = compute_uid(&c.uid_elements()).context("computing the UID")?;
    let key = crate::signing::existing_key(c)?;
    let url = deployment_url(&c.target, &uid);
    let shown = redact_uri(&url);
    let cfg = DeliverConfig {
        attempt_timeout: Duration::from_secs(60),
        ..DeliverConfig::new(url.clone())
    };
    let agent = deliver::agent(&cfg);
    let now = std::time::SystemTime::now();
    let (status, body) = match action {
        Action::Collected | Action::Forget => {
            let method = if action == Action::Forget {
                "DELETE"
            } else {
                "GET"
            };
            let digest = content_digest(b"");
            let h = deliver::sign(method, &url, &digest, &key, now);
            let req = if action == Action::Forget {
                agent.delete(&url)
            } else {
                agent.get(&url)
            };
            let resp = req
                .header("Content-Digest", &digest)
                .header("Signature-Input", h.input)
                .header("Signature", h.signature)
                .call();
            read(resp, &shown)?
        }
        Action::RotateKey => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let new = SigningKey::from_seed(&seed);
            // Kept before the collector is asked, so that a key the collector pinned is never
            // lost: if keeping it in place fails afterwards, it is still here.
            let pending = std::path::Path::new(&c.state_dir).join("signing-key.pem.pending");
            let _ = std::fs::remove_file(&pending);
            crate::signing::create_key_file(&pending, &new)?;
            let body = serde_json::json!({ "keyid": new.keyid() }).to_string();
            let digest = content_digest(body.as_bytes());
            let old_sig = deliver::sign("POST", &url_key(&url), &digest, &key, now);
            let new_sig = new.sign_request_as(
                ROTATION_LABEL,
                &ttn_telemetry_core::Request {
                    method: "POST",
                    target_uri: &url_key(&url),
                    content_digest: &digest,
                },
                created(now),
            );
            let resp = agent
                .post(url_key(&url))
                .header("Content-Type", "application/json")
                .header("Content-Digest", &digest)
                .header(
                    "Signature-Input",
                    format!("{}, {}", old_sig.input, new_sig.input),
                )
                .header(
                    "Signature",
                    format!("{}, {}", old_sig.signature, new_sig.signature),
                )
                .send(body.as_bytes());
            let answer = read(resp, &shown);
            if matches!(answer, Ok((200, _))) {
                crate::signing::replace_key(c, &new).with_context(|| {
                    format!(
                        "the collector pinned the new key {} but it could not be put in place \
                         of the old one: it is kept in {}",
                        new.keyid(),
                        pending.display()
                    )
                })?;
            }
            let _ = std::fs::remove_file(&pending);
            answer?
        }
    };
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    if status != 200 {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        anyhow::bail!("{shown} answered HTTP {status}: {msg}");
    }
    let text = pretty.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    writeln!(out, "{text}").context("writing to standard output")?;
    Ok(())
}

fn url_key(url: &str) -> String {
    format!("{url}/key")
}

fn created(now: std::time::SystemTime) -> i64 {
    now.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The status and body of a response (at most 64 MiB: a deployment's reports are a few KiB a
/// day).
fn read(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    shown: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut resp = resp.with_context(|| format!("sending to {shown}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {shown}"))?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_replace_the_last_segment() {
        assert_eq!(
            deployment_url("https://t.example/collect", "a/b+c="),
            "https://t.example/api/v1/deployments/a%2Fb%2Bc%3D"
        );
        assert_eq!(
            deployment_url("http://127.0.0.1:9/x/collect", "u"),
            "http://127.0.0.1:9/x/api/v1/deployments/u"
        );
        assert_eq!(
            deployment_url("https://t.example", "u"),
            "https://t.example/api/v1/deployments/u"
        );
    }
}
