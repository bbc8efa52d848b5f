//! A rack for one hardware-in-loop scenario: the test switch, the emulated NICs cabled to it,
//! and request/reply exchanges over the wire.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nic_firmware::boot_config::BootConfig;
use nic_firmware::wire::MacAddress;

use crate::frames::{self, Datagram, Station};
use crate::nic::{port_mac, ChannelFile, EmulatedNic, NicSpec};
use crate::switch::{Switch, SwitchPort};

/// Longest a NIC may take to print `ready:` (it boots in well under a second).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one NIC in the rack is started with.
pub struct NicPlan {
    /// Its boot configuration.
    pub config: BootConfig,
    /// How many ports it has.
    pub ports: usize,
    /// How many cores.
    pub cores: u32,
    /// Its channel to the host, if any.
    pub channel: Option<ChannelFile>,
}

/// A NIC in the rack and the switch ports it is cabled to (its port n on `switch_ports[n]`).
pub struct RackNic {
    /// The running NIC.
    pub nic: EmulatedNic,
    /// Switch port index of each NIC port.
    pub switch_ports: Vec<usize>,
    /// Its configuration.
    pub config: BootConfig,
}

impl RackNic {
    /// The MAC of NIC port `port` (what QEMU gives it unless the configuration overrides it).
    pub fn mac(&self, port: usize) -> MacAddress {
        let text = self.config.mac.map(|m| m.to_vec()).unwrap_or_else(|| {
            port_mac(port)
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).unwrap_or(0))
                .collect()
        });
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&text[..6]);
        MacAddress(mac)
    }
}

/// The switch and its NICs.
pub struct Rack {
    /// The top-of-rack switch.
    pub switch: Switch,
    /// The NICs, in boot order.
    pub nics: Vec<RackNic>,
    qemu: PathBuf,
    image: PathBuf,
}

impl Rack {
    /// An empty rack; NICs boot `image` under `qemu`.
    pub fn new(name: &str, qemu: &Path, image: &Path) -> Result<Rack> {
        Ok(Rack {
            switch: Switch::new(name)?,
            nics: Vec::new(),
            qemu: qemu.to_owned(),
            image: image.to_owned(),
        })
    }

    /// Boots a NIC and waits until it is ready; returns its index in [`Rack::nics`].
    pub fn boot(&mut self, plan: NicPlan) -> Result<usize> {
        let index = self.nics.len();
        let config_path = self.switch.dir().join(format!("nic{index}.conf"));
        std::fs::write(&config_path, plan.config.to_string())
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut switch_ports = Vec::new();
        let mut backends = Vec::new();
        for _ in 0..plan.ports {
            let (port, backend) = self.switch.add_port()?;
            switch_ports.push(port);
            backends.push(backend);
        }
        let spec = NicSpec {
            image: self.image.clone(),
            config: config_path,
            ports: backends,
            channel: plan.channel,
            cores: plan.cores,
            namespace: None,
        };
        let nic = EmulatedNic::start(&self.qemu, &spec)?;
        nic.wait_for_line("ready:", BOOT_TIMEOUT)?;
        self.nics.push(RackNic {
            nic,
            switch_ports,
            config: plan.config,
        });
        Ok(index)
    }

    /// The switch port cabled to port `port` of NIC `nic`.
    pub fn port(&self, nic: usize, port: usize) -> &SwitchPort {
        self.switch.port(self.nics[nic].switch_ports[port])
    }

    /// Sends `payload` from `client` to `server` through NIC `nic`'s port `port` and returns the
    /// first UDP datagram that comes back addressed to the client (other frames, such as
    /// announcements, are skipped), or `None` after `timeout`.
    pub fn exchange(
        &self,
        nic: usize,
        port: usize,
        client: Station,
        server: Station,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Option<Datagram>> {
        let switch_port = self.port(nic, port);
        switch_port.send(&frames::udp(client, server, payload))?;
        let reply = switch_port.recv_matching(timeout, |frame| {
            frames::parse_udp(frame).is_some_and(|d| d.destination == (client.ip, client.port))
        });
        Ok(reply.and_then(|frame| frames::parse_udp(&frame)))
    }
}
