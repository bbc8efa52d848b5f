//! The NIC's boot configuration: who the NIC is (its IP, the host IP it fronts, its MAC) and which
//! services it serves on which UDP ports, as a small text file the operator writes.
//!
//! The firmware reads it at boot from a place that needs no rebuild (on QEMU a `fw_cfg` file,
//! `opt/e3/nic.conf`; see docs/firmware.md) and refuses bad input with a message naming the line.
//! The format, one `key = value` per line, `#` starts a comment:
//!
//! ```text
//! nic_ip  = 10.0.0.2          # required: the NIC's own IPv4 address
//! host_ip = 10.0.0.1          # required: the host's address, reached through this NIC
//! mac     = 52:54:00:e3:00:01 # optional: overrides the MAC of every port
//! cores   = 4                 # optional: how many cores run (default: all the board has)
//! service = kvs 7000          # one or more: a service kind and the UDP port it serves
//! service = count 7001
//! agent_port = 7777           # optional: the orchestrator agent's UDP port on the NIC IP
//! controller = 10.0.0.1:7778  # optional: where the agent sends its heartbeats
//! gateway_mac = 02:00:00:00:00:fe # optional: next hop for addresses not heard from yet
//! ```

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

use microservices::{Service, ServiceId, ServiceKind};

use microservices::services::deploy::DeployError;

use crate::agent::{self, FreeMemory};
use crate::platform::Endpoint;
use crate::wire::Ipv4Address;

/// Most services one NIC serves.
pub const MAX_SERVICES: usize = 16;
/// Most cores a configuration may ask for.
pub const MAX_CORES: u8 = 64;
/// Longest configuration accepted, in bytes.
pub const MAX_LEN: usize = 4096;

/// One service the NIC serves and the UDP port it listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceBinding {
    /// What the service is.
    pub kind: ServiceKind,
    /// The UDP destination port that reaches it on the NIC's IP.
    pub udp_port: u16,
}

/// A parsed, validated boot configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootConfig {
    /// The NIC's own address.
    pub nic_ip: Ipv4Addr,
    /// The host's address, which the NIC fronts (answers ARP for it, forwards to the host).
    pub host_ip: Ipv4Addr,
    /// A MAC that overrides every port's own, if set.
    pub mac: Option<[u8; 6]>,
    /// How many cores to run, if limited.
    pub cores: Option<u8>,
    /// The services, in the order given.
    pub services: heapless::Vec<ServiceBinding, MAX_SERVICES>,
    /// The UDP port of the NIC IP the orchestrator agent listens on, if it runs.
    pub agent_port: Option<u16>,
    /// Where the agent sends its heartbeats (IP and UDP port), if anywhere.
    pub controller: Option<(Ipv4Addr, u16)>,
    /// The top-of-rack switch's MAC (on port 0): the next hop for addresses the NIC has not
    /// heard from (the controller, clients of host replies).
    pub gateway_mac: Option<[u8; 6]>,
}

/// What is wrong with a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Longer than [`MAX_LEN`].
    TooLong,
    /// Not UTF-8 text.
    NotText,
    /// A line without `=`.
    MissingEquals,
    /// A key the format does not have.
    UnknownKey,
    /// A key given twice.
    DuplicateKey,
    /// Not an IPv4 address in dotted-quad form.
    BadAddress,
    /// Not six hex bytes separated by `:`, or a multicast MAC.
    BadMac,
    /// Not a number in 1..=[`MAX_CORES`].
    BadCores,
    /// `service` needs `KIND PORT`.
    BadService,
    /// A service kind that is not in the catalogue.
    UnknownService,
    /// A UDP port that is 0 or not a number.
    BadPort,
    /// Two services (or a service and the agent) on one UDP port.
    DuplicatePort,
    /// Not `IPv4:PORT`.
    BadEndpoint,
    /// More than [`MAX_SERVICES`] services.
    TooManyServices,
    /// `nic_ip` is missing.
    MissingNicIp,
    /// `host_ip` is missing.
    MissingHostIp,
    /// The NIC and the host have the same address.
    SameAddress,
    /// No `service` line.
    NoService,
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigErrorKind::TooLong => "longer than 4096 bytes",
            ConfigErrorKind::NotText => "not UTF-8 text",
            ConfigErrorKind::MissingEquals => "expected `key = value`",
            ConfigErrorKind::UnknownKey => {
                "unknown key (known: nic_ip, host_ip, mac, cores, service, agent_port, controller, \
                 gateway_mac)"
            }
            ConfigErrorKind::DuplicateKey => "key given twice",
            ConfigErrorKind::BadAddress => "not an IPv4 address like 10.0.0.2",
            ConfigErrorKind::BadMac => "not a unicast MAC like 52:54:00:e3:00:01",
            ConfigErrorKind::BadCores => "cores must be a number from 1 to 64",
            ConfigErrorKind::BadService => "expected `service = KIND PORT`",
            ConfigErrorKind::UnknownService => "unknown service kind",
            ConfigErrorKind::BadPort => "UDP port must be a number from 1 to 65535",
            ConfigErrorKind::DuplicatePort => {
                "UDP port already used by another service or the agent"
            }
            ConfigErrorKind::BadEndpoint => "expected IPv4:PORT like 10.0.0.1:9000",
            ConfigErrorKind::TooManyServices => "more than 16 services",
            ConfigErrorKind::MissingNicIp => "nic_ip is missing",
            ConfigErrorKind::MissingHostIp => "host_ip is missing",
            ConfigErrorKind::SameAddress => "nic_ip and host_ip must differ",
            ConfigErrorKind::NoService => "no `service` line: the NIC would serve nothing",
        })
    }
}

