//! Debian packages the workspace links against, installed when missing (CI starts from a fresh
//! Debian machine): COIN-OR CBC, the MILP solver behind the ILP placer in host-lib.

use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::toolchain::run_checked;

/// Packages to install, and the pkg-config module that shows they are there.
const PACKAGES: [&str; 2] = ["coinor-libcbc-dev", "pkg-config"];
const PKG_CONFIG_MODULE: &str = "cbc";

/// Makes sure CBC and its pkg-config file are installed, installing them with apt-get when
/// they are not and we may.
pub fn ensure_packages() -> Result<()> {
    if cbc_installed() {
        return Ok(());
    }
    let packages = PACKAGES.join(" ");
    let advice = format!(
        "host-lib's ILP placer links COIN-OR CBC: install it with `sudo apt-get install {packages}` \
         (Debian/Ubuntu) or your system's CBC development package"
    );
    if !has_program("apt-get") {
        bail!("{advice}; apt-get is not available here");
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    eprintln!("installing {packages} (the MILP solver of the ILP placer)");
    let installed = run_checked(&mut apt(&["update", "-qq"]))
        .and_then(|()| run_checked(apt(&["install", "-y", "-qq"]).args(PACKAGES)));
    if let Err(error) = installed {
        bail!("{advice}; installing it failed: {error:#}");
    }
    if !cbc_installed() {
        bail!("{advice}; pkg-config still does not find `{PKG_CONFIG_MODULE}` after installing");
    }
    Ok(())
}

fn cbc_installed() -> bool {
    Command::new("pkg-config")
        .args(["--exists", PKG_CONFIG_MODULE])
        .status()
        .is_ok_and(|status| status.success())
}

fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
