//! Debian packages the tasks need, installed with apt when missing (CI starts from a fresh
//! Debian machine): COIN-OR CBC, the MILP solver host-lib's ILP placer runs; QEMU for the
//! emulated SmartNICs; and `ip` and `ping`, which only the HIL scenario with a Linux network
//! namespace needs.
//!
//! One installer serves them all: it runs apt-get as root (or through passwordless `sudo`),
//! waits for the dpkg lock while another apt or dpkg holds it, retries once after a fresh
//! `apt-get update` (an apt hook on some machines deletes downloaded packages after each dpkg
//! run), and when it cannot install says in one message what was needed, why, and the command
//! to run by hand. Its error ([`InstallError`]) tells a machine that cannot install at all (not
//! Debian, neither root nor passwordless sudo, the package archive out of reach) from an
//! install that was possible and failed: `cargo xtask ci` skips the HIL step only for the
//! first, and never when `CI=true`. QEMU comes from the release's backports suite (docs/user-guide.md): the
//! stable suite's older QEMU would make apt remove a newer `qemu-utils`. It is installed with
//! `apt-get install -t <release>-backports`, which lets apt take QEMU's own dependencies
//! (`qemu-system-common`, `qemu-system-data`) from backports too; the per-package form
//! `qemu-system-arm/<release>-backports` does not (checked on Debian 12: apt then wants
//! bookworm's `qemu-system-data` 7.2 and gives up with "unmet dependencies").

use std::fmt;
use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e3_tests::qemu;
use host_lib::control::ilp::cbc::Cbc;

use crate::toolchain::{render, run_checked};

mod sources;

use sources::{Format, Source};

/// How long the look at the package archive waits for a connection.
const ARCHIVE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds apt waits for another apt or dpkg to let go of the lock.
const LOCK_TIMEOUT_S: u32 = 600;
/// Where a missing backports source is written.
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/e3-backports.sources";
/// The package that brings CBC's program (`cbc`).
const CBC_PACKAGE: &str = "coinor-cbc";
/// The QEMU package (it brings `qemu-system-aarch64`).
const QEMU_PACKAGE: &str = "qemu-system-arm";
/// Programs the network-namespace HIL scenario runs, and their packages.
const NETNS_TOOLS: [(&str, &str); 2] = [("ip", "iproute2"), ("ping", "iputils-ping")];

/// Why packages are not there.
#[derive(Debug)]
pub enum InstallError {
    /// This machine cannot install packages: it is not Debian (no apt-get), the user is
    /// neither root nor allowed passwordless sudo, or apt failed with the package archive out
    /// of reach.
    CannotInstall(anyhow::Error),
    /// Installing was possible and failed, or what it installed does not work.
    Failed(anyhow::Error),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (InstallError::CannotInstall(why) | InstallError::Failed(why)) = self;
        write!(f, "{why:#}")
    }
}

impl std::error::Error for InstallError {}

/// Packages to install and why.
struct Request<'a> {
    /// What needs them, for messages.
    purpose: &'a str,
    /// The packages.
    packages: &'a [&'a str],
    /// Whether they come from the release's backports suite (`apt-get install -t SUITE`).
    backports: bool,
}

impl Request<'_> {
    /// The `apt-get install` arguments after the options: `-t SUITE` first when the packages
    /// come from `backports_suite`.
    fn arguments(&self, backports_suite: &str) -> Vec<String> {
        let suite = self
            .backports
            .then(|| ["-t".to_owned(), backports_suite.to_owned()]);
        suite
            .into_iter()
            .flatten()
            .chain(self.packages.iter().map(|package| package.to_string()))
            .collect()
    }

    /// The command a person would run instead.
    fn by_hand(&self) -> String {
        format!(
            "sudo apt-get install {}",
            self.arguments("<release>-backports").join(" ")
        )
    }

    /// The one failure message: what, why, the reason, and what to do.
    fn failure(&self, reason: impl std::fmt::Display) -> anyhow::Error {
        let from = if self.backports {
            " from backports"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{}{from} ({}) could not be installed: {reason}; install by hand: `{}`",
            self.packages.join(", "),
            self.purpose,
            self.by_hand()
        )
    }
}

