//! An emulated SmartNIC: `qemu-system-aarch64 -M virt` booting a firmware image, with its boot
//! configuration in fw_cfg, its PCIe channel an ivshmem BAR over a /dev/shm file, and its ports
//! virtio-net devices on datagram sockets (one datagram = one Ethernet frame) or tap devices.
//! The UART is captured line by line so a test can wait for it and show it when it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where the boot configuration sits in fw_cfg (the firmware reads this name).
pub const CONFIG_FW_CFG_NAME: &str = "opt/e3/nic.conf";
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
#[derive(Clone, Debug)]
pub struct NicSpec {
    /// The firmware ELF.
    pub image: PathBuf,
    /// The boot configuration file.
    pub config: PathBuf,
    /// Ports, port 0 first.
    pub ports: Vec<PortBackend>,
    /// The channel, if any.
    pub channel: Option<ChannelFile>,
    /// Cores.
    pub cores: u32,
}

impl NicSpec {
    /// The QEMU command line that starts this NIC, UART on stdout.
    pub fn command(&self, qemu: &Path) -> Command {
        let mut command = Command::new(qemu);
        command
            .args(["-M", "virt,gic-version=2", "-cpu", "max"])
            .args(["-smp", &self.cores.to_string()])
            .args(["-m", &format!("{MEMORY_MIB}M")])
            .args(["-nodefaults", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-no-reboot"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-global", "virtio-mmio.force-legacy=false"])
            .arg("-kernel")
            .arg(&self.image)
            .arg("-fw_cfg")
            .arg(format!(
                "name={CONFIG_FW_CFG_NAME},file={}",
                self.config.display()
            ));
        if let Some(channel) = &self.channel {
            command.arg("-object").arg(format!(
                "memory-backend-file,id=channel,share=on,mem-path={},size={}",
                channel.path.display(),
                channel.size
            ));
            command.args(["-device", "ivshmem-plain,memdev=channel"]);
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
}

/// The MAC QEMU gives port `index` (the boot configuration's `mac` can override it).
pub fn port_mac(index: usize) -> String {
    format!("52:54:00:e3:00:{:02x}", index & 0xff)
}

#[derive(Default)]
struct Uart {
    lines: Vec<String>,
    closed: bool,
}

/// A running emulated NIC. Dropping it stops QEMU.
pub struct EmulatedNic {
    child: Child,
    uart: Arc<(Mutex<Uart>, Condvar)>,
    started: Instant,
}

impl EmulatedNic {
    /// Starts QEMU for `spec`; stale port sockets are removed first.
    pub fn start(qemu: &Path, spec: &NicSpec) -> Result<EmulatedNic> {
        for port in &spec.ports {
            if let PortBackend::Unix { qemu, .. } = port {
                let _ = std::fs::remove_file(qemu);
            }
        }
        let mut child = spec
            .command(qemu)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {}", qemu.display()))?;
        let uart = Arc::new((Mutex::new(Uart::default()), Condvar::new()));
        let stdout = child.stdout.take().context("QEMU's stdout")?;
        let stderr = child.stderr.take().context("QEMU's stderr")?;
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
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.uart;
        let mut uart = lock
            .lock()
            .map_err(|_| anyhow::anyhow!("UART reader died"))?;
        loop {
            if let Some(line) = uart.lines.iter().find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            let now = Instant::now();
            if uart.closed || now >= deadline {
                let why = if uart.closed {
                    "QEMU exited"
                } else {
                    "timed out"
                };
                bail!(
                    "{why} waiting for `{needle}` on the UART; it said:\n{}",
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

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for QEMU to exit by itself (the firmware stopped the board).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for EmulatedNic {
    fn drop(&mut self) {
        self.stop();
    }
}
