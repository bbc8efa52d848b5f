//! An emulated SmartNIC: `qemu-system-aarch64 -M virt` booting a firmware image, with its boot
//! configuration in fw_cfg, its PCIe channel an ivshmem BAR over a /dev/shm file, and its ports
//! virtio-net devices on datagram sockets (one datagram = one Ethernet frame) or tap devices.
//! The UART is captured line by line so a test can wait for it and show it when it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nic_firmware::wire::MacAddress;

use crate::scenario::{self, SharedChild};

/// Where the boot configuration sits in fw_cfg (the firmware reads this name).
pub const CONFIG_FW_CFG_NAME: &str = "opt/e3/nic.conf";
/// Where a diagnostic switch sits in fw_cfg (docs/firmware.md, "Faults and stopping").
pub const DIAGNOSTIC_FW_CFG_NAME: &str = "opt/e3/diagnostic";
/// RAM of the emulated NIC (linker/qemu-virt.ld's `heap_end` assumes it).
pub const MEMORY_MIB: u32 = 256;

/// The far side of one NIC port.
#[derive(Clone, Debug)]
pub enum PortBackend {
    /// Unix datagram sockets: QEMU binds `qemu`, sends to `peer`.
    Unix {
        /// QEMU's socket path.
        qemu: PathBuf,
        /// The switch's socket path.
        peer: PathBuf,
    },
    /// UDP on the loopback: QEMU binds `qemu`, sends to `peer`.
    Udp {
        /// QEMU's address.
        qemu: std::net::SocketAddr,
        /// The switch's address.
        peer: std::net::SocketAddr,
    },
    /// A tap device (needs root); the test puts it where it wants.
    Tap {
        /// Interface name.
        ifname: String,
    },
}

/// The NIC's PCIe channel: a shared-memory file the host side created.
#[derive(Clone, Debug)]
pub struct ChannelFile {
    /// The file (normally under /dev/shm).
    pub path: PathBuf,
    /// Its size: a power of two (it becomes a PCI BAR).
    pub size: u64,
}

/// Everything one emulated NIC is started with.
#[derive(Clone, Debug, Default)]
pub struct NicSpec {
    /// The firmware ELF.
    pub image: PathBuf,
    /// The boot configuration file handed over fw_cfg (none: the host wrote it into the channel).
    pub config: Option<PathBuf>,
    /// Ports, port 0 first.
    pub ports: Vec<PortBackend>,
    /// The channel, if any.
    pub channel: Option<ChannelFile>,
    /// Cores.
    pub cores: u32,
    /// Run QEMU inside this network namespace (its tap ports appear there).
    pub namespace: Option<String>,
    /// A diagnostic switch for the firmware (off when `None`), e.g. `fault-after-boot`.
    pub diagnostic: Option<String>,
    /// RAM in MiB (0: [`MEMORY_MIB`], what linker/qemu-virt.ld assumes).
    pub memory_mib: u32,
}

impl NicSpec {
    /// The QEMU command line that starts this NIC, UART on stdout.
    pub fn command(&self, qemu: &Path) -> Command {
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", namespace]).arg(qemu);
                ip
            }
            None => Command::new(qemu),
        };
        command
            .args(["-M", "virt,gic-version=2", "-cpu", "max"])
            .args(["-smp", &self.cores.to_string()])
            .args(["-m", &format!("{}M", self.memory())])
            .args(["-nodefaults", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-no-reboot"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-global", "virtio-mmio.force-legacy=false"])
            .arg("-kernel")
            .arg(&self.image);
        if let Some(config) = &self.config {
            command.arg("-fw_cfg").arg(format!(
                "name={CONFIG_FW_CFG_NAME},file={}",
                config.display()
            ));
        }
        if let Some(switch) = &self.diagnostic {
            command
                .arg("-fw_cfg")
                .arg(format!("name={DIAGNOSTIC_FW_CFG_NAME},string={switch}"));
        }
        if let Some(channel) = &self.channel {
            command.arg("-object").arg(format!(
                "memory-backend-file,id=channel,share=on,mem-path={},size={}",
                channel.path.display(),
                channel.size
            ));
            command.args(["-device", "ivshmem-plain,memdev=channel"]);
        }
        // A debugging aid: extra QEMU arguments (for example a monitor socket) from the
        // environment, split on whitespace.
        if let Ok(extra) = std::env::var("E3_QEMU_EXTRA") {
            command.args(extra.split_whitespace());
        }
        for (index, port) in self.ports.iter().enumerate() {
            let netdev = match port {
                PortBackend::Unix { qemu, peer } => format!(
                    "dgram,id=port{index},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                    qemu.display(),
                    peer.display()
                ),
                PortBackend::Udp { qemu, peer } => format!(
                    "dgram,id=port{index},local.type=inet,local.host={},local.port={},\
                     remote.type=inet,remote.host={},remote.port={}",
                    qemu.ip(),
                    qemu.port(),
                    peer.ip(),
                    peer.port()
                ),
                PortBackend::Tap { ifname } => {
                    format!("tap,id=port{index},ifname={ifname},script=no,downscript=no")
                }
            };
            command.arg("-netdev").arg(netdev);
            command.arg("-device").arg(format!(
                "virtio-net-device,netdev=port{index},mac={}",
                port_mac(index)
            ));
        }
        command
    }

    /// RAM in MiB.
    fn memory(&self) -> u32 {
        if self.memory_mib == 0 {
            MEMORY_MIB
        } else {
            self.memory_mib
        }
    }
}

