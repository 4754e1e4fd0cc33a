//! Plugin face of the ttn-lw-telemetry core: a wasm module that any wasm runtime can call
//! through a small JSON-in/JSON-out ABI, with no imports at all.
//!
//! Build it with
//! `cargo build -p ttn-telemetry-plugin --profile wasm --target wasm32-unknown-unknown`;
//! the module is `wasm32-unknown-unknown/wasm/ttn_telemetry_plugin.wasm`. The ABI table is in
//! `host-wasm/README.md`; in short:
//!
//! | export | signature | what it does |
//! |---|---|---|
//! | `memory` | memory | the module's linear memory |
//! | `ttn_abi_version` | `() -> i32` | [`ABI_VERSION`] |
//! | `ttn_alloc` | `(len: i32) -> i32` | allocates `len` bytes for an input (0 when `len` is 0) |
//! | `ttn_free` | `(ptr: i32, len: i32)` | frees what `ttn_alloc` returned |
//! | `ttn_build_report` | `(ptr: i32, len: i32) -> i32` | plain-inputs JSON → exact report bytes |
//! | `ttn_build_report_view` | `(ptr: i32, len: i32) -> i32` | plain-inputs JSON → the report's field view |
//! | `ttn_compute_uid` | `(ptr: i32, len: i32) -> i32` | JSON array of strings → `{"uid":"…"}` |
//! | `ttn_fields` | `() -> i32` | → `[{"path":"…","meaning":"…"},…]` |
//! | `ttn_version` | `() -> i32` | → `{"version":"…","abi":1}` |
//! | `ttn_output_ptr` / `ttn_output_len` | `() -> i32` | where the last call's output is |
//!
//! Each operation returns a status: [`STATUS_OK`] and the output holds the result, or
//! [`STATUS_ERROR`] and the output holds `{"error":"<the core's message>"}`. These numbers are
//! the core's ([`ttn_telemetry_core::plugin_abi`]), which the hosts that run a plugin read too. The output
//! belongs to the module and stays valid until the next operation.
//!
//! This crate uses `std` on `wasm32-unknown-unknown`: there std brings its own allocator
//! (dlmalloc) and a panic handler that traps, and imports nothing from the host, which is
//! the property hosts rely on (a plugin that imports nothing can do no I/O). The exports,
//! the allocator entry points and the output buffer live here, not in the core, so they never
//! clash with the wasm-bindgen crate. Like that crate it holds no logic: each export maps
//! bytes to one core call.

// The ABI is raw pointers into linear memory by nature; the unsafe code is confined to
// reading the input slice and to alloc/free, each with its safety contract documented.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;

use serde::Serialize;
use ttn_telemetry_core::plugin_abi::{ABI_VERSION, STATUS_ERROR, STATUS_OK};

thread_local! {
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: &'a str,
}

#[derive(Serialize)]
struct UidOut<'a> {
    uid: &'a str,
}

#[derive(Serialize)]
struct FieldOut {
    path: &'static str,
    meaning: &'static str,
}

#[derive(Serialize)]
struct VersionOut {
    version: &'static str,
    abi: i32,
}

/// Runs one operation: stores its output (or its error as JSON) and returns the status.
fn finish<E: core::fmt::Display>(result: Result<Vec<u8>, E>) -> i32 {
    let (status, bytes) = match result {
        Ok(bytes) => (STATUS_OK, bytes),
        Err(e) => (
            STATUS_ERROR,
            to_json(&ErrorOut {
                error: &e.to_string(),
            }),
        ),
    };
    OUTPUT.with(|o| *o.borrow_mut() = bytes);
    status
}

/// Serializes a plain value; these types cannot fail to serialize.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Plain-inputs JSON → exact report bytes (core `build_report_bytes`).
pub fn build_report(input: &[u8]) -> Result<Vec<u8>, String> {
    ttn_telemetry_core::build_report_bytes(input).map_err(|e| e.to_string())
}

