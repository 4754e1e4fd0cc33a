//! Builds reports through the core's wasm plugin module under wasmtime (feature `plugin`).
//!
//! The plugin is `host-wasm/plugin` (`ttn-telemetry-plugin`) built for
//! `wasm32-unknown-unknown`; its ABI is documented in `host-wasm/README.md`. The agent uses
//! this to build its reports with a module it did not compile itself (for example one shipped
//! by an operator with `--plugin FILE`), and the parity tests use it to prove the module gives
//! the native core's bytes.
//!
//! The module is instantiated with an empty linker: a module that imports anything (a clock, a
//! socket, WASI) fails to load, so a plugin can compute and nothing else. Its memory is capped
//! at [`MEMORY_LIMIT`] so that a bad module cannot take the host down.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use ttn_lw_telemetry::plugin::Plugin;
//! let mut plugin = Plugin::load(std::path::Path::new("ttn_telemetry_plugin.wasm"))?;
//! let bytes = plugin.build_report(&std::fs::read("inputs.json")?)?;
//! println!("{}", String::from_utf8_lossy(&bytes));
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use ttn_telemetry_core::plugin_abi::{ABI_VERSION, STATUS_ERROR, STATUS_OK};
use wasmtime::{
    Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc,
};

/// Most linear memory a plugin instance may grow to.
pub const MEMORY_LIMIT: usize = 64 << 20;

/// Why a plugin call gave no result.
#[derive(Debug)]
pub enum PluginError {
    /// The core in the plugin refused the input; the message is the core's.
    Refused(String),
    /// The module misbehaved: it trapped, broke the ABI, or ran out of memory.
    Runtime(anyhow::Error),
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::Refused(m) => write!(f, "plugin refused the input: {m}"),
            PluginError::Runtime(e) => write!(f, "plugin failed: {e:#}"),
        }
    }
}

impl std::error::Error for PluginError {}

impl From<anyhow::Error> for PluginError {
    fn from(e: anyhow::Error) -> Self {
        PluginError::Runtime(e)
    }
}

impl From<wasmtime::Error> for PluginError {
    fn from(e: wasmtime::Error) -> Self {
        PluginError::Runtime(e.into())
    }
}