/// A service instance deployed at boot and the UDP port it serves.
pub type BootService = (u16, Box<dyn Service>);

/// A configured service this firmware cannot deploy at boot, and why (a host-only kind, or
/// not enough memory for it and the services before it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unavailable {
    /// The service's line among the `service` lines (0-based).
    pub index: usize,
    /// Why the deploy was refused.
    pub error: DeployError,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot configuration refused: service {} cannot be deployed: {}",
            self.index + 1,
            self.error
        )
    }
}

/// A configuration refused: what is wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError<'a> {
    /// 1-based line number, or 0 when the error is about the whole file.
    pub line: usize,
    /// The offending line's text (empty when `line` is 0).
    pub text: &'a str,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "boot configuration refused: {}", self.kind)
        } else {
            write!(
                f,
                "boot configuration refused: line {}: {}: `{}`",
                self.line, self.kind, self.text
            )
        }
    }
}

impl BootConfig {
    /// Parses and validates a configuration file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<BootConfig, ConfigError<'_>> {
        let whole = |kind| ConfigError {
            line: 0,
            text: "",
            kind,
        };
        if bytes.len() > MAX_LEN {
            return Err(whole(ConfigErrorKind::TooLong));
        }
        let text = core::str::from_utf8(bytes).map_err(|_| whole(ConfigErrorKind::NotText))?;
        let mut draft = Draft::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            draft.line(line).map_err(|kind| ConfigError {
                line: index + 1,
                text: raw.trim(),
                kind,
            })?;
        }
        draft.finish().map_err(whole)
    }

    /// One instance of every configured service with its UDP port, ids 1.. in order, each in
    /// its kind's standard configuration, built by [`agent::build_service`] (the function that
    /// serves the orchestrator's DEPLOY commands) and refused, as a deploy would be, when
    /// `free_memory` says it does not fit.
    pub fn instantiate_services(
        &self,
        free_memory: Option<FreeMemory>,
    ) -> Result<Vec<BootService>, Unavailable> {
        let mut out = Vec::with_capacity(self.services.len());
        for (index, binding) in self.services.iter().enumerate() {
            let id = ServiceId(index as u16 + 1);
            let service = agent::build_service(binding.kind, id, &[], free_memory)
                .map_err(|error| Unavailable { index, error })?;
            out.push((binding.udp_port, service));
        }
        Ok(out)
    }

    /// Where the agent's heartbeats go, as the runtime's endpoint type.
    pub fn controller_endpoint(&self) -> Option<Endpoint> {
        self.controller
            .map(|(ip, port)| Endpoint::new(Ipv4Address(ip.octets()), port))
    }

    /// The UDP port a service kind is served on, if it is configured.
    pub fn port_of(&self, kind: ServiceKind) -> Option<u16> {
        self.services
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.udp_port)
    }
}