/// Plain-inputs JSON → the report's field view as JSON (core `Report::field_view`,
/// `FieldView::to_json`).
pub fn build_report_view(input: &[u8]) -> Result<Vec<u8>, String> {
    let report = ttn_telemetry_core::Inputs::from_json(input)
        .and_then(|i| i.build())
        .map_err(|e| e.to_string())?;
    Ok(report.field_view().to_json())
}

/// JSON array of UID elements → `{"uid":"…"}` (core `compute_uid`).
pub fn compute_uid(input: &[u8]) -> Result<Vec<u8>, String> {
    let elements: Vec<String> = serde_json::from_slice(input)
        .map_err(|e| format!("uid elements: expected a JSON array of strings: {e}"))?;
    let uid = ttn_telemetry_core::compute_uid(&elements).map_err(|e| e.to_string())?;
    Ok(to_json(&UidOut { uid: &uid }))
}

/// The core's table of field meanings as JSON.
pub fn fields() -> Vec<u8> {
    let rows: Vec<FieldOut> = ttn_telemetry_core::FIELDS
        .iter()
        .map(|f| FieldOut {
            path: f.path,
            meaning: f.meaning,
        })
        .collect();
    to_json(&rows)
}

/// The core's version and this ABI's version as JSON.
pub fn version() -> Vec<u8> {
    to_json(&VersionOut {
        version: ttn_telemetry_core::VERSION,
        abi: ABI_VERSION,
    })
}

/// Borrows the input the host wrote into memory.
///
/// # Safety
/// `ptr..ptr+len` must be memory the host wrote (normally from [`ttn_alloc`]), or `len` 0.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `ptr..ptr+len` is initialised module memory.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// ABI: the version of this ABI.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_abi_version() -> i32 {
    ABI_VERSION
}

/// ABI: allocates `len` bytes (alignment 1) for the host to write an input into.
/// Returns 0 when `len` is 0; traps when memory is exhausted.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_alloc(len: usize) -> *mut u8 {
    match Layout::from_size_align(len, 1) {
        Ok(layout) if len > 0 => {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc(layout) };
            if ptr.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            ptr
        }
        _ => core::ptr::null_mut(),
    }
}

/// ABI: frees `len` bytes at `ptr` that [`ttn_alloc`] returned. A no-op when `len` is 0.
///
/// # Safety
/// `ptr` must come from `ttn_alloc(len)` with the same `len`, and not be freed twice.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ttn_free(ptr: *mut u8, len: usize) {
    if len == 0 || ptr.is_null() {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len, 1) {
        // SAFETY: the caller guarantees `ptr` came from `ttn_alloc` with this layout.
        unsafe { dealloc(ptr, layout) }
    }
}

/// ABI: builds the exact report bytes from plain-inputs JSON at `ptr..ptr+len`.
///
/// # Safety
/// See [`input`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ttn_build_report(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from this function's contract.
    finish(build_report(unsafe { input(ptr, len) }))
}

/// ABI: the field view of the report built from plain-inputs JSON at `ptr..ptr+len`.
///
/// # Safety
/// See [`input`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ttn_build_report_view(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from this function's contract.
    finish(build_report_view(unsafe { input(ptr, len) }))
}

/// ABI: computes the UID of the JSON array of elements at `ptr..ptr+len`.
///
/// # Safety
/// See [`input`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ttn_compute_uid(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from this function's contract.
    finish(compute_uid(unsafe { input(ptr, len) }))
}

/// ABI: the table of field meanings.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_fields() -> i32 {
    finish::<String>(Ok(fields()))
}

/// ABI: the core's version.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_version() -> i32 {
    finish::<String>(Ok(version()))
}

/// ABI: where the output of the last operation starts.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_output_ptr() -> *const u8 {
    OUTPUT.with(|o| o.borrow().as_ptr())
}

