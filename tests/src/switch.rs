//! The top-of-rack switch of the hardware-in-loop tests: one Unix datagram socket per NIC port
//! (QEMU's dgram netdev carries one Ethernet frame per datagram), so a test sends the exact frames
//! it wants and reads back exactly what the firmware transmitted.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::nic::PortBackend;

/// Largest frame read (a jumbo-free Ethernet frame fits with room to spare).
const MAX_FRAME: usize = 2048;

/// One switch port, cabled to one NIC port.
pub struct SwitchPort {
    socket: UnixDatagram,
    nic_side: PathBuf,
}

impl SwitchPort {
    /// Sends one frame to the NIC port; `false` when the link is down (the NIC's end of the
    /// cable is gone: QEMU stopped), where a switch drops the frame.
    pub fn send(&self, frame: &[u8]) -> Result<bool> {
        match self.socket.send_to(frame, &self.nic_side) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
                Ok(false)
            }
            Err(e) => Err(e).with_context(|| format!("sending to {}", self.nic_side.display())),
        }
    }

    /// Receives the next frame the NIC port sent, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; MAX_FRAME];
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let length = self.socket.recv(&mut buffer).ok()?;
        buffer.truncate(length);
        Some(buffer)
    }

    /// Receives the next frame if one is already waiting, without blocking.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; MAX_FRAME];
        self.socket.set_nonblocking(true).ok()?;
        let received = self.socket.recv(&mut buffer);
        self.socket.set_nonblocking(false).ok()?;
        buffer.truncate(received.ok()?);
        Some(buffer)
    }

    /// Receives frames until `accept` takes one or `timeout` passes; others are dropped.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        mut accept: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.recv(left)?;
            if accept(&frame) {
                return Some(frame);
            }
        }
    }

    /// Drops every frame already waiting.
    pub fn drain(&self) {
        while self.recv(Duration::from_millis(1)).is_some() {}
    }
}

/// The switch: its ports and the directory their sockets live in.
pub struct Switch {
    dir: PathBuf,
    ports: Vec<SwitchPort>,
}

impl Switch {
    /// A switch with no ports, its sockets under a fresh directory named after `name`.
    pub fn new(name: &str) -> Result<Switch> {
        let dir = std::env::temp_dir().join(format!("e3-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Switch {
            dir,
            ports: Vec::new(),
        })
    }

    /// Adds a port; returns its index and the backend to give QEMU for the NIC end.
    pub fn add_port(&mut self) -> Result<(usize, PortBackend)> {
        let index = self.ports.len();
        let switch_side = self.dir.join(format!("switch-{index}.sock"));
        let nic_side = self.dir.join(format!("nic-{index}.sock"));
        let socket = UnixDatagram::bind(&switch_side)
            .with_context(|| format!("binding {}", switch_side.display()))?;
        self.ports.push(SwitchPort {
            socket,
            nic_side: nic_side.clone(),
        });
        Ok((
            index,
            PortBackend::Unix {
                qemu: nic_side,
                peer: switch_side,
            },
        ))
    }

    /// Port `index`.
    pub fn port(&self, index: usize) -> &SwitchPort {
        &self.ports[index]
    }

    /// The directory of the sockets (a place for other per-run files too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