/// Writes the configuration in the format [`BootConfig::parse`] reads.
impl fmt::Display for BootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nic_ip = {}", self.nic_ip)?;
        writeln!(f, "host_ip = {}", self.host_ip)?;
        if let Some(mac) = self.mac {
            writeln!(
                f,
                "mac = {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            )?;
        }
        if let Some(cores) = self.cores {
            writeln!(f, "cores = {cores}")?;
        }
        for service in &self.services {
            writeln!(f, "service = {} {}", service.kind, service.udp_port)?;
        }
        if let Some(port) = self.agent_port {
            writeln!(f, "agent_port = {port}")?;
        }
        if let Some((ip, port)) = self.controller {
            writeln!(f, "controller = {ip}:{port}")?;
        }
        if let Some(m) = self.gateway_mac {
            writeln!(
                f,
                "gateway_mac = {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )?;
        }
        Ok(())
    }
}

/// The configuration while it is being read.
#[derive(Default)]
struct Draft {
    nic_ip: Option<Ipv4Addr>,
    host_ip: Option<Ipv4Addr>,
    mac: Option<[u8; 6]>,
    cores: Option<u8>,
    services: heapless::Vec<ServiceBinding, MAX_SERVICES>,
    agent_port: Option<u16>,
    controller: Option<(Ipv4Addr, u16)>,
    gateway_mac: Option<[u8; 6]>,
}

impl Draft {
    fn line(&mut self, line: &str) -> Result<(), ConfigErrorKind> {
        let (key, value) = line.split_once('=').ok_or(ConfigErrorKind::MissingEquals)?;
        let value = value.trim();
        match key.trim() {
            "nic_ip" => set_once(&mut self.nic_ip, parse_ip(value)?),
            "host_ip" => set_once(&mut self.host_ip, parse_ip(value)?),
            "mac" => set_once(&mut self.mac, parse_mac(value)?),
            "cores" => set_once(&mut self.cores, parse_cores(value)?),
            "service" => self.service(value),
            "agent_port" => set_once(&mut self.agent_port, parse_port(value)?),
            "controller" => set_once(&mut self.controller, parse_endpoint(value)?),
            "gateway_mac" => set_once(&mut self.gateway_mac, parse_mac(value)?),
            _ => Err(ConfigErrorKind::UnknownKey),
        }
    }

    fn service(&mut self, value: &str) -> Result<(), ConfigErrorKind> {
        let mut words = value.split_whitespace();
        let (Some(kind), Some(port), None) = (words.next(), words.next(), words.next()) else {
            return Err(ConfigErrorKind::BadService);
        };
        let kind = ServiceKind::from_str(kind).map_err(|_| ConfigErrorKind::UnknownService)?;
        let udp_port = parse_port(port)?;
        if self.services.iter().any(|s| s.udp_port == udp_port) || self.agent_port == Some(udp_port)
        {
            return Err(ConfigErrorKind::DuplicatePort);
        }
        self.services
            .push(ServiceBinding { kind, udp_port })
            .map_err(|_| ConfigErrorKind::TooManyServices)
    }

    fn finish(self) -> Result<BootConfig, ConfigErrorKind> {
        let nic_ip = self.nic_ip.ok_or(ConfigErrorKind::MissingNicIp)?;
        let host_ip = self.host_ip.ok_or(ConfigErrorKind::MissingHostIp)?;
        if nic_ip == host_ip {
            return Err(ConfigErrorKind::SameAddress);
        }
        if self.services.is_empty() {
            return Err(ConfigErrorKind::NoService);
        }
        if let Some(agent) = self.agent_port {
            if self.services.iter().any(|s| s.udp_port == agent) {
                return Err(ConfigErrorKind::DuplicatePort);
            }
        }
        Ok(BootConfig {
            nic_ip,
            host_ip,
            mac: self.mac,
            cores: self.cores,
            services: self.services,
            agent_port: self.agent_port,
            controller: self.controller,
            gateway_mac: self.gateway_mac,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ConfigErrorKind> {
    if slot.is_some() {
        return Err(ConfigErrorKind::DuplicateKey);
    }
    *slot = Some(value);
    Ok(())
}

fn parse_ip(value: &str) -> Result<Ipv4Addr, ConfigErrorKind> {
    let ip = Ipv4Addr::from_str(value).map_err(|_| ConfigErrorKind::BadAddress)?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(ConfigErrorKind::BadAddress);
    }
    Ok(ip)
}

fn parse_mac(value: &str) -> Result<[u8; 6], ConfigErrorKind> {
    let mut mac = [0u8; 6];
    let mut parts = value.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or(ConfigErrorKind::BadMac)?;
        if part.len() != 2 {
            return Err(ConfigErrorKind::BadMac);
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| ConfigErrorKind::BadMac)?;
    }
    // The low bit of the first byte marks group (multicast) addresses.
    if parts.next().is_some() || mac[0] & 1 == 1 {
        return Err(ConfigErrorKind::BadMac);
    }
    Ok(mac)
}

fn parse_port(value: &str) -> Result<u16, ConfigErrorKind> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(ConfigErrorKind::BadPort),
        Ok(port) => Ok(port),
    }
}