/// The MAC QEMU gives port `index` (the boot configuration's `mac` can override it), as QEMU's
/// command line spells it.
pub fn port_mac(index: usize) -> String {
    let MacAddress(bytes) = port_mac_address(index);
    bytes.map(|b| format!("{b:02x}")).join(":")
}

/// The MAC QEMU gives port `index`.
pub fn port_mac_address(index: usize) -> MacAddress {
    MacAddress([0x52, 0x54, 0x00, 0xe3, 0x00, (index & 0xff) as u8])
}

/// The firmware's counters, as its UART prints them every half second when they change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UartCounters {
    /// `rx`, `tx`, `served`, `to_host`, `from_host`, `arp`, `echo`, `dropped`, `channel`,
    /// `channel_rejected`, `channel_corrupt`, `deployed`, `deploy_no_memory`,
    /// `deploy_refused`, as printed.
    pub fields: BTreeMap<String, String>,
    /// Drops by reason, as the runtime's `DropReason` displays it.
    pub drops: BTreeMap<String, u64>,
}

impl UartCounters {
    /// Parses a `counters:` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<UartCounters> {
        let rest = &line[line.find("counters: ")? + "counters: ".len()..];
        let mut parts = rest.split(" | ");
        let mut counters = UartCounters::default();
        for pair in parts.next()?.split_whitespace() {
            let (name, value) = pair.split_once('=')?;
            counters.fields.insert(name.to_owned(), value.to_owned());
        }
        for drop in parts {
            let (reason, count) = drop.rsplit_once('=')?;
            counters
                .drops
                .insert(reason.to_owned(), count.parse().ok()?);
        }
        Some(counters)
    }

    /// A numeric field by name (0 if absent or not a number).
    pub fn total(&self, name: &str) -> u64 {
        self.field(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// A field as printed.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Drops under `reason` (anything that displays as the runtime's `DropReason` does).
    pub fn dropped(&self, reason: impl std::fmt::Display) -> u64 {
        self.drops.get(&reason.to_string()).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Uart {
    lines: Vec<String>,
    closed: bool,
}

/// A running emulated NIC. Dropping it stops QEMU.
pub struct EmulatedNic {
    child: SharedChild,
    uart: Arc<(Mutex<Uart>, Condvar)>,
    started: Instant,
}

impl EmulatedNic {
    /// Starts QEMU for `spec`; stale port sockets are removed first. On a scenario's thread
    /// QEMU is registered in its [`scenario::Children`], which kills and reaps it when the
    /// scenario ends, also when the scenario times out with this thread still blocked.
    pub fn start(qemu: &Path, spec: &NicSpec) -> Result<EmulatedNic> {
        for port in &spec.ports {
            if let PortBackend::Unix { qemu, .. } = port {
                let _ = std::fs::remove_file(qemu);
            }
        }
        let mut command = spec.command(qemu);
        // SAFETY: the hook runs in the forked child before exec and only calls prctl, which is
        // async-signal-safe. QEMU (or `ip netns exec`, which execs it) is killed when the
        // thread that started it ends, so a test process that exits or is killed leaves no
        // emulated NIC running (a scenario that gives up on a thread still blocked kills its
        // QEMUs through its registry instead: the thread has not ended).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = scenario::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .with_context(|| format!("could not start {}", qemu.display()))?;
        let uart = Arc::new((Mutex::new(Uart::default()), Condvar::new()));
        let (stdout, stderr) = {
            let mut child = child.lock();
            (child.stdout.take(), child.stderr.take())
        };
        let stdout = stdout.context("QEMU's stdout")?;
        let stderr = stderr.context("QEMU's stderr")?;
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, ""),
            (Box::new(stderr), "qemu: "),
        ] {
            let uart = Arc::clone(&uart);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lock, signal) = &*uart;
                    if let Ok(mut uart) = lock.lock() {
                        uart.lines.push(format!("{prefix}{line}"));
                    }
                    signal.notify_all();
                }
                let (lock, signal) = &*uart;
                if let Ok(mut uart) = lock.lock() {
                    uart.closed = true;
                }
                signal.notify_all();
            });
        }
        Ok(EmulatedNic {
            child,
            uart,
            started: Instant::now(),
        })
    }

    /// Waits until a UART line contains `needle`; returns that line. On timeout or exit the
    /// error carries the whole UART transcript.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_for(&format!("`{needle}`"), timeout, |line| {
            line.contains(needle).then(|| line.to_owned())
        })
    }

    /// Waits until the UART's latest counters line (docs/firmware.md, "Counters on the UART")
    /// satisfies `accept`; returns it.
    pub fn wait_for_counters(
        &self,
        timeout: Duration,
        accept: impl Fn(&UartCounters) -> bool,
    ) -> Result<UartCounters> {
        self.wait_for("counters as asked", timeout, |line| {
            UartCounters::parse(line).filter(|c| accept(c))
        })
    }

    /// Waits until `pick` takes a UART line (the latest ones first).
    fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.uart;
        let mut uart = lock
            .lock()
            .map_err(|_| anyhow::anyhow!("UART reader died"))?;
        loop {
            if let Some(found) = uart.lines.iter().rev().find_map(|l| pick(l)) {
                return Ok(found);
            }
            let now = Instant::now();
            if uart.closed || now >= deadline {
                let why = if uart.closed {
                    "QEMU exited"
                } else {
                    "timed out"
                };
                bail!(
                    "{why} waiting for {what} on the UART; it said:\n{}",
                    uart.lines.join("\n")
                );
            }
            uart = signal
                .wait_timeout(uart, deadline - now)
                .map_err(|_| anyhow::anyhow!("UART reader died"))?
                .0;
        }
    }

    /// Everything the UART (and QEMU's stderr) said so far.
    pub fn transcript(&self) -> String {
        let (lock, _) = &*self.uart;
        lock.lock().map(|u| u.lines.join("\n")).unwrap_or_default()
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for QEMU to exit by itself (the firmware stopped the board).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child.lock().try_wait()?;
            if let Some(status) = exited {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "QEMU did not exit within {timeout:?}; the UART said:\n{}",
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops QEMU (as pulling the NIC's power would).
    pub fn stop(&mut self) {
        self.child.kill_and_reap();
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.lock().try_wait(), Ok(None))
    }
}

impl Drop for EmulatedNic {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counters_line() {
        let line = "[     1.500000] core0 INFO  counters: rx=12 tx=9 served=7 to_host=0 \
                    from_host=0 arp=1 echo=1 dropped=3 channel=up | ipv4: checksum does not verify=2 \
                    | UDP port closed=1";
        let counters = UartCounters::parse(line).unwrap();
        assert_eq!(counters.total("rx"), 12);
        assert_eq!(counters.total("served"), 7);
        assert_eq!(counters.field("channel"), Some("up"));
        assert_eq!(counters.dropped("ipv4: checksum does not verify"), 2);
        assert_eq!(counters.dropped("UDP port closed"), 1);
        assert_eq!(UartCounters::parse("core0 INFO  ready: 4 cores"), None);
        assert_eq!(UartCounters::parse("counters: rx"), None);
    }
}
