//! Next hops for datagrams the NIC originates (the host's replies, the agent's heartbeats): the
//! MAC and port each remote IP was last heard from, learned from every datagram addressed to
//! the NIC or the host, with a configured gateway as fallback.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::wire::{Ipv4Address, MacAddress};

/// Remote addresses remembered at once; the oldest is forgotten first.
pub const CAPACITY: usize = 64;

/// Where frames for a remote IP go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Destination MAC (the remote's, or the switch's).
    pub mac: MacAddress,
    /// Port to send on.
    pub port: u8,
}

/// A bounded table of next hops.
pub struct Neighbours {
    table: spin::Mutex<heapless::FnvIndexMap<Ipv4Address, NextHop, CAPACITY>>,
    /// Bumped on every change of the table, so a [`LastLearned`] knows when it is stale.
    generation: AtomicU32,
    gateway: Option<NextHop>,
}

/// One core's memory of what it last taught the table: a stream of datagrams from one sender
/// then takes the table's lock once, not once per datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastLearned(Option<(Ipv4Address, NextHop, u32)>);

impl Neighbours {
    /// An empty table; `gateway` (the top-of-rack switch) serves addresses not learned.
    pub fn new(gateway: Option<NextHop>) -> Self {
        Neighbours {
            table: spin::Mutex::new(heapless::FnvIndexMap::new()),
            generation: AtomicU32::new(0),
            gateway,
        }
    }

    /// Remembers that `ip` was heard through `hop`, unless `last` says this core already did
    /// and the table has not changed since.
    /// The check is inlined into the packet path; the lock and the table are not.
    #[inline]
    pub fn learn_once(&self, last: &mut LastLearned, ip: Ipv4Address, hop: NextHop) {
        let generation = self.generation.load(Ordering::Relaxed);
        if last.0 != Some((ip, hop, generation)) {
            self.learn_and_remember(last, ip, hop);
        }
    }

    #[cold]
    #[inline(never)]
    fn learn_and_remember(&self, last: &mut LastLearned, ip: Ipv4Address, hop: NextHop) {
        let generation = self.learn(ip, hop);
        *last = LastLearned(Some((ip, hop, generation)));
    }

    /// Remembers that `ip` was heard through `hop`; returns the table's generation after it.
    pub fn learn(&self, ip: Ipv4Address, hop: NextHop) -> u32 {
        let mut table = self.table.lock();
        if table.get(&ip) == Some(&hop) {
            return self.generation.load(Ordering::Relaxed);
        }
        if table.len() == CAPACITY && !table.contains_key(&ip) {
            // heapless' map removes by moving the last entry into the hole, so the first entry
            // is only roughly the oldest: enough for a cache.
            if let Some(oldest) = table.keys().next().copied() {
                table.swap_remove(&oldest);
            }
        }
        // Cannot fail: there is room now.
        let _ = table.insert(ip, hop);
        // Under the lock: generations follow the table's changes in order.
        self.generation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// The next hop towards `ip`.
    pub fn lookup(&self, ip: Ipv4Address) -> Option<NextHop> {
        self.table.lock().get(&ip).copied().or(self.gateway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: NextHop = NextHop {
        mac: MacAddress([2, 0, 0, 0, 0, 1]),
        port: 0,
    };

    #[test]
    fn learns_and_falls_back_to_the_gateway() {
        let neighbours = Neighbours::new(Some(SWITCH));
        let peer = Ipv4Address::new(10, 0, 1, 7);
        assert_eq!(neighbours.lookup(peer), Some(SWITCH));
        let hop = NextHop {
            mac: MacAddress([2, 0, 0, 0, 0, 9]),
            port: 1,
        };
        neighbours.learn(peer, hop);
        assert_eq!(neighbours.lookup(peer), Some(hop));
        assert_eq!(Neighbours::new(None).lookup(peer), None);
    }

    #[test]
    fn a_core_learns_once_until_the_table_changes() {
        let neighbours = Neighbours::new(None);
        let mut last = LastLearned::default();
        let (a, b) = (Ipv4Address::new(10, 0, 1, 1), Ipv4Address::new(10, 0, 1, 2));
        neighbours.learn_once(&mut last, a, SWITCH);
        let generation = neighbours.generation.load(Ordering::Relaxed);
        neighbours.learn_once(&mut last, a, SWITCH);
        assert_eq!(neighbours.generation.load(Ordering::Relaxed), generation);
        // Another core fills the table until `a` is forgotten: this core learns it again.
        for i in 0..CAPACITY as u32 {
            neighbours.learn(Ipv4Address::from_bits(0x0b00_0000 + i), SWITCH);
        }
        assert_eq!(neighbours.table.lock().get(&a), None);
        neighbours.learn_once(&mut last, a, SWITCH);
        assert_eq!(neighbours.lookup(a), Some(SWITCH));
        // A new MAC for the same address is learned at once.
        let moved = NextHop {
            mac: MacAddress([2, 0, 0, 0, 0, 7]),
            port: 1,
        };
        neighbours.learn_once(&mut last, a, moved);
        assert_eq!(neighbours.lookup(a), Some(moved));
        neighbours.learn_once(&mut last, b, SWITCH);
        assert_eq!(neighbours.lookup(b), Some(SWITCH));
    }

    #[test]
    fn stays_bounded() {
        let neighbours = Neighbours::new(None);
        for i in 0..1000u32 {
            neighbours.learn(Ipv4Address::from_bits(i), SWITCH);
        }
        assert_eq!(neighbours.table.lock().len(), CAPACITY);
        assert_eq!(neighbours.lookup(Ipv4Address::from_bits(999)), Some(SWITCH));
    }
}
