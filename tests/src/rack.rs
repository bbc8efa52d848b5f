//! A rack for one hardware-in-loop scenario: the top-of-rack switch, the emulated NICs cabled
//! to it, and request/reply exchanges over the wire.
//!
//! Booting a NIC configures the switch as an operator would: a route for the NIC's IP to its
//! ports, and, when the NIC fronts a host, its ports joined to the host IP's ECMP group.
//! [`Rack::request`] sends a client's request through the switch's router;
//! [`Rack::exchange`] puts a frame straight on one NIC port (for frames a router would not
//! send, or would send elsewhere).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nic_firmware::boot_config::BootConfig;
use nic_firmware::wire::{Ipv4Address, MacAddress};

use microservices::Service;

use crate::frames::{self, Datagram, Station};
use crate::host::HostSide;
use crate::nic::{port_mac_address, ChannelFile, EmulatedNic, NicSpec};
use crate::switch::{Forwarded, NextHop, Switch, SwitchPort};

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
    /// Its host: services answered on the host over the channel, which also carries the boot
    /// configuration. Without one the NIC has no channel and reads its configuration from
    /// fw_cfg.
    pub host: Option<Vec<(u16, Box<dyn Service>)>>,
    /// A channel an outside host already created (and wrote this NIC's configuration into);
    /// takes the place of `host`.
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
    /// Its host side (a host-lib node on its channel), if this rack created one for it.
    pub host: Option<HostSide>,
}

impl RackNic {
    /// The MAC of NIC port `port` (what QEMU gives it unless the configuration overrides it).
    pub fn mac(&self, port: usize) -> MacAddress {
        self.config
            .mac
            .map_or_else(|| port_mac_address(port), MacAddress)
    }
}

/// A request sent through the switch's router, and what came back.
#[derive(Debug)]
pub struct Routed {
    /// What the router did with the request.
    pub forwarded: Forwarded,
    /// The switch port the reply came in on, and the reply.
    pub reply: Option<(usize, Datagram)>,
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
        let (host, config_path) = match (plan.channel.is_some(), plan.host) {
            (true, _) => (None, None),
            (false, Some(services)) => {
                let path = self.switch.dir().join(format!("channel-{index}"));
                let nics = [(path, plan.config.to_string())];
                (Some(HostSide::start(&nics, services)?), None)
            }
            (false, None) => {
                let path = self.switch.dir().join(format!("nic{index}.conf"));
                std::fs::write(&path, plan.config.to_string())
                    .with_context(|| format!("writing {}", path.display()))?;
                (None, Some(path))
            }
        };
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
            channel: plan
                .channel
                .or_else(|| host.as_ref().map(|h| h.channel_file(0))),
            cores: plan.cores,
            namespace: None,
            ..Default::default()
        };
        let fronts_host = host.is_some() || spec.channel.is_some();
        let nic = EmulatedNic::start(&self.qemu, &spec)?;
        nic.wait_for_line("ready:", BOOT_TIMEOUT)?;
        let rack_nic = RackNic {
            nic,
            switch_ports,
            config: plan.config,
            host,
        };
        for (nic_port, &port) in rack_nic.switch_ports.iter().enumerate() {
            let hop = NextHop {
                port,
                mac: rack_nic.mac(nic_port),
            };
            self.switch
                .add_route(Ipv4Address(rack_nic.config.nic_ip.octets()), hop);
            if fronts_host {
                self.switch
                    .add_route(Ipv4Address(rack_nic.config.host_ip.octets()), hop);
            }
        }
        self.nics.push(rack_nic);
        Ok(index)
    }

    /// The switch port cabled to port `port` of NIC `nic`.
    pub fn port(&self, nic: usize, port: usize) -> &SwitchPort {
        self.switch.port(self.nics[nic].switch_ports[port])
    }

    /// Sends `payload` from `client` to `server` (IP and UDP port) through the switch's router
    /// and waits up to `timeout` for the first UDP datagram that comes back to the client on
    /// any port.
    pub fn request(
        &self,
        client: Station,
        server: (Ipv4Address, u16),
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Routed> {
        let to = Station {
            mac: self.switch.mac(),
            ip: server.0,
            port: server.1,
        };
        let forwarded = self.switch.forward(&frames::udp(client, to, payload))?;
        let reply = self
            .switch
            .receive(timeout, |_, frame| {
                frames::parse_udp(frame).is_some_and(|d| d.destination == (client.ip, client.port))
            })
            .and_then(|(port, frame)| frames::parse_udp(&frame).map(|d| (port, d)));
        Ok(Routed { forwarded, reply })
    }

    /// Sends `payload` from `client` to `server` through NIC `nic`'s port `port` and returns the
    /// first UDP datagram that comes back addressed to the client (other frames, such as
    /// announcements, are skipped), or `None` after `timeout` or when the NIC's link is down.
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
        if !switch_port.send(&frames::udp(client, server, payload))? {
            return Ok(None);
        }
        let reply = switch_port.recv_matching(timeout, |frame| {
            frames::parse_udp(frame).is_some_and(|d| d.destination == (client.ip, client.port))
        });
        Ok(reply.and_then(|frame| frames::parse_udp(&frame)))
    }
}
