//! `preview [--pretty] [--plugin FILE]`: counts now and prints the exact body that would be
//! sent. Sends nothing. With `--plugin` (feature `plugin`) the bytes are built by the core's
//! wasm plugin module under wasmtime instead of the compiled-in core: the same bytes.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::config::Loaded;
use crate::inputs::gather;
use crate::redact::note;

/// Counts the configured database and prints the report the core builds: the wire bytes and a
/// newline, or with `pretty` an indented form for people (and a note on stderr that it is not
/// the wire form). When telemetry is off the report is still shown, and stderr says that
/// nothing is sent. With `plugin`, the bytes come from that wasm module (see
/// [`crate::plugin`]).
pub fn run(
    loaded: &Loaded,
    pretty: bool,
    plugin: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let gathered = gather(&loaded.config)?;
    let bytes = match plugin {
        Some(path) => through_plugin(path, &gathered.inputs.to_json())?,
        None => gathered
            .inputs
            .build()
            .context("building the report from the counted inputs")?
            .to_bytes(),
    };
    if pretty {
        note(
            "note: indented for people; the wire form is the compact line that `preview` prints without --pretty",
        );
        writeln!(out, "{}", pretty_json(&bytes)).context("writing to standard output")?;
    } else {
        out.write_all(&bytes)
            .and_then(|()| out.write_all(b"\n"))
            .context("writing to standard output")?;
    }
    match loaded.config.off_reason() {
        Some(reason) => note(&format!("telemetry is off ({reason}): nothing is sent")),
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

/// Indents compact JSON by two spaces per level, keeping every token (and so the key order
/// and escaping) exactly as the core wrote it.
pub fn pretty_json(compact: &[u8]) -> String {
    let text = String::from_utf8_lossy(compact);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty_json;

    #[test]
    fn pretty_keeps_tokens_and_order() {
        let compact = br#"{"b":{"x":[1,2],"e":{},"s":"a,b:{\"c\"}"},"a":null}"#;
        let want = "{\n  \"b\": {\n    \"x\": [\n      1,\n      2\n    ],\n    \"e\": {},\n    \"s\": \"a,b:{\\\"c\\\"}\"\n  },\n  \"a\": null\n}";
        let got = pretty_json(compact);
        assert_eq!(got, want);
        let squeezed: String = got
            .split('\n')
            .map(str::trim_start)
            .collect::<String>()
            .replace("\": ", "\":");
        assert_eq!(squeezed.as_bytes(), compact);
    }
}
