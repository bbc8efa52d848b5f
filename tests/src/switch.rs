//! The top-of-rack switch of the hardware-in-loop tests and the demo: one Unix datagram socket
//! per NIC port (QEMU's dgram netdev carries one Ethernet frame per datagram), and an IPv4
//! router in front of them.
//!
//! Routing ([`Switch::forward`]): every destination the switch knows is a group of next hops
//! (a switch port and the MAC behind it). A NIC's own IP is a group of that NIC's ports; the
//! host IP is one ECMP group over the ports of every NIC that fronts the host. A frame's next
//! hop is picked by a hash of its 5-tuple (FNV-1a over source and destination address,
//! protocol, source and destination port), so every frame of a flow takes the same port. The
//! hash selects one of [`BUCKETS`] buckets, each bucket names a live member (resilient
//! hashing): when a member goes down only its buckets move, spread over the survivors, and
//! flows on the survivors stay where they are. The router rewrites the destination MAC to the
//! next hop's, the source MAC to its own ([`Switch::mac`]) and decrements the TTL. Frames are
//! read and rewritten with the firmware's `wire` module: one whose IPv4 header the firmware's
//! parser refuses (a bad length or header checksum, a fragment) is dropped and counted as
//! unroutable.
//!
//! Link state: a port's link is up while QEMU holds its end of the cable (the NIC-side socket is
//! bound; a `connect` probe sends nothing). The switch looks again at most every
//! [`LINK_CHECK`] when it forwards, whenever a route is added, and whenever a test asks
//! ([`Switch::wait_for_link`]); a NIC that powers off (QEMU exits) takes its ports out of every
//! group at the next look, whichever of these it is. A frame whose group has no
//! live member is dropped and counted. A hung NIC whose QEMU still runs keeps its link, as a
//! real one would.
//!
//! Frames from the NICs go to whoever plays the clients behind the switch: a test reads one
//! port ([`SwitchPort::recv`]) or all of them ([`Switch::receive`]).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nic_firmware::wire::ethernet::EthernetHeader;
use nic_firmware::wire::ipv4::Ipv4Header;
use nic_firmware::wire::tcp::TcpHeader;
use nic_firmware::wire::udp::UdpHeader;
use nic_firmware::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Address, Ipv4Packet, MacAddress,
};
use zerocopy::FromBytes;

use crate::frames;
use crate::nic::PortBackend;

/// Largest frame read (a jumbo-free Ethernet frame fits with room to spare).
const MAX_FRAME: usize = 2048;
/// Buckets of an ECMP group.
pub const BUCKETS: usize = 64;
/// How long the switch trusts the link state it last saw when forwarding.
pub const LINK_CHECK: Duration = Duration::from_millis(10);
/// The switch's own MAC (locally administered).
pub const SWITCH_MAC: MacAddress = MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);

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

    /// Whether the NIC holds its end of the cable (its socket is bound). Sends nothing.
    pub fn carrier(&self) -> bool {
        UnixDatagram::unbound().is_ok_and(|probe| probe.connect(&self.nic_side).is_ok())
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
        while self.try_recv().is_some() {}
    }
}

/// Where the router sends a frame: a switch port and the MAC behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The switch port.
    pub port: usize,
    /// The MAC of the NIC port cabled there.
    pub mac: MacAddress,
}

/// The fields of a frame the router looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    /// IPv4 source.
    pub source: Ipv4Address,
    /// IPv4 destination.
    pub destination: Ipv4Address,
    /// IP protocol.
    pub protocol: u8,
    /// Source port (0 for protocols without ports).
    pub source_port: u16,
    /// Destination port (0 for protocols without ports).
    pub destination_port: u16,
}

