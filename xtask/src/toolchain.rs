//! Finding and running the tools the tasks need: cargo, rustup and the workspace root.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The cross target the firmware is built for.
pub const FIRMWARE_TARGET: &str = "aarch64-unknown-none";

/// The workspace root.
pub use e3_tests::workspace_root;

/// A `cargo` command in the workspace root, using the cargo that runs us (`$CARGO`).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// Runs `command`, failing with its rendering when it does not exit successfully.
pub fn run_checked(command: &mut Command) -> Result<()> {
    let rendered = render(command);
    eprintln!("$ {rendered}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{rendered}`"))?;
    if !status.success() {
        bail!("`{rendered}` failed ({status})");
    }
    Ok(())
}

/// A command as a shell line, for messages.
pub fn render(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Makes sure the firmware's rustup target is installed (rust-toolchain.toml names it, but
/// rustup only installs it together with a toolchain it downloads).
pub fn ensure_firmware_target() -> Result<()> {
    let sysroot = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .current_dir(workspace_root())
        .args(["--print", "sysroot"])
        .output()
        .context("could not run rustc to find the sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(FIRMWARE_TARGET).exists() {
        return Ok(());
    }
    eprintln!("installing the rustup target {FIRMWARE_TARGET} (named in rust-toolchain.toml)");
    let mut rustup = Command::new("rustup");
    rustup
        .current_dir(workspace_root())
        .args(["target", "add", FIRMWARE_TARGET]);
    run_checked(&mut rustup).with_context(|| {
        format!("the firmware needs the {FIRMWARE_TARGET} target: install rustup, or run `rustup target add {FIRMWARE_TARGET}`")
    })
}