/// Makes sure the CBC program host-lib's ILP placer will run starts.
pub fn ensure_cbc() -> Result<()> {
    if cbc_runs().is_ok() {
        return Ok(());
    }
    let request = Request {
        purpose: "COIN-OR CBC, the MILP solver host-lib's ILP placer runs",
        packages: &[CBC_PACKAGE],
        backports: false,
    };
    install(&request)?;
    cbc_runs().map_err(|why| request.failure(format!("{why} after installing")))
}

/// Finds QEMU, installing it when it is missing; returns its path. The error says why it
/// could not be installed, and whether this machine cannot install at all.
pub fn ensure_qemu() -> std::result::Result<PathBuf, InstallError> {
    if let Some(qemu) = qemu::find() {
        return Ok(qemu);
    }
    let request = Request {
        purpose: "QEMU for the emulated SmartNICs: hil, demo, flash",
        packages: &[QEMU_PACKAGE],
        backports: true,
    };
    install(&request)?;
    qemu::find().ok_or_else(|| {
        InstallError::Failed(request.failure(format!(
            "{} is still not on PATH after installing",
            qemu::QEMU
        )))
    })
}

/// Makes sure `ip` and `ping` are there for the network-namespace scenario, installing their
/// packages when they are missing; the error says why they are not.
pub fn ensure_netns_tools() -> Result<()> {
    let missing: Vec<&str> = NETNS_TOOLS
        .into_iter()
        .filter(|(program, _)| !has_program(program))
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let request = Request {
        purpose: "`ip` and `ping` for the network-namespace HIL scenario",
        packages: &missing,
        backports: false,
    };
    install(&request)?;
    match NETNS_TOOLS
        .iter()
        .find(|(program, _)| !has_program(program))
    {
        Some((program, _)) => Err(request.failure(format!("`{program}` is still missing"))),
        None => Ok(()),
    }
}

/// How apt-get runs here: directly as root, or through passwordless sudo; else why it cannot.
fn installer() -> std::result::Result<Vec<&'static str>, String> {
    if !Path::new("/etc/debian_version").exists() || qemu::find_on_path("apt-get").is_none() {
        return Err("this is not a Debian machine (no apt-get)".into());
    }
    if qemu::is_root() {
        return Ok(Vec::new());
    }
    let sudo_works = Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if sudo_works {
        Ok(vec!["sudo", "-n"])
    } else {
        Err("installing needs root (or passwordless sudo)".into())
    }
}

/// Installs `request`'s packages: waits for the lock, retries once; when apt fails twice,
/// looks whether the package archive is reachable at all.
fn install(request: &Request<'_>) -> std::result::Result<(), InstallError> {
    let prefix = installer().map_err(|why| InstallError::CannotInstall(request.failure(why)))?;
    let apt = |args: &[&str]| {
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg("apt-get");
                command
            }
            None => Command::new("apt-get"),
        };
        command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", &format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}")])
            .args(args);
        command
    };
    let suite = if request.backports {
        ensure_backports_source(&prefix)
            .map_err(|e| InstallError::Failed(request.failure(format!("{e:#}"))))?
    } else {
        String::new()
    };
    let arguments = request.arguments(&suite);
    let mut install_args = vec!["install", "-y", "-q", "--no-install-recommends"];
    install_args.extend(arguments.iter().map(String::as_str));
    eprintln!("installing {} ({})", arguments.join(" "), request.purpose);
    let attempt = || {
        run_checked(&mut apt(&["update", "-q"])).and_then(|()| run_checked(&mut apt(&install_args)))
    };
    if let Err(first) = attempt() {
        eprintln!("apt failed ({first:#}); updating the package lists and retrying once");
        if let Err(second) = attempt() {
            let uris: Vec<String> = apt_sources().into_iter().flat_map(|s| s.uris).collect();
            return Err(match archive_out_of_reach(&uris) {
                Some(why) => {
                    InstallError::CannotInstall(request.failure(format!("{why}; apt: {second:#}")))
                }
                None => InstallError::Failed(request.failure(format!("{second:#}"))),
            });
        }
    }
    Ok(())
}