/// ABI: how many bytes the output of the last operation has.
#[unsafe(no_mangle)]
pub extern "C" fn ttn_output_len() -> usize {
    OUTPUT.with(|o| o.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> Vec<u8> {
        let (ptr, len) = (ttn_output_ptr(), ttn_output_len());
        // SAFETY: the output buffer is live until the next operation on this thread.
        unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec()
    }

    fn call(op: unsafe extern "C" fn(*const u8, usize) -> i32, input: &[u8]) -> (i32, Vec<u8>) {
        let ptr = ttn_alloc(input.len());
        // SAFETY: `ptr` has room for `input.len()` bytes, freed once below.
        unsafe {
            core::ptr::copy_nonoverlapping(input.as_ptr(), ptr, input.len());
            let status = op(ptr, input.len());
            ttn_free(ptr, input.len());
            (status, output())
        }
    }

    #[test]
    fn uid_through_the_abi_is_the_core_uid() {
        let (status, out) = call(ttn_compute_uid, br#"["foo","bar"]"#);
        assert_eq!(status, STATUS_OK);
        assert_eq!(
            out,
            br#"{"uid":"wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q=="}"#
        );
    }

    #[test]
    fn errors_come_back_as_json_with_the_core_message() {
        let (status, out) = call(ttn_compute_uid, br#"["",""]"#);
        assert_eq!(status, STATUS_ERROR);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["error"].as_str().unwrap().contains("all empty"), "{v}");
        let (status, out) = call(ttn_build_report, b"{not json");
        assert_eq!(status, STATUS_ERROR);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with(r#"{"error":"inputs: "#)
        );
        let (status, _) = call(ttn_compute_uid, b"");
        assert_eq!(status, STATUS_ERROR);
    }

    #[test]
    fn build_report_gives_the_core_bytes() {
        let inputs = br#"{"uid_elements":["foo","bar"],"os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},"entities_count":{"gateways":{"total":1,"gateways_by_frequency_plan_id":{"EU_863_870":1}},"end_devices":{"total":0,"activate_end_devices":{"total":0,"last_day":0,"last_week":0,"last_month":0}},"applications":{"total":0},"accounts":{"users":{"standard":0,"admin":1},"organizations":{"total":0}}}}"#;
        let (status, out) = call(ttn_build_report, inputs);
        assert_eq!(status, STATUS_OK);
        assert_eq!(out, ttn_telemetry_core::build_report_bytes(inputs).unwrap());
    }

    #[test]
    fn the_view_through_the_abi_is_the_core_view() {
        let inputs = br#"{"uid_elements":["foo","bar"],"os":{"operating_system":"linux","arch":"amd64","binary_version":"0.1.0","golang_version":"rustc 1.95.0"},"entities_count":{"gateways":{"total":1,"gateways_by_frequency_plan_id":{"EU<&>":1}},"end_devices":{"total":18446744073709551615,"activate_end_devices":{"total":0,"last_day":0,"last_week":0,"last_month":0}},"applications":{"total":0},"accounts":{"users":{"standard":0,"admin":1},"organizations":{"total":0}}}}"#;
        let (status, out) = call(ttn_build_report_view, inputs);
        assert_eq!(status, STATUS_OK);
        let view = ttn_telemetry_core::Inputs::from_json(inputs)
            .unwrap()
            .build()
            .unwrap()
            .field_view();
        assert_eq!(out, view.to_json());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["report"].as_str().unwrap().as_bytes(), view.bytes);
        assert_eq!(v["fields"][0]["path"], "uid");
        let (status, out) = call(ttn_build_report_view, b"{}");
        assert_eq!(status, STATUS_ERROR);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with(r#"{"error":"inputs: "#)
        );
    }

    #[test]
    fn fields_and_version_are_the_core_tables() {
        assert_eq!(ttn_fields(), STATUS_OK);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&output()).unwrap();
        assert_eq!(rows.len(), ttn_telemetry_core::FIELDS.len());
        assert_eq!(rows[0]["path"], "uid");
        assert_eq!(ttn_version(), STATUS_OK);
        let v: serde_json::Value = serde_json::from_slice(&output()).unwrap();
        assert_eq!(v["version"], ttn_telemetry_core::VERSION);
        assert_eq!(v["abi"], ABI_VERSION);
        assert_eq!(ttn_abi_version(), ABI_VERSION);
    }
}