impl FiveTuple {
    /// The 5-tuple of an Ethernet/IPv4 frame, or `None` for a frame the router does not route:
    /// not IPv4, or an IPv4 header the firmware's parser refuses (lengths, options, a header
    /// checksum that does not verify, which a router must check (RFC 1812, 5.2.2), or a
    /// fragment, which no NIC here reassembles). The ports are those of a UDP or TCP header
    /// (0 for other protocols or a segment too short for its header); the router reads them
    /// without checking the segment's own checksum, as a router does.
    pub fn of(frame: &[u8]) -> Option<FiveTuple> {
        let ethernet = EthernetFrame::parse(frame).ok()?;
        if ethernet.ethertype() != EtherType::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::parse(ethernet.payload).ok()?;
        let ports = match ip.protocol() {
            IpProtocol::Udp => UdpHeader::ref_from_prefix(ip.payload)
                .ok()
                .map(|(udp, _)| (udp.source_port.get(), udp.destination_port.get())),
            IpProtocol::Tcp => TcpHeader::ref_from_prefix(ip.payload)
                .ok()
                .map(|(tcp, _)| (tcp.source_port.get(), tcp.destination_port.get())),
            _ => None,
        };
        let (source_port, destination_port) = ports.unwrap_or((0, 0));
        Some(FiveTuple {
            source: ip.source(),
            destination: ip.destination(),
            protocol: ip.protocol().into(),
            source_port,
            destination_port,
        })
    }

    /// The flow hash the router picks next hops by: FNV-1a (64-bit) over source address,
    /// destination address, protocol, source port and destination port.
    pub fn hash(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let [s0, s1] = self.source_port.to_be_bytes();
        let [d0, d1] = self.destination_port.to_be_bytes();
        let bytes = self.source.0.into_iter().chain(self.destination.0).chain([
            self.protocol,
            s0,
            s1,
            d0,
            d1,
        ]);
        for byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

/// A destination's next hops and which live one each bucket of the flow hash goes to.
#[derive(Clone, Debug)]
struct Group {
    members: Vec<NextHop>,
    /// Index into `members` per bucket; `None` when no member is live.
    buckets: [Option<usize>; BUCKETS],
}

impl Group {
    fn new() -> Group {
        Group {
            members: Vec::new(),
            buckets: [None; BUCKETS],
        }
    }

    /// Spreads every bucket evenly over the live members (on creation and when one joins).
    fn rebalance(&mut self, up: &[bool]) {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&m| up[self.members[m].port])
            .collect();
        for (bucket, slot) in self.buckets.iter_mut().enumerate() {
            *slot = (!live.is_empty()).then(|| live[bucket % live.len()]);
        }
    }

    /// Moves only the buckets of members that went down, round-robin over the live ones.
    fn repair(&mut self, up: &[bool]) {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&m| up[self.members[m].port])
            .collect();
        let mut next = 0;
        for slot in self.buckets.iter_mut() {
            let dead = slot.is_none_or(|m| !up[self.members[m].port]);
            if dead {
                *slot = (!live.is_empty()).then(|| {
                    next += 1;
                    live[(next - 1) % live.len()]
                });
            }
        }
    }

    fn pick(&self, hash: u64) -> Option<NextHop> {
        self.buckets[(hash % BUCKETS as u64) as usize].map(|m| self.members[m])
    }
}

/// What the router did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Sent out of this port.
    Sent(NextHop),
    /// Dropped: the destination's group has no live member (its NICs' links are down).
    LinkDown,
    /// Dropped: no route for the destination.
    NoRoute,
    /// Dropped: not an IPv4 frame, or its TTL ran out.
    Unroutable,
}

/// What the switch counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchCounters {
    /// Frames routed out of each port.
    pub forwarded: BTreeMap<usize, u64>,
    /// Frames dropped because every next hop of their destination was down.
    pub link_down: u64,
    /// Frames dropped for want of a route.
    pub no_route: u64,
    /// Frames dropped as not routable (not IPv4, TTL expired).
    pub unroutable: u64,
    /// Times a port's link was seen going down.
    pub links_lost: u64,
}

/// The routing state, shared by whoever forwards.
struct Fabric {
    groups: BTreeMap<[u8; 4], Group>,
    up: Vec<bool>,
    checked: Option<Instant>,
    counters: SwitchCounters,
}