fn parse_endpoint(value: &str) -> Result<(Ipv4Addr, u16), ConfigErrorKind> {
    let (ip, port) = value.split_once(':').ok_or(ConfigErrorKind::BadEndpoint)?;
    let ip = parse_ip(ip).map_err(|_| ConfigErrorKind::BadEndpoint)?;
    let port = parse_port(port).map_err(|_| ConfigErrorKind::BadEndpoint)?;
    Ok((ip, port))
}

fn parse_cores(value: &str) -> Result<u8, ConfigErrorKind> {
    match value.parse::<u8>() {
        Ok(n) if (1..=MAX_CORES).contains(&n) => Ok(n),
        _ => Err(ConfigErrorKind::BadCores),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    const GOOD: &str = "# NIC 0\n\
        nic_ip = 10.0.0.2\n\
        host_ip=10.0.0.1   # the host\n\
        mac = 52:54:00:e3:00:01\n\
        cores = 4\n\
        \n\
        service = kvs 7000\n\
        service = COUNT 7001\n\
        agent_port = 7777\n\
        controller = 10.0.0.1:7778\n\
        gateway_mac = 02:00:00:00:00:fe\n";

    #[test]
    fn parses_every_key() {
        let config = BootConfig::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(config.nic_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(config.host_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(config.mac, Some([0x52, 0x54, 0, 0xe3, 0, 1]));
        assert_eq!(config.cores, Some(4));
        assert_eq!(config.port_of(ServiceKind::Kvs), Some(7000));
        assert_eq!(config.port_of(ServiceKind::Count), Some(7001));
        assert_eq!(config.port_of(ServiceKind::Nat), None);
        assert_eq!(config.agent_port, Some(7777));
        assert_eq!(config.controller, Some((Ipv4Addr::new(10, 0, 0, 1), 7778)));
        assert_eq!(config.gateway_mac, Some([2, 0, 0, 0, 0, 0xfe]));
    }

    #[test]
    fn instantiates_the_services_it_can_and_names_the_one_it_cannot() {
        let config = BootConfig::parse(GOOD.as_bytes()).unwrap();
        let services = config.instantiate_services(None).unwrap();
        let kinds: std::vec::Vec<_> = services
            .iter()
            .map(|(port, s)| (*port, s.identity().kind))
            .collect();
        assert_eq!(
            kinds,
            [(7000, ServiceKind::Kvs), (7001, ServiceKind::Count)]
        );
        let text = "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.1\nservice = sql 5432\n";
        let config = BootConfig::parse(text.as_bytes()).unwrap();
        let error = config.instantiate_services(None).err().unwrap();
        assert_eq!(error.index, 0);
        assert_eq!(error.error, DeployError::HostOnly(ServiceKind::Sql));
        assert!(error.to_string().contains("`sql`"), "{error}");
        // The second service does not fit what is left: refused by the deploy's memory check.
        let text = "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.1\nservice = kvs 1\nservice = nat 2\n";
        let config = BootConfig::parse(text.as_bytes()).unwrap();
        let error = config
            .instantiate_services(Some(|| 16 << 20))
            .err()
            .unwrap();
        assert_eq!(error.index, 1);
        assert!(matches!(
            error.error,
            DeployError::NoMemory {
                kind: ServiceKind::Nat,
                ..
            }
        ));
    }

    #[test]
    fn display_round_trips() {
        let config = BootConfig::parse(GOOD.as_bytes()).unwrap();
        let text = config.to_string();
        assert_eq!(BootConfig::parse(text.as_bytes()).unwrap(), config);
    }

    fn refused(text: &str) -> (usize, ConfigErrorKind) {
        let error = BootConfig::parse(text.as_bytes()).unwrap_err();
        (error.line, error.kind)
    }

    #[test]
    fn names_the_bad_line() {
        let base = "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.1\n";
        let cases = [
            ("nic_ip 10.0.0.3", ConfigErrorKind::MissingEquals),
            ("colour = blue", ConfigErrorKind::UnknownKey),
            ("nic_ip = 10.0.0.3", ConfigErrorKind::DuplicateKey),
            ("mac = 52:54:00:e3:00", ConfigErrorKind::BadMac),
            ("mac = 01:00:5e:00:00:01", ConfigErrorKind::BadMac),
            ("mac = 52:54:00:e3:00:01:02", ConfigErrorKind::BadMac),
            ("cores = 0", ConfigErrorKind::BadCores),
            ("cores = 65", ConfigErrorKind::BadCores),
            ("service = kvs", ConfigErrorKind::BadService),
            ("service = kvs 7000 extra", ConfigErrorKind::BadService),
            ("service = teapot 7000", ConfigErrorKind::UnknownService),
            ("service = kvs 0", ConfigErrorKind::BadPort),
            ("service = kvs 70000", ConfigErrorKind::BadPort),
            ("agent_port = 0", ConfigErrorKind::BadPort),
            ("controller = 10.0.0.1", ConfigErrorKind::BadEndpoint),
            ("controller = 10.0.0.1:x", ConfigErrorKind::BadEndpoint),
        ];
        for (line, kind) in cases {
            let text = std::format!("{base}{line}\nservice = count 7001\n");
            assert_eq!(refused(&text), (3, kind), "{line}");
        }
        let text = std::format!("{base}service = kvs 7000\nservice = count 7000\n");
        assert_eq!(refused(&text), (4, ConfigErrorKind::DuplicatePort));
        let text = std::format!("{base}agent_port = 7000\nservice = count 7000\n");
        assert_eq!(refused(&text), (4, ConfigErrorKind::DuplicatePort));
        let text = std::format!("{base}service = count 7000\nagent_port = 7000\n");
        assert_eq!(refused(&text), (0, ConfigErrorKind::DuplicatePort));
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "10.0.0",
            "10.0.0.256",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "x",
        ] {
            let text = std::format!("nic_ip = {bad}\nhost_ip = 10.0.0.1\nservice = kvs 1\n");
            assert_eq!(refused(&text), (1, ConfigErrorKind::BadAddress), "{bad}");
        }
    }

    #[test]
    fn refuses_incomplete_files() {
        let cases = [
            (
                "host_ip = 10.0.0.1\nservice = kvs 1\n",
                ConfigErrorKind::MissingNicIp,
            ),
            (
                "nic_ip = 10.0.0.1\nservice = kvs 1\n",
                ConfigErrorKind::MissingHostIp,
            ),
            (
                "nic_ip = 10.0.0.1\nhost_ip = 10.0.0.1\nservice = kvs 1\n",
                ConfigErrorKind::SameAddress,
            ),
            (
                "nic_ip = 10.0.0.2\nhost_ip = 10.0.0.1\n",
                ConfigErrorKind::NoService,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(refused(text), (0, kind));
        }
        assert_eq!(refused(""), (0, ConfigErrorKind::MissingNicIp));
    }

    #[test]
    fn refuses_binary_and_oversized_input() {
        assert_eq!(
            BootConfig::parse(&[0xff, 0xfe, 0x00]).unwrap_err().kind,
            ConfigErrorKind::NotText
        );
        let long = std::vec![b'#'; MAX_LEN + 1];
        assert_eq!(
            BootConfig::parse(&long).unwrap_err().kind,
            ConfigErrorKind::TooLong
        );
        let mut many = std::string::String::from("nic_ip = 10.0.0.2\nhost_ip = 10.0.0.1\n");
        for port in 1..=(MAX_SERVICES as u16 + 1) {
            many.push_str(&std::format!("service = count {port}\n"));
        }
        assert_eq!(refused(&many).1, ConfigErrorKind::TooManyServices);
    }

    #[test]
    fn error_message_names_line_and_text() {
        let error = BootConfig::parse(b"nic_ip = 10.0.0.2\nhost_ip = nowhere\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "boot configuration refused: line 2: not an IPv4 address like 10.0.0.2: \
             `host_ip = nowhere`"
        );
    }
}
