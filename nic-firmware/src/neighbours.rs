//! Next hops for datagrams the host sends: the MAC and port each remote IP was last heard
//! from, learned from the traffic forwarded to the host, with a configured gateway as fallback.

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
    gateway: Option<NextHop>,
}

impl Neighbours {
    /// An empty table; `gateway` (the top-of-rack switch) serves addresses not learned.
    pub fn new(gateway: Option<NextHop>) -> Self {
        Neighbours {
            table: spin::Mutex::new(heapless::FnvIndexMap::new()),
            gateway,
        }
    }

    /// Remembers that `ip` was heard through `hop`.
    pub fn learn(&self, ip: Ipv4Address, hop: NextHop) {
        let mut table = self.table.lock();
        if table.get(&ip) == Some(&hop) {
            return;
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
    fn stays_bounded() {
        let neighbours = Neighbours::new(None);
        for i in 0..1000u32 {
            neighbours.learn(Ipv4Address::from_bits(i), SWITCH);
        }
        assert_eq!(neighbours.table.lock().len(), CAPACITY);
        assert_eq!(neighbours.lookup(Ipv4Address::from_bits(999)), Some(SWITCH));
    }
}