impl Fabric {
    /// Takes in every port's link state as just seen: counts the links lost since the last
    /// look and, in every group, moves the buckets of ports that went down to the survivors,
    /// or spreads all buckets again when a port came up. The only place `up` changes, so no
    /// change goes unseen by any group, whoever looked.
    fn observe(&mut self, now: Vec<bool>) {
        let lost = self
            .up
            .iter()
            .zip(&now)
            .filter(|(&was, &is)| was && !is)
            .count();
        let gained = self.up.iter().zip(&now).any(|(&was, &is)| !was && is);
        self.counters.links_lost += lost as u64;
        self.up = now;
        self.checked = Some(Instant::now());
        for group in self.groups.values_mut() {
            if gained {
                group.rebalance(&self.up);
            } else if lost > 0 {
                group.repair(&self.up);
            }
        }
    }
}

/// The switch: its ports, its routes and the directory their sockets live in.
pub struct Switch {
    dir: PathBuf,
    ports: Vec<SwitchPort>,
    fabric: Mutex<Fabric>,
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
            fabric: Mutex::new(Fabric {
                groups: BTreeMap::new(),
                up: Vec::new(),
                checked: None,
                counters: SwitchCounters::default(),
            }),
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
        self.fabric().up.push(false);
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

    /// The switch's MAC: what clients send routed frames to, and what the NICs answer to.
    pub fn mac(&self) -> MacAddress {
        SWITCH_MAC
    }

    fn fabric(&self) -> std::sync::MutexGuard<'_, Fabric> {
        self.fabric
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `hop` to the next hops of `destination` (a new destination gets a group), after a
    /// look at every link (which updates every group, not only this one).
    pub fn add_route(&self, destination: Ipv4Address, hop: NextHop) {
        let mut fabric = self.fabric();
        fabric.observe(self.link_states());
        let Fabric { groups, up, .. } = &mut *fabric;
        let group = groups.entry(destination.0).or_insert_with(Group::new);
        if !group.members.contains(&hop) {
            group.members.push(hop);
        }
        group.rebalance(up);
    }

    /// The next hop the router would pick for `tuple` now (after a look at the links).
    pub fn choose(&self, tuple: &FiveTuple) -> Option<NextHop> {
        self.refresh_links(false);
        let fabric = self.fabric();
        fabric
            .groups
            .get(&tuple.destination.0)
            .and_then(|group| group.pick(tuple.hash()))
    }

    /// Routes one frame from a client: picks the next hop, rewrites the frame and sends it.
    pub fn forward(&self, frame: &[u8]) -> Result<Forwarded> {
        self.refresh_links(false);
        let Some(tuple) = FiveTuple::of(frame) else {
            self.fabric().counters.unroutable += 1;
            return Ok(Forwarded::Unroutable);
        };
        let hop = {
            let mut fabric = self.fabric();
            match fabric.groups.get(&tuple.destination.0) {
                None => {
                    fabric.counters.no_route += 1;
                    return Ok(Forwarded::NoRoute);
                }
                Some(group) => match group.pick(tuple.hash()) {
                    Some(hop) => hop,
                    None => {
                        fabric.counters.link_down += 1;
                        return Ok(Forwarded::LinkDown);
                    }
                },
            }
        };
        let mut routed = frame.to_vec();
        if !rewrite(&mut routed, hop.mac, SWITCH_MAC) {
            self.fabric().counters.unroutable += 1;
            return Ok(Forwarded::Unroutable);
        }
        if !self.ports[hop.port].send(&routed)? {
            // The link went down since the last look: the frame is lost, as on a real switch
            // inside its detection time, and the port leaves its groups now.
            self.refresh_links(true);
            self.fabric().counters.link_down += 1;
            return Ok(Forwarded::LinkDown);
        }
        *self
            .fabric()
            .counters
            .forwarded
            .entry(hop.port)
            .or_default() += 1;
        Ok(Forwarded::Sent(hop))
    }

    /// Every port's carrier, now.
    fn link_states(&self) -> Vec<bool> {
        self.ports.iter().map(SwitchPort::carrier).collect()
    }

    /// Looks at every link (unless it looked within [`LINK_CHECK`] and `now` is false) and
    /// takes ports whose link went down out of their groups, or puts back those that came up.
    /// The fabric stays locked from the look to the update, so two callers cannot store their
    /// snapshots out of order.
    fn refresh_links(&self, now: bool) {
        let mut fabric = self.fabric();
        if !now && fabric.checked.is_some_and(|at| at.elapsed() < LINK_CHECK) {
            return;
        }
        fabric.observe(self.link_states());
    }