/// Why the package archive is out of reach, or `None` when one of `uris`' HTTP(S) hosts takes
/// a TCP connection (or none is HTTP(S), so there is nothing to tell by): looked at only
/// after apt failed, so that it never stands in the way of an apt that would have worked (an
/// apt proxy, say).
fn archive_out_of_reach(uris: &[String]) -> Option<String> {
    let mut tried = Vec::new();
    for (host, port) in uris.iter().filter_map(|uri| archive_address(uri)) {
        if tried.contains(&(host.clone(), port)) {
            continue;
        }
        let reached = (host.as_str(), port).to_socket_addrs().map(|addresses| {
            addresses.into_iter().any(|address| {
                TcpStream::connect_timeout(&address, ARCHIVE_CONNECT_TIMEOUT).is_ok()
            })
        });
        if matches!(reached, Ok(true)) {
            return None;
        }
        tried.push((host, port));
    }
    let hosts: Vec<String> = tried
        .iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect();
    (!hosts.is_empty()).then(|| {
        format!(
            "the package archive is out of reach (no connection to {})",
            hosts.join(", ")
        )
    })
}

/// The host and port of an `http://` or `https://` URI.
fn archive_address(uri: &str) -> Option<(String, u16)> {
    let (rest, default_port) = if let Some(rest) = uri.strip_prefix("http://") {
        (rest, 80)
    } else {
        (uri.strip_prefix("https://")?, 443)
    };
    let authority = rest.split('/').next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Whether the CBC program host-lib will run (found as its `Cbc::locate` finds it:
/// `$E3_CBC`, else `cbc` on PATH) starts and quits cleanly; else why not.
fn cbc_runs() -> std::result::Result<(), String> {
    let cbc = Cbc::locate(None).map_err(|e| e.to_string())?;
    let status = Command::new(cbc.program())
        .arg("-quit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`{} -quit` failed ({status})",
            cbc.program().display()
        )),
        Err(e) => Err(format!("could not start {}: {e}", cbc.program().display())),
    }
}

/// Whether `program` is on PATH or in one of the system directories (`ip` lives in /usr/sbin,
/// which a non-root PATH may not hold).
fn has_program(program: &str) -> bool {
    qemu::find_on_path(program).is_some()
        || ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(program).is_file())
}

/// Adds the backports suite to apt's sources unless an enabled source already serves it,
/// reusing the mirror and signing key of the source that serves the release itself; returns
/// the suite.
fn ensure_backports_source(prefix: &[&str]) -> Result<String> {
    let codename = os_release_codename().context("no VERSION_CODENAME in /etc/os-release")?;
    let backports = format!("{codename}-backports");
    let sources = apt_sources();
    if sources.iter().any(|source| source.serves(&backports)) {
        return Ok(backports);
    }
    let entry = backports_entry(&sources, &codename).with_context(|| {
        format!("no enabled apt source serves {codename}: add {backports} to apt's sources by hand")
    })?;
    eprintln!("adding {backports} to apt's sources ({BACKPORTS_SOURCE})");
    if prefix.is_empty() {
        fs::write(BACKPORTS_SOURCE, entry)
            .with_context(|| format!("writing {BACKPORTS_SOURCE}"))?;
    } else {
        write_as_root(prefix, &entry)?;
    }
    Ok(backports)
}

/// The deb822 stanza of `<codename>-backports` from the mirror (and with the signing key) of
/// the first enabled source that serves `codename`.
fn backports_entry(sources: &[Source], codename: &str) -> Option<String> {
    let release = sources.iter().find(|source| source.serves(codename))?;
    let uri = release.uris.first()?;
    let mut entry =
        format!("Types: deb\nURIs: {uri}\nSuites: {codename}-backports\nComponents: main\n");
    if let Some(key) = &release.signed_by {
        entry.push_str(&format!("Signed-By: {key}\n"));
    }
    Some(entry)
}

