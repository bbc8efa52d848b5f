//! Finding QEMU and the programs the HIL tests run. Installing them is `cargo xtask`'s job
//! (xtask/src/system.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The emulator binary.
pub const QEMU: &str = "qemu-system-aarch64";
/// The environment variable that names the QEMU binary to use.
pub const QEMU_VARIABLE: &str = "E3_QEMU";

/// The QEMU to use: `$E3_QEMU`, else `qemu-system-aarch64` on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(QEMU_VARIABLE) {
        return Some(PathBuf::from(path));
    }
    find_on_path(QEMU)
}

/// A program on `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (installing, network namespaces and taps need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// QEMU's version line, for reports.
pub fn version(qemu: &Path) -> Option<String> {
    let output = Command::new(qemu).arg("--version").output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(str::to_owned)
}
