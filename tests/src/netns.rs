//! Network namespaces for the HIL tests that put a real Linux network stack on the NIC's wire
//! (a tap device): created with `ip netns`, removed on drop. Needs root.

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A network namespace made by a test.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates namespace `name` (replacing a stale one of that name) with its loopback up.
    pub fn new(name: &str) -> Result<Namespace> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let namespace = Namespace {
            name: name.to_owned(),
        };
        run(Command::new("ip").args(["netns", "add", name]))?;
        namespace.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program args...` to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `argv` inside the namespace; fails unless it exits successfully.
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        let mut command = self.command(argv[0]);
        command.args(&argv[1..]);
        run(&mut command)
    }

    /// Waits until interface `ifname` exists in the namespace.
    pub fn wait_for_link(&self, ifname: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.run(&["ip", "link", "show", ifname]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{ifname} did not appear in namespace {}", self.name)
    }

    /// A UDP socket bound to `bind` inside the namespace (made on a thread that entered it; a
    /// socket stays in the namespace it was created in).
    pub fn udp_socket(&self, bind: &str) -> Result<UdpSocket> {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = File::open(&path).with_context(|| format!("opening {path}"))?;
        let bind = bind.to_owned();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on this thread only (CLONE_NEWNET moves the calling thread),
                    // with a namespace file descriptor that stays open for the call.
                    if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        bail!("setns into {path}: {}", std::io::Error::last_os_error());
                    }
                    UdpSocket::bind(&bind).with_context(|| format!("binding {bind}"))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}
