//! NATv4: static network address translation of destination addresses, the rule chosen by
//! longest-prefix match in a DIR-24-8-BASIC table.
//!
//! A rule maps one network onto another of the same length (`10.1.0.0/16 -> 192.168.0.0/16`
//! keeps the host bits); the packet's IPv4 header checksum and TCP/UDP checksum are updated
//! incrementally. The rules are deploy-time configuration, so the service is stateless.
//! Request format: docs/services.md, section NATv4.

mod lpm;

use alloc::vec::Vec;

pub use lpm::{mask, LpmError};
use lpm::{Dir24_8, MAX_VALUE};

use super::ipv4::Ipv4;
use crate::codec::Response;
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// One translation rule: addresses in `prefix/len` become the same host in `to/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Network matched (host bits zero).
    pub prefix: u32,
    /// Prefix length, 0 to 32.
    pub len: u8,
    /// Network it is translated to (host bits are ignored).
    pub to: u32,
}

impl Rule {
    /// Where this rule sends `address` (which it matches).
    pub fn translate(&self, address: u32) -> u32 {
        let network = mask(self.len);
        (self.to & network) | (address & !network)
    }
}

/// Heap bytes a NAT table of `rules` takes while it is built and after: the DIR-24-8 index
/// (its 32 MiB first level and a segment per /24 holding a rule longer than /24), the rules
/// and the build's route list.
pub fn footprint(rules: &[Rule]) -> usize {
    let mut long: Vec<u32> = rules
        .iter()
        .filter(|rule| rule.len > 24)
        .map(|rule| rule.prefix >> 8)
        .collect();
    long.sort_unstable();
    long.dedup();
    let per_rule = size_of::<Rule>() + size_of::<(u32, u8, u16)>();
    Dir24_8::footprint(rules.len(), long.len()) + rules.len() * per_rule
}

/// The translation table: rules and their DIR-24-8 index.
pub struct NatTable {
    rules: Vec<Rule>,
    lpm: Dir24_8,
}

impl NatTable {
    /// Builds the table; later rules win over earlier ones with the same prefix and length.
    pub fn new(rules: &[Rule]) -> Result<Self, LpmError> {
        if rules.len() > usize::from(MAX_VALUE) + 1 {
            return Err(LpmError::BadValue);
        }
        let routes: Vec<(u32, u8, u16)> = (0u16..)
            .zip(rules)
            .map(|(i, r)| (r.prefix, r.len, i))
            .collect();
        Ok(Self {
            rules: rules.to_vec(),
            lpm: Dir24_8::build(&routes)?,
        })
    }

    /// The rule for `address`.
    #[inline]
    pub fn lookup(&self, address: u32) -> Option<&Rule> {
        self.rules.get(usize::from(self.lpm.lookup(address)?))
    }

    /// Translates the destination of the IPv4 packet in `packet` in place; returns the
    /// packet's length (its IPv4 total length).
    pub fn translate(&self, packet: &mut [u8]) -> Result<usize, ServiceError> {
        let mut ip = Ipv4::parse(packet)?;
        let rule = self
            .lookup(ip.destination())
            .ok_or(ServiceError::NotFound)?;
        ip.set_destination(rule.translate(ip.destination()));
        Ok(ip.bytes().len())
    }
}

/// The NATv4 service.
pub struct Nat {
    identity: ServiceIdentity,
    table: NatTable,
}

impl Nat {
    /// A NAT instance with `rules`.
    pub fn new(id: ServiceId, rules: &[Rule]) -> Result<Self, LpmError> {
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Nat, 512, 150),
            table: NatTable::new(rules)?,
        })
    }
}

impl Service for Nat {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        _ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut out = Response::new(response)?;
        let len = request.len().min(out.space());
        if len < request.len() && len < 20 {
            return Err(ServiceError::ResponseTooSmall);
        }
        let packet = out.reserve(len)?;
        packet.copy_from_slice(&request[..len]);
        // A packet longer than the response buffer fails the total-length check.
        let translated = self.table.translate(packet).map_err(|e| match e {
            ServiceError::BadLength if len < request.len() => ServiceError::ResponseTooSmall,
            e => e,
        })?;
        Ok(1 + translated)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::services::ipv4::ones_complement_sum;
    use crate::services::ipv4::{udp_packet, udp_sum};
    use crate::services::testing::packets::{check_translated, packet_spec, PacketSpec};
    use crate::services::testing::{call, Harness};
    use proptest::prelude::*;

