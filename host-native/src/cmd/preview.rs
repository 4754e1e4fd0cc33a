//! `preview [--pretty] [--plugin FILE]`: counts now and prints the exact body that would be
//! sent. Sends nothing. With `--plugin` (feature `plugin`) the bytes are built by the core's
//! wasm plugin module under wasmtime instead of the compiled-in core: the same bytes.
//!
//! `--pretty` prints the core's field view instead ([`field_lines`]): each field's path, its
//! exact wire text and its meaning, the form `demo` shows too. It is for people, and stderr
//! says that it is not the wire form.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use ttn_telemetry_core::FieldView;

use crate::config::Loaded;
use crate::inputs::gather;
use crate::redact::note;

/// Counts the configured database and prints the report the core builds: the wire bytes and a
/// newline, or with `pretty` its field view for people (and a note on stderr that it is not
/// the wire form). When telemetry is off the report is still shown, and stderr says that
/// nothing is sent. With `plugin`, the bytes come from that wasm module (see
/// `crate::plugin`).
pub fn run(
    loaded: &Loaded,
    pretty: bool,
    plugin: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let gathered = gather(&loaded.config)?;
    let build = || {
        gathered
            .inputs
            .build()
            .context("building the report from the counted inputs")
    };
    if pretty {
        // The view comes from the compiled-in core; with --plugin, the plugin's own bytes
        // must be the same (the parity tests prove it), so it is checked, not trusted.
        let view = build()?.field_view();
        if let Some(path) = plugin {
            let bytes = through_plugin(path, &gathered.inputs.to_json())?;
            anyhow::ensure!(
                bytes == view.bytes,
                "the plugin {} built other bytes than the compiled-in core",
                path.display()
            );
        }
        note(
            "note: one line per field with its meaning, for people; the wire form is the compact line that `preview` prints without --pretty",
        );
        out.write_all(field_lines(&view, "").as_bytes())
            .context("writing to standard output")?;
    } else {
        let bytes = match plugin {
            Some(path) => through_plugin(path, &gathered.inputs.to_json())?,
            None => build()?.to_bytes(),
        };
        out.write_all(&bytes)
            .and_then(|()| out.write_all(b"\n"))
            .context("writing to standard output")?;
    }
    match loaded.config.off_reason() {
        Some(reason) => note(&format!("telemetry is off ({reason}): nothing is sent")),
        None if loaded.config.local_only() => note(&format!(
            "preview only: nothing was kept or sent; the agent keeps this every {} ({})",
            ttn_telemetry_core::format_duration(loaded.config.interval),
            ttn_telemetry_core::LOCAL_ONLY_NOTE
        )),
        None => note(&format!(
            "preview only: nothing was sent; the agent sends this to {} every {}",
            ttn_telemetry_core::redact_uri(&loaded.config.target),
            ttn_telemetry_core::format_duration(loaded.config.interval)
        )),
    }
    Ok(())
}

#[cfg(feature = "plugin")]
fn through_plugin(path: &Path, inputs_json: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut plugin = crate::plugin::Plugin::load(path)
        .with_context(|| format!("loading the plugin {}", path.display()))?;
    plugin
        .build_report(inputs_json)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("building the report with the plugin {}", path.display()))
}

#[cfg(not(feature = "plugin"))]
fn through_plugin(path: &Path, _inputs_json: &[u8]) -> anyhow::Result<Vec<u8>> {
    anyhow::bail!(
        "cannot use the plugin {}: this ttn-lw-telemetry was built without the `plugin` feature",
        path.display()
    )
}

/// The report's field view for people: one `path = wire text` line per leaf, each run of
/// fields that share a meaning followed by that meaning, indented by four more spaces. Every
/// line starts with `indent`. The paths, texts and meanings are the core's
/// ([`Report::field_view`](ttn_telemetry_core::Report::field_view)): nothing is read back from
/// the JSON.
pub fn field_lines(view: &FieldView, indent: &str) -> String {
    let mut out = String::new();
    let mut fields = view.fields.iter().peekable();
    while let Some(f) = fields.next() {
        out.push_str(&format!("{indent}{} = {}\n", f.path, view.text(f)));
        if fields.peek().is_none_or(|next| next.doc.path != f.doc.path) {
            out.push_str(&format!("{indent}    {}\n", f.doc.meaning));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field_lines;
    use ttn_telemetry_core::{EntitiesCount, Payload, Report};

    #[test]
    fn one_line_per_field_and_each_meaning_once_per_run() {
        let mut e = EntitiesCount::default();
        e.gateways.total = 2;
        for plan in ["A", "B"] {
            e.gateways
                .gateways_by_frequency_plan_id
                .insert(plan.into(), 1);
        }
        let report = Report {
            uid: "u".into(),
            os: crate::os::os_info(),
            payload: Payload::Entities(e),
        };
        let text = field_lines(&report.field_view(), "> ");
        let lines: Vec<&str> = text.lines().collect();
        let plan_meaning = ttn_telemetry_core::field_meaning(
            "entities_count.gateways.gateways_by_frequency_plan_id",
        )
        .unwrap();
        let at = lines
            .iter()
            .position(|l| l.ends_with("gateways_by_frequency_plan_id.A = 1"))
            .unwrap();
        assert_eq!(
            lines[at..at + 3],
            [
                "> entities_count.gateways.gateways_by_frequency_plan_id.A = 1",
                "> entities_count.gateways.gateways_by_frequency_plan_id.B = 1",
                &format!(">     {plan_meaning}"),
            ]
        );
        assert_eq!(lines[0], r#"> uid = "u""#);
        assert!(lines[1].starts_with(">     An anonymous deployment id"));
        // 18 leaves, 17 meanings (the two plans share one).
        assert_eq!(lines.len(), 18 + 17);
    }
}
