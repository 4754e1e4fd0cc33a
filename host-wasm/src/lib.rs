//! Browser face of the ttn-lw-telemetry core: a wasm-bindgen shim, built with
//! `wasm-bindgen --target web`.
//!
//! Every function maps JavaScript values to one core call and back; nothing here builds JSON,
//! hashes, or validates by itself (the Console widget must show exactly what the agent sends,
//! so there is one implementation: `ttn-telemetry-core`). Errors from the core become a
//! JavaScript `Error` through [`into_error`], carrying the core's own message.
//!
//! The TypeScript declarations are written by hand (below, in `TS_DECLARATIONS`) instead of
//! generated, so that they say what the values mean (`Uint8Array` of wire bytes, the shape of a
//! field row or of a report's field view) and stay stable when the Rust signatures change shape. The generated functions
//! are marked `skip_typescript`; `web-preview/test/types/check.ts` type-checks a consumer
//! against the generated package.
//!
//! On a non-wasm target this crate still compiles (so `cargo clippy --workspace` and
//! `cargo test --workspace` cover it) but its functions need a JavaScript host to run.

// In the browser the crate is `no_std`: std's panic machinery (message formatting for a
// stderr that does not exist) costs kilobytes. A panic traps, like `panic = "abort"` would.
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Display;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

// The hand-written TypeScript declarations of this module's exports.
#[wasm_bindgen(typescript_custom_section)]
const TS_DECLARATIONS: &str = r#"
/** One row of the core's table of field meanings, in wire order. */
export interface FieldDoc {
  /** Dotted path of the field in the report, e.g. `entities_count.gateways.total`. */
  readonly path: string;
  /** One sentence: what the value is and why it is collected. */
  readonly meaning: string;
}

/**
 * Builds the exact wire bytes of a report from plain-inputs JSON (the core's `Inputs`).
 * Pass the JSON text itself: counts are 64-bit and would lose precision as JS numbers.
 * @throws Error with the core's message when the inputs are malformed or the report invalid.
 */
export function buildReport(inputsJson: string): Uint8Array;

/** One leaf field of a report, as the core's writer wrote it. */
export interface ReportField {
  /** Where it is: keys joined by `.`, array items as `[i]`; a map entry's key as it is. */
  readonly path: string;
  /** Its exact wire text (a string keeps its quotes and escapes). */
  readonly text: string;
  /** Byte offset of that text in the report bytes. */
  readonly start: number;
  /** Byte offset just past it. */
  readonly end: number;
  /** The path of the table row that describes it (a map entry's or array item's collection). */
  readonly doc: string;
  /** That row's meaning: what the value is and why it is collected. */
  readonly meaning: string;
}

/** A report's exact bytes and every leaf field in them, in wire order. */
export interface ReportView {
  /** The exact wire bytes (equal to `buildReport`'s). */
  readonly bytes: Uint8Array;
  /** The report's UID, as a plain string. */
  readonly uid: string;
  /** Every leaf, in the order its bytes appear. */
  readonly fields: ReportField[];
}

/**
 * Builds the report from plain-inputs JSON and returns its field view: what to show, with no
 * JSON to read back.
 * @throws Error with the core's message when the inputs are malformed or the report invalid.
 */
export function buildReportView(inputsJson: string): ReportView;

/**
 * Computes a deployment UID: base64(SHA-512(e1 + ":" + … + en + ":")).
 * @throws Error when every element is empty, or there are too many or too long elements.
 */
export function computeUid(elements: string[]): string;

/** The core's table of field meanings, in wire order. */
export function fields(): FieldDoc[];

/** SHA-256 of `bytes` as 64 lowercase hex digits. */
export function sha256Hex(bytes: Uint8Array): string;

/** The core's version. */
export function version(): string;
"#;

/// The single place where a core error becomes a JavaScript `Error`.
pub fn into_error<E: Display>(error: E) -> JsError {
    JsError::new(&error.to_string())
}

/// `buildReport(inputsJson)`: core `build_report_bytes`.
#[wasm_bindgen(js_name = buildReport, skip_typescript)]
pub fn build_report(inputs_json: &str) -> Result<Vec<u8>, JsError> {
    ttn_telemetry_core::build_report_bytes(inputs_json.as_bytes()).map_err(into_error)
}

/// `buildReportView(inputsJson)`: core `Inputs::from_json`, `build`, `Report::field_view`, as a
/// plain `{bytes, uid, fields: [{path, text, start, end, doc, meaning}]}` object.
#[wasm_bindgen(js_name = buildReportView, skip_typescript)]
pub fn build_report_view(inputs_json: &str) -> Result<JsValue, JsError> {
    let view = ttn_telemetry_core::Inputs::from_json(inputs_json.as_bytes())
        .and_then(|i| i.build())
        .map_err(into_error)?
        .field_view();
    let fields = Array::new();
    for f in &view.fields {
        fields.push(&object(&[
            ("path", f.path.as_str().into()),
            ("text", view.text(f).into()),
            ("start", (f.span.start as f64).into()),
            ("end", (f.span.end as f64).into()),
            ("doc", f.doc.path.into()),
            ("meaning", f.doc.meaning.into()),
        ])?);
    }
    object(&[
        ("bytes", Uint8Array::from(view.bytes.as_slice()).into()),
        ("uid", view.uid.as_str().into()),
        ("fields", fields.into()),
    ])
}

/// `computeUid(elements)`: core `compute_uid`.
#[wasm_bindgen(js_name = computeUid, skip_typescript)]
pub fn compute_uid(elements: Vec<String>) -> Result<String, JsError> {
    ttn_telemetry_core::compute_uid(&elements).map_err(into_error)
}

/// `fields()`: core `FIELDS` as an array of plain `{path, meaning}` objects.
#[wasm_bindgen(skip_typescript)]
pub fn fields() -> Result<Array, JsError> {
    let rows = Array::new();
    for f in ttn_telemetry_core::FIELDS {
        rows.push(&object(&[
            ("path", f.path.into()),
            ("meaning", f.meaning.into()),
        ])?);
    }
    Ok(rows)
}

/// `sha256Hex(bytes)`: core `sha256_hex`.
#[wasm_bindgen(js_name = sha256Hex, skip_typescript)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    ttn_telemetry_core::sha256_hex(bytes)
}

/// `version()`: core `VERSION`.
#[wasm_bindgen(skip_typescript)]
pub fn version() -> String {
    ttn_telemetry_core::VERSION.into()
}

/// A plain object with these members. `Reflect::set` on a fresh plain object cannot fail in
/// practice; if it does, say so.
fn object(members: &[(&str, JsValue)]) -> Result<JsValue, JsError> {
    let o = Object::new();
    for (key, value) in members {
        Reflect::set(&o, &(*key).into(), value)
            .map_err(|_| into_error("could not build a plain object"))?;
    }
    Ok(o.into())
}

#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