/// Adds context to wasmtime's own error type on its way into `anyhow`.
trait WasmtimeContext<T> {
    fn ctx(self, what: &'static str) -> anyhow::Result<T>;
}

impl<T> WasmtimeContext<T> for wasmtime::Result<T> {
    fn ctx(self, what: &'static str) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::Error::from(e).context(what))
    }
}

/// One loaded and instantiated plugin module. Calls are sequential (`&mut self`).
pub struct Plugin {
    store: Store<StoreLimits>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), ()>,
    build_report: TypedFunc<(i32, i32), i32>,
    /// Absent from modules built before the export was added (same ABI version).
    build_report_view: Option<TypedFunc<(i32, i32), i32>>,
    compute_uid: TypedFunc<(i32, i32), i32>,
    fields: TypedFunc<(), i32>,
    version: TypedFunc<(), i32>,
    output_ptr: TypedFunc<(), i32>,
    output_len: TypedFunc<(), i32>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads, compiles and instantiates the plugin module in `path`.
    pub fn load(path: &Path) -> anyhow::Result<Plugin> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("reading plugin module {}", path.display()))?;
        Plugin::from_bytes(&wasm).with_context(|| format!("loading plugin {}", path.display()))
    }

    /// Compiles and instantiates a plugin module from its bytes.
    pub fn from_bytes(wasm: &[u8]) -> anyhow::Result<Plugin> {
        let engine = Engine::default();
        let module = Module::new(&engine, wasm).ctx("compiling the module")?;
        let limits = StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build();
        let mut store = Store::new(&engine, limits);
        store.limiter(|limits| limits);
        // An empty linker: the ABI allows no imports, so anything imported fails here.
        let instance: Instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .ctx("instantiating the module (a plugin may import nothing)")?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| anyhow!("the module exports no `memory`"))?;
        macro_rules! export {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .ctx(concat!("export `", $name, "`"))?
            };
        }
        let abi_version: TypedFunc<(), i32> = export!("ttn_abi_version");
        let abi = abi_version
            .call(&mut store, ())
            .ctx("calling `ttn_abi_version`")?;
        if abi != ABI_VERSION {
            bail!("the module speaks plugin ABI {abi}, this agent speaks {ABI_VERSION}");
        }
        Ok(Plugin {
            alloc: export!("ttn_alloc"),
            free: export!("ttn_free"),
            build_report: export!("ttn_build_report"),
            build_report_view: instance
                .get_typed_func(&mut store, "ttn_build_report_view")
                .ok(),
            compute_uid: export!("ttn_compute_uid"),
            fields: export!("ttn_fields"),
            version: export!("ttn_version"),
            output_ptr: export!("ttn_output_ptr"),
            output_len: export!("ttn_output_len"),
            memory,
            store,
        })
    }

    /// Exact report bytes from plain-inputs JSON (the core's `build_report_bytes`).
    pub fn build_report(&mut self, inputs_json: &[u8]) -> Result<Vec<u8>, PluginError> {
        let op = self.build_report.clone();
        self.call_with_input(op, inputs_json)
    }

    /// The report's field view as the plugin's JSON (`{"report","uid","fields":[…]}`, see
    /// `host-wasm/README.md`), from plain-inputs JSON.
    pub fn build_report_view(&mut self, inputs_json: &[u8]) -> Result<Vec<u8>, PluginError> {
        let op = self.build_report_view.clone().ok_or_else(|| {
            anyhow!("the module has no `ttn_build_report_view` export (built before it was added)")
        })?;
        self.call_with_input(op, inputs_json)
    }

    /// The deployment UID for `elements` (the core's `compute_uid`).
    pub fn compute_uid<S: AsRef<str>>(&mut self, elements: &[S]) -> Result<String, PluginError> {
        let elements: Vec<&str> = elements.iter().map(AsRef::as_ref).collect();
        let json = serde_json::to_vec(&elements).map_err(|e| anyhow!("uid elements: {e}"))?;
        let op = self.compute_uid.clone();
        let out = self.call_with_input(op, &json)?;
        serde_json::from_slice::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| v.get("uid")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                let text = String::from_utf8_lossy(&out);
                PluginError::Runtime(anyhow!("unexpected uid output: {text}"))
            })
    }

    /// The plugin's table of field meanings, as the JSON it returns.
    pub fn fields_json(&mut self) -> Result<Vec<u8>, PluginError> {
        let op = self.fields.clone();
        let status = op.call(&mut self.store, ())?;
        self.output(status)
    }

    /// The plugin's version JSON, `{"version":"…","abi":1}`.
    pub fn version_json(&mut self) -> Result<Vec<u8>, PluginError> {
        let op = self.version.clone();
        let status = op.call(&mut self.store, ())?;
        self.output(status)
    }

    fn call_with_input(
        &mut self,
        op: TypedFunc<(i32, i32), i32>,
        input: &[u8],
    ) -> Result<Vec<u8>, PluginError> {
        let len = i32::try_from(input.len()).map_err(|_| anyhow!("input too large"))?;
        let ptr = self.alloc.call(&mut self.store, len)?;
        if len > 0 {
            self.memory
                .write(&mut self.store, addr(ptr)?, input)
                .map_err(|e| anyhow!("writing the input: {e}"))?;
        }
        let status = op.call(&mut self.store, (ptr, len));
        self.free.call(&mut self.store, (ptr, len))?;
        self.output(status?)
    }

    fn output(&mut self, status: i32) -> Result<Vec<u8>, PluginError> {
        let ptr = self.output_ptr.call(&mut self.store, ())?;
        let len = self.output_len.call(&mut self.store, ())?;
        let mut out = vec![0; addr(len)?];
        self.memory
            .read(&self.store, addr(ptr)?, &mut out)
            .map_err(|e| anyhow!("reading the output: {e}"))?;
        match status {
            STATUS_OK => Ok(out),
            STATUS_ERROR => Err(PluginError::Refused(error_message(&out))),
            other => Err(PluginError::Runtime(anyhow!("unknown status {other}"))),
        }
    }
}

/// Wasm32 addresses are unsigned 32-bit values carried in `i32`.
fn addr(v: i32) -> anyhow::Result<usize> {
    usize::try_from(v as u32).map_err(|_| anyhow!("address out of range"))
}

/// The message of an `{"error":"…"}` output; the raw text when it is not that.
fn error_message(out: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(out)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_unescaped_from_the_envelope() {
        assert_eq!(error_message(br#"{"error":"a \"b\" \u003c"}"#), "a \"b\" <");
        assert_eq!(error_message(b"trap"), "trap");
    }

    #[test]
    fn a_module_that_imports_anything_is_refused() {
        // (module (import "env" "now" (func)) (memory (export "memory") 1))
        let wasm = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
            0x02, 0x0b, 0x01, 0x03, b'e', b'n', b'v', 0x03, b'n', b'o', b'w', 0x00,
            0x00, // import env.now
            0x05, 0x03, 0x01, 0x00, 0x01, // memory section: min 1
            0x07, 0x0a, 0x01, 0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02,
            0x00, // export memory
        ];
        let err = Plugin::from_bytes(&wasm).unwrap_err();
        assert!(format!("{err:#}").contains("may import nothing"), "{err:#}");
    }
}