    /// Networks the random rules fall in, so that random destinations often match.
    const BASES: [u32; 3] = [0x0a00_0000, 0xc0a8_0000, 0xac10_0000];

    /// The network mask of a `len`-bit prefix, for the references (not [`mask`]).
    fn network(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }

    /// A rule from (base, bits, length, target).
    pub(crate) fn random_rule((base, bits, len, to): (usize, u32, u8, u32)) -> Rule {
        let network = network(len);
        Rule {
            prefix: (BASES[base % BASES.len()] ^ (bits & 0x00ff_ffff)) & network,
            len,
            to,
        }
    }

    pub(crate) fn rule_strategy() -> impl Strategy<Value = Rule> {
        (0..BASES.len(), any::<u32>(), 0u8..=32, any::<u32>()).prop_map(random_rule)
    }

    /// A destination from (pick, rule index, host bits): inside a rule's network unless `pick`
    /// is 0, then the host bits themselves.
    pub(crate) fn destination(rules: &[Rule], (pick, index, host): (u8, usize, u32)) -> u32 {
        let rule = &rules[index % rules.len()];
        let network = network(rule.len);
        if pick == 0 {
            host
        } else {
            rule.prefix | (host & !network)
        }
    }

    /// Longest-prefix match by a linear scan (later rules win ties), and where it sends
    /// `address`: the rule's network with the address's host bits.
    pub(crate) fn linear_translate(rules: &[Rule], address: u32) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for rule in rules {
            let network = network(rule.len);
            if address & network == rule.prefix && best.is_none_or(|(len, _)| rule.len >= len) {
                best = Some((rule.len, (rule.to & network) | (address & !network)));
            }
        }
        best.map(|(_, to)| to)
    }

    proptest! {
        // Each case fills a 32 MiB DIR-24-8 table.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_packets_are_translated_with_valid_checksums(
            rules in proptest::collection::vec(rule_strategy(), 1..24),
            packets in proptest::collection::vec(
                (packet_spec(), (0u8..4, any::<usize>(), any::<u32>())), 1..24),
        ) {
            let mut h = Harness::new(Nat::new(ServiceId(3), &rules).unwrap());
            for (spec, pick) in &packets {
                let spec: &PacketSpec = spec;
                let dst = destination(&rules, *pick);
                let packet = spec.build(dst);
                match linear_translate(&rules, dst) {
                    Some(to) => check_translated(&packet, &h.ok(&packet), to),
                    None => prop_assert_eq!(h.err(&packet), ServiceError::NotFound),
                }
            }
        }
    }

    fn nat() -> Harness<Nat> {
        let rules = [
            Rule {
                prefix: 0x0a01_0000,
                len: 16,
                to: 0xc0a8_0000,
            },
            Rule {
                prefix: 0x0a01_0200,
                len: 24,
                to: 0xac10_0500,
            },
            Rule {
                prefix: 0x0a01_0203,
                len: 32,
                to: 0x0808_0808,
            },
        ];
        Harness::new(Nat::new(ServiceId(3), &rules).unwrap())
    }

    #[test]
    fn longest_prefix_picks_the_rule_and_checksums_stay_valid() {
        let mut h = nat();
        for (dst, expected) in [
            (0x0a01_0909, 0xc0a8_0909),
            (0x0a01_0209, 0xac10_0509),
            (0x0a01_0203, 0x0808_0808),
        ] {
            let mut request = udp_packet(0x0102_0304, dst, (12345, 53), b"payload");
            let len = request.len();
            request.resize(512, 0xaa);
            let out = h.ok(&request);
            assert_eq!(out.len(), len, "padding is not part of the packet");
            assert_eq!(
                u32::from_be_bytes(out[16..20].try_into().unwrap()),
                expected
            );
            assert_eq!(ones_complement_sum(&out[..20]), 0xffff);
            assert_eq!(udp_sum(&out), 0xffff);
        }
        assert_eq!(
            h.err(&udp_packet(1, 0x0b00_0001, (12345, 53), b"")),
            ServiceError::NotFound
        );
    }

    #[test]
    fn short_buffers_and_bad_packets() {
        let mut h = nat();
        let packet = udp_packet(1, 0x0a01_0101, (12345, 53), &[7; 100]);
        let mut small = [0u8; 64];
        assert_eq!(
            call(&mut h.service, &packet, &mut small),
            Err(ServiceError::ResponseTooSmall)
        );
        assert_eq!(h.err(&packet[..10]), ServiceError::Truncated);
        assert_eq!(h.err(&packet[..50]), ServiceError::BadLength);
    }
}
