//! Finding QEMU, and installing it (with the tools the HIL tests use) on a fresh Debian machine.
//!
//! The install follows docs/firmware.md: `qemu-system-arm` from the release's backports suite
//! (the stable suite's older QEMU would make apt remove a newer `qemu-utils`), added to apt's
//! sources with the same mirror the main archive already uses, waiting for the dpkg lock if
//! another apt is running.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The emulator binary.
pub const QEMU: &str = "qemu-system-aarch64";
/// Debian packages the HIL tests need besides QEMU: `ip` for namespaces and taps, `ping`.
pub const TOOLS: [&str; 2] = ["iproute2", "iputils-ping"];
/// Where a missing backports source is written.
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/e3-backports.sources";
/// Seconds apt waits for another apt or dpkg to let go of the lock.
const LOCK_TIMEOUT_S: u32 = 600;

/// The QEMU to use: `$E3_QEMU`, else `qemu-system-aarch64` on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("E3_QEMU") {
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

/// Finds QEMU and the test tools, installing what is missing; explains what to do when it can't.
pub fn ensure_installed() -> Result<PathBuf> {
    let missing_tools: Vec<&str> = [("ip", TOOLS[0]), ("ping", TOOLS[1])]
        .into_iter()
        .filter(|(program, _)| find_on_path(program).is_none() && !in_sbin(program))
        .map(|(_, package)| package)
        .collect();
    if let (Some(qemu), true) = (find(), missing_tools.is_empty()) {
        return Ok(qemu);
    }
    let mut packages: Vec<&str> = missing_tools;
    if find().is_none() {
        packages.push("qemu-system-arm");
    }
    install(&packages)?;
    find().context("qemu-system-aarch64 is still not on PATH after installing qemu-system-arm")
}

fn in_sbin(program: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).is_file())
}

/// Installs Debian packages, QEMU from backports.
fn install(packages: &[&str]) -> Result<()> {
    let how = format!(
        "install them by hand: apt-get install -t <release>-backports {}",
        packages.join(" ")
    );
    if !Path::new("/etc/debian_version").exists() || find_on_path("apt-get").is_none() {
        bail!(
            "{} missing and this is not a Debian machine: {how}",
            packages.join(", ")
        );
    }
    if !is_root() {
        bail!(
            "{} missing and installing needs root: {how}",
            packages.join(", ")
        );
    }
    let codename = os_release_codename().context("no VERSION_CODENAME in /etc/os-release")?;
    let backports = format!("{codename}-backports");
    ensure_backports_source(&codename, &backports)?;
    eprintln!("installing {} (QEMU from {backports})", packages.join(" "));
    let lock = format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}");
    let mut update = Command::new("apt-get");
    update.args(["-o", &lock, "update", "-q"]);
    run(&mut update, &how)?;
    let mut apt = Command::new("apt-get");
    apt.env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "-o",
            &lock,
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
        ])
        .args(["-t", &backports])
        .args(packages);
    run(&mut apt, &how)
}

fn run(command: &mut Command, how: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status}); {how}");
    }
    Ok(())
}

fn os_release_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// Adds the backports suite to apt's sources unless a source already names it, reusing the
/// mirror and signing key of the source that serves the release itself.
fn ensure_backports_source(codename: &str, backports: &str) -> Result<()> {
    let sources = apt_sources();
    if sources
        .iter()
        .any(|(_, text)| text.split_whitespace().any(|word| word == backports))
    {
        return Ok(());
    }
    let (uri, signed_by) = sources
        .iter()
        .find_map(|(_, text)| release_mirror(text, codename))
        .with_context(|| {
            format!("no apt source serves {codename}: add {backports} to apt's sources by hand")
        })?;
    let mut entry = format!("Types: deb\nURIs: {uri}\nSuites: {backports}\nComponents: main\n");
    if let Some(key) = signed_by {
        entry.push_str(&format!("Signed-By: {key}\n"));
    }
    eprintln!("adding {backports} to apt's sources ({BACKPORTS_SOURCE})");
    fs::write(BACKPORTS_SOURCE, entry).with_context(|| format!("writing {BACKPORTS_SOURCE}"))
}

/// Every apt source file and its text.
fn apt_sources() -> Vec<(PathBuf, String)> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources")),
        );
    }
    files
        .into_iter()
        .filter_map(|path| fs::read_to_string(&path).ok().map(|text| (path, text)))
        .collect()
}

/// The mirror URI (and signing key) of the source that serves suite `codename`, from either
/// one-line (`deb URI SUITE COMPONENTS`) or deb822 (`URIs:` / `Suites:`) text.
fn release_mirror(text: &str, codename: &str) -> Option<(String, Option<String>)> {
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["deb", rest @ ..] = words.as_slice() {
            let rest: Vec<&str> = rest
                .iter()
                .copied()
                .filter(|w| !w.starts_with('['))
                .collect();
            if rest.len() >= 2 && rest[1] == codename {
                return Some((rest[0].to_owned(), None));
            }
        }
    }
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let serves =
            field("Suites:").is_some_and(|suites| suites.split_whitespace().any(|s| s == codename));
        if let (true, Some(uris)) = (serves, field("URIs:")) {
            let uri = uris.split_whitespace().next()?.to_owned();
            return Some((uri, field("Signed-By:")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_release_mirror_in_both_formats() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            release_mirror(deb822, "bookworm"),
            Some((
                "http://mirror.example/debian".to_owned(),
                Some("/usr/share/keyrings/k.gpg".to_owned())
            ))
        );
        let one_line = "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            release_mirror(one_line, "bookworm"),
            Some(("http://mirror.example/debian".to_owned(), None))
        );
        assert_eq!(release_mirror(one_line, "trixie"), None);
        assert_eq!(
            release_mirror(
                "deb http://mirror.example/debian bookworm-security main",
                "bookworm"
            ),
            None
        );
    }
}
