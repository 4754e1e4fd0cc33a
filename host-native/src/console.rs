//! The Console telemetry page (SPEC §8, issue 5) as the admin listener serves it under
//! `/console/telemetry/`: the `<ttn-telemetry-preview>` widget of `web-preview/`.
//!
//! | path | file |
//! |---|---|
//! | `` / `index.html` | `web-preview/index.html` |
//! | `src/ttn-telemetry-preview.js` | the element |
//! | `pkg/…` | the wasm-bindgen output of the core (`.wasm` as `application/wasm`) |
//!
//! The page and its scripts are compiled into the binary. `pkg/` is build output of
//! `scripts/wasm-build.sh`, not committed: the build script embeds it when
//! `web-preview/pkg/` exists at build time. A binary built without it still serves the page,
//! which then says in words that the widget's assets are missing (and `pkg/` paths answer 404
//! saying the same), instead of a widget that silently fails to load.

use std::borrow::Cow;

use crate::admin::{Asset, ConsoleAssets};

mod built {
    include!(concat!(env!("OUT_DIR"), "/console_pkg.rs"));
}

const INDEX: &str = include_str!("../../web-preview/index.html");
const ELEMENT: &str = include_str!("../../web-preview/src/ttn-telemetry-preview.js");

/// The element's tag in the page, replaced by a notice when `pkg/` is missing.
const WIDGET: &str = "<ttn-telemetry-preview></ttn-telemetry-preview>";

/// What the page says when this binary has no widget assets.
pub const MISSING: &str = "The telemetry widget's wasm assets (web-preview/pkg) were not built \
into this agent: run scripts/wasm-build.sh, then rebuild ttn-lw-telemetry. The plain inputs, \
report and SHA-256 are still at /api/v1/telemetry/inputs and /api/v1/telemetry/report.";

/// The Console page compiled into this binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedConsole;

impl EmbeddedConsole {
    /// Whether the wasm-bindgen output was embedded at build time.
    pub fn has_pkg(&self) -> bool {
        built::PKG.iter().any(|(name, _)| name.ends_with(".wasm"))
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

impl ConsoleAssets for EmbeddedConsole {
    fn get(&self, path: &str) -> Option<Asset> {
        let bytes: Cow<'static, [u8]> = match path {
            "" | "index.html" if self.has_pkg() => Cow::Borrowed(INDEX.as_bytes()),
            "" | "index.html" => Cow::Owned(
                INDEX
                    .replace(
                        WIDGET,
                        &format!("<p role=\"alert\"><strong>{MISSING}</strong></p>"),
                    )
                    .into_bytes(),
            ),
            "src/ttn-telemetry-preview.js" => Cow::Borrowed(ELEMENT.as_bytes()),
            p => {
                let name = p.strip_prefix("pkg/")?;
                let (_, b) = built::PKG.iter().find(|(n, _)| *n == name)?;
                Cow::Borrowed(*b)
            }
        };
        let content_type = if path.is_empty() {
            content_type("index.html")
        } else {
            content_type(path)
        };
        Some(Asset {
            content_type,
            bytes,
        })
    }

    fn missing(&self, path: &str) -> Option<String> {
        (path.starts_with("pkg/") && !self.has_pkg()).then(|| MISSING.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_scripts_and_types() {
        let c = EmbeddedConsole;
        let page = c.get("").unwrap();
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        let text = String::from_utf8(page.bytes.into_owned()).unwrap();
        assert!(text.contains("src/ttn-telemetry-preview.js"));
        assert_eq!(text.contains(WIDGET), c.has_pkg());
        assert_eq!(text.contains(MISSING), !c.has_pkg());
        let js = c.get("src/ttn-telemetry-preview.js").unwrap();
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert_eq!(js.bytes.as_ref(), ELEMENT.as_bytes());
        assert!(c.get("../Cargo.toml").is_none());
        assert!(c.get("src/../../Cargo.toml").is_none());
        match c.get("pkg/ttn_telemetry_wasm_bg.wasm") {
            Some(w) => {
                assert_eq!(w.content_type, "application/wasm");
                assert_eq!(&w.bytes[..4], b"\0asm");
            }
            None => assert!(c.missing("pkg/ttn_telemetry_wasm_bg.wasm").is_some()),
        }
    }
}