/// Writes the backports source through `sudo -n tee`.
fn write_as_root(prefix: &[&str], entry: &str) -> Result<()> {
    use std::io::Write as _;
    let mut command = Command::new(prefix[0]);
    command
        .args(&prefix[1..])
        .args(["tee", BACKPORTS_SOURCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let rendered = render(&command);
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start `{rendered}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(entry.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{rendered}` failed ({status})");
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

/// The enabled `deb` sources of every file apt reads.
fn apt_sources() -> Vec<Source> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    files
        .into_iter()
        .filter_map(|path| {
            let format = Format::of(&path)?;
            let text = fs::read_to_string(&path).ok()?;
            Some(sources::parse(&text, format))
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backports_entry_takes_the_release_mirror_and_key_and_parses_back() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        let one_line = "# deb http://old.example/debian bookworm main\n\
                        deb [arch=amd64] http://mirror.example/debian bookworm main\n";
        let cases = [
            (deb822, Format::Deb822, Some("/usr/share/keyrings/k.gpg")),
            (one_line, Format::OneLine, None),
        ];
        for (text, format, key) in cases {
            let sources = sources::parse(text, format);
            let entry = backports_entry(&sources, "bookworm").expect("a mirror");
            let added = sources::parse(&entry, Format::Deb822);
            assert_eq!(
                added,
                [Source {
                    uris: vec!["http://mirror.example/debian".into()],
                    suites: vec!["bookworm-backports".into()],
                    signed_by: key.map(str::to_owned),
                }],
                "{entry}"
            );
            assert_eq!(backports_entry(&sources, "trixie"), None);
        }
        let security_only = sources::parse(
            "deb http://mirror.example/debian bookworm-security main",
            Format::OneLine,
        );
        assert_eq!(backports_entry(&security_only, "bookworm"), None);
    }

    #[test]
    fn archive_addresses_come_from_http_uris_only() {
        let address = |uri| archive_address(uri);
        assert_eq!(
            address("http://mirror.example/debian"),
            Some(("mirror.example".into(), 80))
        );
        assert_eq!(
            address("https://user@mirror.example:8443/debian"),
            Some(("mirror.example".into(), 8443))
        );
        assert_eq!(
            address("http://[::1]:3142/debian"),
            Some(("::1".into(), 3142))
        );
        assert_eq!(address("https://[::1]/debian"), Some(("::1".into(), 443)));
        for other in [
            "file:/srv/mirror",
            "mirror+file:/etc/apt/mirrors.txt",
            "cdrom:[x]/",
            "http://",
        ] {
            assert_eq!(address(other), None, "{other}");
        }
    }

    #[test]
    fn an_archive_that_takes_no_connection_is_out_of_reach() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = format!(
            "http://127.0.0.1:{}/debian",
            listener.local_addr().unwrap().port()
        );
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!(
                "http://127.0.0.1:{}/debian",
                gone.local_addr().unwrap().port()
            )
        };
        let why = archive_out_of_reach(std::slice::from_ref(&closed)).expect("out of reach");
        assert!(why.contains("no connection to 127.0.0.1:"), "{why}");
        assert_eq!(archive_out_of_reach(&[closed.clone(), open.clone()]), None);
        assert_eq!(
            archive_out_of_reach(&["file:/srv/mirror".into()]),
            None,
            "nothing to tell by"
        );
        drop(listener);
    }

    #[test]
    fn the_failure_says_what_why_and_how() {
        let qemu = Request {
            purpose: "QEMU for the emulated SmartNICs",
            packages: &["qemu-system-arm"],
            backports: true,
        };
        assert_eq!(
            qemu.arguments("bookworm-backports"),
            ["-t", "bookworm-backports", "qemu-system-arm"]
        );
        assert_eq!(
            qemu.failure("no network").to_string(),
            "qemu-system-arm from backports (QEMU for the emulated SmartNICs) could not be \
             installed: no network; install by hand: \
             `sudo apt-get install -t <release>-backports qemu-system-arm`"
        );
        let tools = Request {
            purpose: "ping",
            packages: &["iproute2", "iputils-ping"],
            backports: false,
        };
        assert_eq!(tools.arguments("unused"), ["iproute2", "iputils-ping"]);
        assert_eq!(
            tools.by_hand(),
            "sudo apt-get install iproute2 iputils-ping"
        );
    }
}