    /// Waits until port `port`'s link is `up` (or not) as the switch sees it.
    pub fn wait_for_link(&self, port: usize, up: bool, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh_links(true);
            if self.fabric().up.get(port) == Some(&up) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "switch port {port} did not go {} within {timeout:?}",
                    if up { "up" } else { "down" }
                );
            }
            std::thread::sleep(LINK_CHECK);
        }
    }

    /// What the switch counted so far.
    pub fn counters(&self) -> SwitchCounters {
        self.fabric().counters.clone()
    }

    /// Waits up to `timeout` for a frame from any NIC port that `accept` takes (others are
    /// dropped); returns the port it came in on and the frame.
    pub fn receive(
        &self,
        timeout: Duration,
        mut accept: impl FnMut(usize, &[u8]) -> bool,
    ) -> Option<(usize, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        loop {
            for (index, port) in self.ports.iter().enumerate() {
                while let Some(frame) = port.try_recv() {
                    if accept(index, &frame) {
                        return Some((index, frame));
                    }
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.wait_readable(left);
        }
    }

    /// Sleeps until some port has a frame waiting, or `timeout` passes.
    fn wait_readable(&self, timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = self
            .ports
            .iter()
            .map(|port| libc::pollfd {
                fd: port.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs, each naming a socket this
        // switch owns; poll only writes their `revents`.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    }
}

/// Rewrites a routed frame in place: destination MAC `to`, source MAC `from`, TTL one less
/// and the header checksum recomputed. `false` when the TTL has run out (or the frame holds no
/// IPv4 header, which [`FiveTuple::of`] already refused).
fn rewrite(frame: &mut [u8], to: MacAddress, from: MacAddress) -> bool {
    let Ok((ethernet, ip)) = EthernetHeader::mut_from_prefix(frame) else {
        return false;
    };
    let Ok((header, _)) = Ipv4Header::mut_from_prefix(ip) else {
        return false;
    };
    if header.ttl <= 1 {
        return false;
    }
    header.ttl -= 1;
    ethernet.destination = to;
    ethernet.source = from;
    frames::refresh_ipv4_checksum(frame).is_some()
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::Station;

    fn station(n: u8, port: u16) -> Station {
        Station {
            mac: MacAddress([0x02, 0, 0, 0, 0, n]),
            ip: Ipv4Address([10, 0, 1, n]),
            port,
        }
    }

    const HOST: Ipv4Address = Ipv4Address([10, 0, 0, 1]);

    fn host(port: u16) -> Station {
        Station {
            mac: SWITCH_MAC,
            ip: HOST,
            port,
        }
    }

    /// A switch with `n` ports whose NIC ends are sockets this test holds (the "NICs").
    fn switch_with_nics(name: &str, n: usize) -> (Switch, Vec<UnixDatagram>) {
        let mut switch = Switch::new(name).unwrap();
        let mut nics = Vec::new();
        for index in 0..n {
            let (_, backend) = switch.add_port().unwrap();
            let PortBackend::Unix { qemu, .. } = backend else {
                unreachable!()
            };
            nics.push(UnixDatagram::bind(qemu).unwrap());
            switch.add_route(
                HOST,
                NextHop {
                    port: index,
                    mac: MacAddress([0x52, 0x54, 0, 0, 0, index as u8]),
                },
            );
        }
        (switch, nics)
    }

    #[test]
    fn parses_the_five_tuple_of_a_udp_frame() {
        let frame = frames::udp(station(7, 5000), host(7100), b"hi");
        let tuple = FiveTuple::of(&frame).unwrap();
        assert_eq!(
            tuple,
            FiveTuple {
                source: Ipv4Address([10, 0, 1, 7]),
                destination: HOST,
                protocol: 17,
                source_port: 5000,
                destination_port: 7100,
            }
        );
        assert_eq!(FiveTuple::of(&frame[..20]), None);
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(FiveTuple::of(&arp), None);
        let mut bad_checksum = frame.clone();
        bad_checksum[24] ^= 0x01;
        assert_eq!(
            FiveTuple::of(&bad_checksum),
            None,
            "a router verifies the header"
        );
        // A datagram too short for its UDP header still routes, without ports.
        let mut short = frame[..14 + 20 + 4].to_vec();
        short[16..18].copy_from_slice(&24u16.to_be_bytes()); // Total length: header + 4.
        frames::refresh_ipv4_checksum(&mut short).unwrap();
        let tuple = FiveTuple::of(&short).unwrap();
        assert_eq!((tuple.source_port, tuple.destination_port), (0, 0));
    }

    #[test]
    fn a_routed_frame_gets_the_next_hops_mac_and_a_valid_checksum() {
        let (switch, nics) = switch_with_nics("switch-rewrite", 1);
        let frame = frames::udp(station(1, 4000), host(7100), b"payload");
        let Forwarded::Sent(hop) = switch.forward(&frame).unwrap() else {
            panic!("not forwarded")
        };
        let mut buffer = [0u8; 2048];
        let length = nics[hop.port].recv(&mut buffer).unwrap();
        let routed = &buffer[..length];
        assert_eq!(routed[0..6], hop.mac.0);
        assert_eq!(routed[6..12], SWITCH_MAC.0);
        assert_eq!(routed[22], frame[22] - 1, "TTL decremented");
        let datagram = frames::parse_udp(routed).expect("checksums still verify");
        assert_eq!(datagram.payload, b"payload");
    }

    /// Forwards `frame` and takes it off the "NIC" socket it went to (a socket's queue is
    /// short: a switch sending to a NIC that does not read would block).
    fn forward_and_deliver(switch: &Switch, nics: &[UnixDatagram], frame: &[u8]) -> Forwarded {
        let forwarded = switch.forward(frame).unwrap();
        if let Forwarded::Sent(hop) = forwarded {
            let mut buffer = [0u8; 2048];
            nics[hop.port].recv(&mut buffer).unwrap();
        }
        forwarded
    }

    #[test]
    fn flows_stay_on_one_port_and_spread_over_all() {
        let (switch, nics) = switch_with_nics("switch-spread", 2);
        let mut per_port = [0u32; 2];
        for flow in 0..32u16 {
            let frame = frames::udp(station(1, 6000 + flow), host(7100), b"x");
            let first = forward_and_deliver(&switch, &nics, &frame);
            let again = forward_and_deliver(&switch, &nics, &frame);
            assert_eq!(first, again, "flow {flow} keeps its port");
            let Forwarded::Sent(hop) = first else {
                panic!("{first:?}")
            };
            per_port[hop.port] += 2;
        }
        assert!(per_port.iter().all(|&n| n > 0), "{per_port:?}");
        assert_eq!(switch.counters().forwarded.values().sum::<u64>(), 64);
    }

    #[test]
    fn a_port_whose_nic_goes_away_leaves_the_group_and_only_its_flows_move() {
        let (switch, mut nics) = switch_with_nics("switch-failover", 2);
        let flows: Vec<Vec<u8>> = (0..32u16)
            .map(|flow| frames::udp(station(2, 7000 + flow), host(7100), b"x"))
            .collect();
        let before: Vec<Forwarded> = flows
            .iter()
            .map(|f| forward_and_deliver(&switch, &nics, f))
            .collect();
        assert!(before.contains(&Forwarded::Sent(NextHop {
            port: 1,
            mac: MacAddress([0x52, 0x54, 0, 0, 0, 1])
        })));
        // NIC 1 powers off: its socket closes, the switch sees the link drop.
        drop(nics.pop());
        switch
            .wait_for_link(1, false, Duration::from_secs(5))
            .unwrap();
        assert_eq!(switch.counters().links_lost, 1);
        for (flow, was) in flows.iter().zip(&before) {
            let now = forward_and_deliver(&switch, &nics, flow);
            let Forwarded::Sent(hop) = now else {
                panic!("{now:?}")
            };
            assert_eq!(hop.port, 0, "every flow re-hashed onto the survivor");
            if let Forwarded::Sent(old) = was {
                if old.port == 0 {
                    assert_eq!(now, *was, "flows on the survivor did not move");
                }
            }
        }
        // With no member left, frames for the group are dropped and counted.
        drop(nics.pop());
        switch
            .wait_for_link(0, false, Duration::from_secs(5))
            .unwrap();
        assert_eq!(switch.forward(&flows[0]).unwrap(), Forwarded::LinkDown);
        assert_eq!(switch.counters().link_down, 1);
    }

    #[test]
    fn a_port_that_goes_down_between_routes_leaves_every_group() {
        // Ports 0 and 1 in the host's group; then NIC 1 powers off, and before any forward a
        // third NIC boots and gets a route of its own, which looks at the links.
        let (mut switch, mut nics) = switch_with_nics("switch-between-routes", 2);
        nics[1] = UnixDatagram::unbound().unwrap(); // NIC 1's socket closes; nothing reads here.
        let (port, backend) = switch.add_port().unwrap();
        let PortBackend::Unix { qemu, .. } = backend else {
            unreachable!()
        };
        nics.push(UnixDatagram::bind(qemu).unwrap());
        let nic2_ip = Ipv4Address([10, 0, 0, 12]);
        let nic2 = NextHop {
            port,
            mac: MacAddress([0x52, 0x54, 0, 0, 0, 2]),
        };
        switch.add_route(nic2_ip, nic2);
        assert_eq!(switch.counters().links_lost, 1, "the route's look saw it");
        for flow in 0..32u16 {
            let frame = frames::udp(station(4, 8000 + flow), host(7100), b"x");
            let forwarded = forward_and_deliver(&switch, &nics, &frame);
            let Forwarded::Sent(hop) = forwarded else {
                panic!("flow {flow}: {forwarded:?}")
            };
            assert_eq!(hop.port, 0, "flow {flow} went to the survivor");
        }
        let to_nic2 = Station {
            ip: nic2_ip,
            ..host(7000)
        };
        let frame = frames::udp(station(4, 9000), to_nic2, b"x");
        assert_eq!(
            forward_and_deliver(&switch, &nics, &frame),
            Forwarded::Sent(nic2)
        );
        let counters = switch.counters();
        assert_eq!((counters.links_lost, counters.link_down), (1, 0));
    }

    #[test]
    fn unknown_destinations_and_non_ip_frames_are_dropped_and_counted() {
        let (switch, _nics) = switch_with_nics("switch-noroute", 1);
        let stranger = Station {
            ip: Ipv4Address([192, 0, 2, 1]),
            ..host(1)
        };
        let frame = frames::udp(station(3, 1), stranger, b"x");
        assert_eq!(switch.forward(&frame).unwrap(), Forwarded::NoRoute);
        assert_eq!(switch.forward(&[0u8; 10]).unwrap(), Forwarded::Unroutable);
        let mut expired = frames::udp(station(3, 1), host(1), b"x");
        expired[22] = 1;
        frames::refresh_ipv4_checksum(&mut expired).unwrap();
        assert!(
            FiveTuple::of(&expired).is_some(),
            "a valid frame, but its TTL ran out"
        );
        assert_eq!(switch.forward(&expired).unwrap(), Forwarded::Unroutable);
        let mut corrupt = frames::udp(station(3, 1), host(1), b"x");
        corrupt[24] ^= 0xff;
        assert_eq!(switch.forward(&corrupt).unwrap(), Forwarded::Unroutable);
        let counters = switch.counters();
        assert_eq!((counters.no_route, counters.unroutable), (1, 3));
    }

    #[test]
    fn receive_returns_the_first_accepted_frame_from_any_port() {
        let (switch, nics) = switch_with_nics("switch-receive", 2);
        let switch_side = |index: usize| switch.dir().join(format!("switch-{index}.sock"));
        nics[1].send_to(b"skip me", switch_side(1)).unwrap();
        nics[1].send_to(b"take me", switch_side(1)).unwrap();
        let (port, frame) = switch
            .receive(Duration::from_secs(5), |_, f| f.starts_with(b"take"))
            .unwrap();
        assert_eq!((port, frame.as_slice()), (1, &b"take me"[..]));
        assert!(switch
            .receive(Duration::from_millis(20), |_, _| true)
            .is_none());
    }
}
