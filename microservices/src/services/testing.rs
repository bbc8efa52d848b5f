//! Test helpers shared by the services' tests: a service with software engines and a clock.

use alloc::vec::Vec;

use crate::engines::SoftwareEngines;
use crate::service::{Context, Service, ServiceError};

/// Largest response the tests accept.
pub const RESPONSE_MAX: usize = 4096;

/// Calls `service` once with software engines at time 0.
pub fn call<S: Service>(
    service: &mut S,
    request: &[u8],
    response: &mut [u8],
) -> Result<usize, ServiceError> {
    let mut ctx = Context::new(&SoftwareEngines, 0);
    service.handle(&mut ctx, request, response)
}

/// A service under test, with its clock.
pub struct Harness<S> {
    /// The service.
    pub service: S,
    /// Time handed to the next request, nanoseconds.
    pub now_ns: u64,
}

impl<S: Service> Harness<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self { service, now_ns: 0 }
    }

    fn run(&mut self, request: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut response = [0u8; RESPONSE_MAX];
        let mut ctx = Context::new(&SoftwareEngines, self.now_ns);
        let (len, error) = self.service.serve(&mut ctx, request, &mut response);
        match error {
            None => {
                assert_eq!(response[0], 0, "success responses start with status 0");
                Ok(response[1..len].to_vec())
            }
            Some(e) => {
                assert_eq!((len, response[0]), (1, e.code()));
                Err(e)
            }
        }
    }

    /// The payload (after the status byte) of a request that must succeed.
    #[track_caller]
    pub fn ok(&mut self, request: &[u8]) -> Vec<u8> {
        match self.run(request) {
            Ok(payload) => payload,
            Err(e) => panic!("request {request:02x?} failed: {e}"),
        }
    }

    /// The error of a request that must fail.
    #[track_caller]
    pub fn err(&mut self, request: &[u8]) -> ServiceError {
        match self.run(request) {
            Ok(payload) => panic!("request {request:02x?} succeeded with {payload:02x?}"),
            Err(e) => e,
        }
    }

    /// Whatever the request answers.
    pub fn answer(&mut self, request: &[u8]) -> Result<Vec<u8>, ServiceError> {
        self.run(request)
    }

    /// Snapshots this service into `other` (which must restore it) and aligns the clocks.
    pub fn migrate_to(&self, other: &mut Harness<S>) {
        let mut bytes = Vec::new();
        self.service.snapshot(&mut bytes);
        other.service.restore(&bytes).expect("snapshot restores");
        other.now_ns = self.now_ns;
    }
}

/// IPv4 packets for the packet services' property tests, with checksums computed here from
/// RFC 1071 and RFC 768/793 directly (nothing shared with [`super::ipv4`]).
pub mod packets {
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// IP protocol numbers the generator picks from: UDP, TCP, ICMP, GRE.
    const PROTOCOLS: [u8; 4] = [17, 6, 1, 47];

