//! Network namespaces for the HIL tests that put a real Linux network stack on the NIC's wire
//! (a tap device): created with `ip netns`, removed on drop. Needs root. Every command run here
//! has a time limit ([`COMMAND_TIMEOUT`], or the caller's) and is killed when it passes it.

use std::fs::File;
use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long one `ip` command may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// A network namespace made by a test.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates namespace `name` (replacing a stale one of that name) with its loopback up.
    pub fn new(name: &str) -> Result<Namespace> {
        let _ = output_within(
            Command::new("ip").args(["netns", "del", name]),
            COMMAND_TIMEOUT,
        );
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

    /// Runs `argv` inside the namespace; fails unless it exits successfully within
    /// [`COMMAND_TIMEOUT`].
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        self.run_within(argv, COMMAND_TIMEOUT)
    }

    /// Runs `argv` inside the namespace; fails unless it exits successfully within `timeout`.
    pub fn run_within(&self, argv: &[&str], timeout: Duration) -> Result<Output> {
        let mut command = self.command(argv[0]);
        command.args(&argv[1..]);
        run_within(&mut command, timeout)
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
        let _ = output_within(
            Command::new("ip").args(["netns", "del", &self.name]),
            COMMAND_TIMEOUT,
        );
    }
}

/// Runs `command` to its end, or kills it after `timeout`; returns what it printed.
pub fn output_within(command: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not run {command:?}"))?;
    // Drain both pipes on their own threads, so a chatty command cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} did not finish within {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn run(command: &mut Command) -> Result<Output> {
    run_within(command, COMMAND_TIMEOUT)
}

fn run_within(command: &mut Command, timeout: Duration) -> Result<Output> {
    let output = output_within(command, timeout)?;
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
