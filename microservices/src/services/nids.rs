//! NIDS: network intrusion detection by multi-pattern matching of payloads against a rule
//! set, through the pattern-matching engine (Aho-Corasick semantics: every occurrence of every
//! rule, overlapping ones included).
//!
//! The rule set is compiled at deploy time. Request format: docs/services.md, section NIDS.

use alloc::vec::Vec;

use crate::codec::Response;
use crate::engines::{PatternError, PatternSet};
use crate::kind::ServiceKind;
use crate::service::{Context, Service, ServiceError, ServiceId, ServiceIdentity};

/// The NIDS service.
pub struct Nids {
    identity: ServiceIdentity,
    rules: PatternSet,
    /// One bit per rule: which matched in the current payload.
    matched: Vec<u64>,
}

impl Nids {
    /// A detector for `rules` (byte patterns; rule `i` is reported as `i`).
    pub fn new<I, P>(id: ServiceId, rules: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let rules = PatternSet::new(rules)?;
        Ok(Self {
            identity: ServiceIdentity::new(id, ServiceKind::Nids, 512, 600),
            matched: alloc::vec![0; rules.len().div_ceil(64)],
            rules,
        })
    }
}

impl Service for Nids {
    fn identity(&self) -> ServiceIdentity {
        self.identity
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<usize, ServiceError> {
        let mut out = Response::new(response)?;
        let mut total = 0u32;
        let matched = &mut self.matched;
        matched.fill(0);
        ctx.engines.pattern().scan(&self.rules, request, &mut |m| {
            total = total.saturating_add(1);
            if let Some(word) = matched.get_mut(m.pattern as usize / 64) {
                *word |= 1 << (m.pattern % 64);
            }
            true
        });
        let distinct: u32 = matched.iter().map(|w| w.count_ones()).sum();
        if out.space() < 6 + 4 * distinct as usize {
            return Err(ServiceError::ResponseTooSmall);
        }
        out.u32(total)?.u16(distinct as u16)?;
        for (index, &word) in matched.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let bit = bits.trailing_zeros();
                out.u32(index as u32 * 64 + bit)?;
                bits &= bits - 1;
            }
        }
        Ok(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::kat::naive_scan;
    use crate::services::testing::{call, Harness};
    use proptest::prelude::*;

    fn decode(answer: &[u8]) -> (u32, Vec<u32>) {
        let total = u32::from_le_bytes(answer[..4].try_into().unwrap());
        let m = u16::from_le_bytes([answer[4], answer[5]]) as usize;
        assert_eq!(answer.len(), 6 + 4 * m);
        (
            total,
            answer[6..]
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    fn expected(rules: &[&[u8]], payload: &[u8]) -> (u32, Vec<u32>) {
        let found = naive_scan(rules, payload);
        let mut ids: Vec<u32> = found.iter().map(|m| m.pattern).collect();
        ids.sort_unstable();
        ids.dedup();
        (found.len() as u32, ids)
    }

    proptest! {
        #[test]
        fn agrees_with_naive_search(
            rules in proptest::collection::vec(proptest::collection::vec(0u8..4, 1..5), 1..80),
            payload in proptest::collection::vec(0u8..4, 0..300),
        ) {
            let refs: Vec<&[u8]> = rules.iter().map(|r| &r[..]).collect();
            let mut h = Harness::new(Nids::new(ServiceId(1), &refs).unwrap());
            prop_assert_eq!(decode(&h.ok(&payload)), expected(&refs, &payload));
        }
    }

    #[test]
    fn signatures_in_a_payload() {
        let rules: [&[u8]; 4] = [b"/etc/passwd", b"cmd.exe", b"' OR 1=1", b"\x90\x90\x90\x90"];
        let mut h = Harness::new(Nids::new(ServiceId(1), rules).unwrap());
        let payload = b"GET /../../etc/passwd?q=' OR 1=1-- HTTP/1.1\r\n\x90\x90\x90\x90\x90";
        assert_eq!(decode(&h.ok(payload)), (4, vec![0, 2, 3]));
        assert_eq!(decode(&h.ok(b"")), (0, vec![]));
        let mut small = [0u8; 8];
        assert_eq!(
            call(&mut h.service, payload, &mut small),
            Err(ServiceError::ResponseTooSmall)
        );
        assert!(Nids::new(ServiceId(1), [b"".as_slice()]).is_err());
    }
}