    /// The RFC 1071 Internet checksum sum of `bytes`, byte by byte: even offsets are the high
    /// byte of a 16-bit word, an odd length pads with zero, carries fold back in.
    pub fn internet_sum(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            sum += if i % 2 == 0 {
                u64::from(byte) << 8
            } else {
                u64::from(byte)
            };
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The sum of the TCP/UDP pseudo-header of `header` (source, destination, zero, protocol,
    /// L4 length) followed by the L4 bytes `l4`.
    pub fn pseudo_sum(header: &[u8], l4: &[u8]) -> u16 {
        let mut bytes = header[12..20].to_vec();
        bytes.extend_from_slice(&[0, header[9]]);
        bytes.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        bytes.extend_from_slice(l4);
        internet_sum(&bytes)
    }

    /// The fields of a random IPv4 packet; [`PacketSpec::build`] makes it for a destination.
    #[derive(Clone, Debug)]
    pub struct PacketSpec {
        /// Source address.
        pub source: u32,
        /// IP protocol.
        pub protocol: u8,
        /// Option bytes (a multiple of 4, at most 40).
        pub options: Vec<u8>,
        /// Flags and fragment offset field.
        pub fragment: u16,
        /// Identification and TTL.
        pub id_ttl: (u16, u8),
        /// Everything after the IPv4 header; a UDP or TCP header is written over its start
        /// when it is long enough to hold one.
        pub payload: Vec<u8>,
        /// Send a UDP datagram with checksum 0 ("no checksum").
        pub no_udp_checksum: bool,
        /// Bytes after the packet's total length (link-layer padding).
        pub padding: Vec<u8>,
    }

    /// Random packets: any protocol of [`PROTOCOLS`], 0 to 40 option bytes, 0 to 599 bytes
    /// after the header, mostly unfragmented, sometimes a first or a later fragment.
    pub fn packet_spec() -> impl Strategy<Value = PacketSpec> {
        let fragment = prop_oneof![
            5 => Just(0x4000u16),
            2 => Just(0u16),
            1 => Just(0x2000u16),
            1 => (1u16..0x2000, any::<bool>())
                .prop_map(|(offset, more)| offset | if more { 0x2000 } else { 0 }),
        ];
        (
            any::<u32>(),
            0..PROTOCOLS.len(),
            proptest::collection::vec(any::<[u8; 4]>(), 0..=10),
            fragment,
            any::<(u16, u8)>(),
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::bool::weighted(0.2),
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(
                |(source, protocol, options, fragment, id_ttl, payload, no_udp, padding)| {
                    PacketSpec {
                        source,
                        protocol: PROTOCOLS[protocol],
                        options: options.concat(),
                        fragment,
                        id_ttl,
                        payload,
                        no_udp_checksum: no_udp,
                        padding,
                    }
                },
            )
    }

    impl PacketSpec {
        /// The packet to `destination`, valid IPv4 header checksum, valid UDP/TCP checksum
        /// (computed as if the packet were the whole datagram), padding after it.
        pub fn build(&self, destination: u32) -> Vec<u8> {
            let header_len = 20 + self.options.len();
            let total = header_len + self.payload.len();
            let mut p = Vec::with_capacity(total + self.padding.len());
            p.push(0x40 | (header_len / 4) as u8);
            p.push(0);
            p.extend_from_slice(&(total as u16).to_be_bytes());
            p.extend_from_slice(&self.id_ttl.0.to_be_bytes());
            p.extend_from_slice(&self.fragment.to_be_bytes());
            p.extend_from_slice(&[self.id_ttl.1, self.protocol, 0, 0]);
            p.extend_from_slice(&self.source.to_be_bytes());
            p.extend_from_slice(&destination.to_be_bytes());
            p.extend_from_slice(&self.options);
            let checksum = !internet_sum(&p);
            p[10..12].copy_from_slice(&checksum.to_be_bytes());
            let mut l4 = self.payload.clone();
            let len = l4.len();
            match self.protocol {
                17 if len >= 8 => {
                    l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
                    l4[6..8].fill(0);
                    let sum = match !pseudo_sum(&p, &l4) {
                        _ if self.no_udp_checksum => 0,
                        0 => 0xffff,
                        sum => sum,
                    };
                    l4[6..8].copy_from_slice(&sum.to_be_bytes());
                }
                6 if len >= 20 => {
                    l4[12] = 0x50;
                    l4[16..18].fill(0);
                    let sum = !pseudo_sum(&p, &l4);
                    l4[16..18].copy_from_slice(&sum.to_be_bytes());
                }
                _ => {}
            }
            p.extend_from_slice(&l4);
            p.extend_from_slice(&self.padding);
            p
        }
    }

    /// One's-complement sums are equal as numbers modulo 0xffff (0 and 0xffff are both zero).
    fn same_sum(a: u16, b: u16) -> bool {
        a % 0xffff == b % 0xffff
    }

    /// Checks that `output` is `input` (as [`PacketSpec::build`] makes it) cut to its total
    /// length, with the destination `destination` and every checksum still valid: the IPv4
    /// header sums to 0xffff; in a first fragment of UDP or TCP whose checksum field is in the
    /// packet, the pseudo-header plus L4 bytes sum to what they did (0xffff for a whole
    /// datagram), and a UDP checksum of 0 stays 0 while no other becomes 0; every other byte is
    /// unchanged.
    #[track_caller]
    pub fn check_translated(input: &[u8], output: &[u8], destination: u32) {
        let header_len = usize::from(input[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([input[2], input[3]]));
        assert_eq!(output.len(), total, "the packet without its padding");
        assert_eq!(output[16..20], destination.to_be_bytes());
        assert_eq!(internet_sum(&output[..header_len]), 0xffff, "IPv4 header");
        let first = u16::from_be_bytes([input[6], input[7]]) & 0x1fff == 0;
        let field = match input[9] {
            17 if first => Some(header_len + 6),
            6 if first => Some(header_len + 16),
            _ => None,
        }
        .filter(|&at| at + 2 <= total);
        let mut changed = [10, 11, 16, 17, 18, 19].to_vec();
        if let Some(at) = field {
            changed.extend([at, at + 1]);
            let before = [input[at], input[at + 1]];
            let after = [output[at], output[at + 1]];
            if input[9] == 17 && before == [0, 0] {
                assert_eq!(after, [0, 0], "no UDP checksum stays none");
            } else {
                assert_ne!(after, [0, 0], "a checksum never becomes 'none'");
                let was = pseudo_sum(&input[..20], &input[header_len..total]);
                let is = pseudo_sum(&output[..20], &output[header_len..]);
                assert!(same_sum(was, is), "L4 sum {was:#06x} became {is:#06x}");
            }
        }
        for (i, (a, b)) in input[..total].iter().zip(output).enumerate() {
            if !changed.contains(&i) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
    }
}
