//! Build and platform facts for the report's `os` object.

use ttn_telemetry_core::OsInfo;

/// The compiler that built this binary (`rustc X.Y.Z`), captured by `build.rs`.
pub const RUSTC_VERSION: &str = env!("TTN_RUSTC_VERSION");

/// This package's version, the report's `os.binary_version`.
pub const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The facts of the running binary, with Go's names for OS and architecture (SPEC §2).
pub fn os_info() -> OsInfo {
    let arch = std::env::consts::ARCH;
    // Rust has one `powerpc64` for both byte orders; Go names the little-endian one `ppc64le`.
    let arch = if arch == "powerpc64" && cfg!(target_endian = "little") {
        "ppc64le"
    } else {
        OsInfo::go_arch_name(arch)
    };
    OsInfo {
        operating_system: OsInfo::go_os_name(std::env::consts::OS).to_owned(),
        arch: arch.to_owned(),
        binary_version: BINARY_VERSION.to_owned(),
        golang_version: RUSTC_VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_use_go_names_and_the_building_compiler() {
        let os = os_info();
        assert_eq!(os.binary_version, env!("CARGO_PKG_VERSION"));
        let mut words = os.golang_version.split(' ');
        assert_eq!(words.next(), Some("rustc"));
        let version = words.next().unwrap();
        assert_eq!(version.split('.').count(), 3, "{version}");
        assert!(words.next().is_none());
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(
            (os.operating_system.as_str(), os.arch.as_str()),
            ("linux", "amd64")
        );
    }
}
