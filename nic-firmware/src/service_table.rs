//! The service table: which UDP port of the NIC IP goes where, and the deployed services.
//!
//! Routes are read on every request without a lock (one atomic word per route); they change
//! only on orchestrator commands, under a writer lock, and each change bumps the table's route
//! generation, so that a core may keep what it looked up last in a [`RouteCache`] and look
//! again only when the routes have changed. Each deployed service sits in a slot
//! behind its own lock (a [`Service`] handles one request at a time). Its statistics are kept
//! per core (single writer, no locked add) and summed when read; a slot's generation changes
//! with every deploy so that readers can tell one service's counts from the next's.

use alloc::boxed::Box;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use microservices::{Service, ServiceId};

use crate::counters::CoreCounter;

/// Most services deployed at once.
pub const MAX_SERVICES: usize = 32;
/// Most UDP ports routed at once.
pub const MAX_ROUTES: usize = 64;

/// Where requests to one UDP port of the NIC IP go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To the service in this slot.
    Local(usize),
    /// Set aside while the service in this slot is stopped (for migration); handed on when
    /// the port is routed again.
    Parked(usize),
    /// Over the host path (the service runs on the host now).
    Host,
    /// To the orchestrator agent (commands).
    Agent,
}

const VALID: u64 = 1 << 63;
const KIND_LOCAL: u64 = 0;
const KIND_PARKED: u64 = 1;
const KIND_HOST: u64 = 2;
const KIND_AGENT: u64 = 3;

impl Route {
    fn encode(self, port: u16) -> u64 {
        let (kind, slot) = match self {
            Route::Local(slot) => (KIND_LOCAL, slot),
            Route::Parked(slot) => (KIND_PARKED, slot),
            Route::Host => (KIND_HOST, 0),
            Route::Agent => (KIND_AGENT, 0),
        };
        VALID | (u64::from(port) << 32) | (kind << 16) | (slot as u64 & 0xffff)
    }

    fn decode(word: u64) -> Option<(u16, Route)> {
        if word & VALID == 0 {
            return None;
        }
        let port = (word >> 32) as u16;
        let slot = (word & 0xffff) as usize;
        let route = match (word >> 16) & 0xffff {
            KIND_LOCAL => Route::Local(slot),
            KIND_PARKED => Route::Parked(slot),
            KIND_HOST => Route::Host,
            _ => Route::Agent,
        };
        Some((port, route))
    }
}

/// Why the table refused a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Every service slot is taken.
    NoFreeSlot,
    /// Every route is taken.
    NoFreeRoute,
    /// A service with this id is already deployed.
    DuplicateId,
    /// No service with this id is deployed.
    UnknownService,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableError::NoFreeSlot => "no free service slot",
            TableError::NoFreeRoute => "no free route",
            TableError::DuplicateId => "service id already deployed",
            TableError::UnknownService => "no such service",
        })
    }
}

/// One core's counts for one service slot. Counts only grow: a new service in the slot
/// starts a new generation instead of a reset.
#[derive(Debug, Default)]
struct CoreServiceStats {
    requests: CoreCounter,
    errors: CoreCounter,
    busy_cycles: CoreCounter,
}

/// One core's counts for every slot, a cache line apart from the next core's.
#[repr(align(128))]
struct CoreSlots([CoreServiceStats; MAX_SERVICES]);

/// A slot's counts summed over cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Changes whenever a service is deployed in the slot.
    pub generation: u32,
    /// Requests handled since the runtime started (all generations).
    pub requests: u64,
    /// Of those, requests answered with an error.
    pub errors: u64,
    /// Board cycles ([`Board::cycles`](crate::platform::Board::cycles)) spent in the service,
    /// measured around each run of consecutive requests a core gives it (so
    /// `busy_cycles / requests` is the mean time per request).
    pub busy_cycles: u64,
}

/// One deployed service.
#[derive(Default)]
struct ServiceSlot {
    service: spin::Mutex<Option<Box<dyn Service>>>,
    generation: AtomicU32,
}

/// Ports one [`RouteCache`] remembers, by port number modulo this.
const ROUTE_CACHE_ENTRIES: usize = 8;

/// One core's memory of the routes it looked up last ([`ServiceTable::route_cached`]): per
/// entry a port, the route generation it was looked up in and the route (`None`: no route).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteCache {
    entries: [Option<(u16, u32, Option<Route>)>; ROUTE_CACHE_ENTRIES],
}

/// Routes and slots.
pub struct ServiceTable {
    routes: [AtomicU64; MAX_ROUTES],
    /// Bumped after every change of `routes`.
    route_generation: AtomicU32,
    slots: Box<[ServiceSlot]>,
    stats: Box<[CoreSlots]>,
    writer: spin::Mutex<()>,
}

impl Default for ServiceTable {
    fn default() -> Self {
        Self::new(1)
    }
}

impl ServiceTable {
    /// An empty table for `cores` cores (allocates its slots and statistics).
    pub fn new(cores: usize) -> Self {
        ServiceTable {
            routes: core::array::from_fn(|_| AtomicU64::new(0)),
            route_generation: AtomicU32::new(0),
            slots: (0..MAX_SERVICES).map(|_| ServiceSlot::default()).collect(),
            stats: (0..cores.max(1))
                .map(|_| CoreSlots(core::array::from_fn(|_| CoreServiceStats::default())))
                .collect(),
            writer: spin::Mutex::new(()),
        }
    }

    /// Where requests to `port` go, if anywhere.
    #[inline]
    pub fn route(&self, port: u16) -> Option<Route> {
        self.routes
            .iter()
            .filter_map(|word| Route::decode(word.load(Ordering::Acquire)))
            .find_map(|(routed, route)| (routed == port).then_some(route))
    }

    /// [`ServiceTable::route`] through one core's `cache`: the route looked up last for a
    /// port is used again while the routes have not changed since (one load and two
    /// compares instead of a scan of the table).
    #[inline]
    pub fn route_cached(&self, cache: &mut RouteCache, port: u16) -> Option<Route> {
        // Acquire: a generation that a change bumped comes with the change (set_route and
        // remove store the route before bumping the generation, with Release).
        let generation = self.route_generation.load(Ordering::Acquire);
        let entry = &mut cache.entries[usize::from(port) % ROUTE_CACHE_ENTRIES];
        match *entry {
            Some((cached, seen, route)) if cached == port && seen == generation => route,
            _ => {
                // Looked up after reading the generation: if the routes change meanwhile,
                // the entry is stale at once and the next lookup looks again.
                let route = self.route(port);
                *entry = Some((port, generation, route));
                route
            }
        }
    }

    /// Every route, for reports.
    pub fn routes(&self) -> impl Iterator<Item = (u16, Route)> + '_ {
        self.routes
            .iter()
            .filter_map(|word| Route::decode(word.load(Ordering::Acquire)))
    }

    /// Routes `port` to `route`, or removes its route with `None`.
    pub fn set_route(&self, port: u16, route: Option<Route>) -> Result<(), TableError> {
        let _writer = self.writer.lock();
        let existing = self.routes.iter().find(|word| {
            Route::decode(word.load(Ordering::Relaxed)).is_some_and(|(p, _)| p == port)
        });
        let word = match (existing, route) {
            (Some(word), _) => word,
            (None, None) => return Ok(()),
            (None, Some(_)) => self
                .routes
                .iter()
                .find(|word| word.load(Ordering::Relaxed) & VALID == 0)
                .ok_or(TableError::NoFreeRoute)?,
        };
        // Release: a reader that sees the new route also sees the service installed before it.
        word.store(route.map_or(0, |r| r.encode(port)), Ordering::Release);
        self.route_generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Puts `service` in a free slot (statistics reset) and returns the slot.
    pub fn install(&self, service: Box<dyn Service>) -> Result<usize, TableError> {
        let _writer = self.writer.lock();
        let id = service.identity().id;
        if self.find(id).is_some() {
            return Err(TableError::DuplicateId);
        }
        for (index, slot) in self.slots.iter().enumerate() {
            let mut guard = slot.service.lock();
            if guard.is_none() {
                slot.generation.fetch_add(1, Ordering::Relaxed);
                *guard = Some(service);
                return Ok(index);
            }
        }
        Err(TableError::NoFreeSlot)
    }

    /// Takes the service out of `slot` and removes the routes to it.
    pub fn remove(&self, slot: usize) -> Option<Box<dyn Service>> {
        let service = self.slots.get(slot)?.service.lock().take();
        let _writer = self.writer.lock();
        for word in &self.routes {
            if let Some((_, Route::Local(s) | Route::Parked(s))) =
                Route::decode(word.load(Ordering::Relaxed))
            {
                if s == slot {
                    word.store(0, Ordering::Release);
                }
            }
        }
        self.route_generation.fetch_add(1, Ordering::Release);
        service
    }

    /// The slot of the service with `id`.
    pub fn find(&self, id: ServiceId) -> Option<usize> {
        self.slots.iter().position(|slot| {
            slot.service
                .lock()
                .as_ref()
                .is_some_and(|s| s.identity().id == id)
        })
    }

    /// Runs `f` on the service in `slot` (waiting for the core using it); `None` if empty.
    #[inline]
    pub fn with_service<R>(
        &self,
        slot: usize,
        f: impl FnOnce(&mut (dyn Service + 'static)) -> R,
    ) -> Option<R> {
        let mut guard = self.slots.get(slot)?.service.lock();
        guard.as_deref_mut().map(f)
    }

    /// Counts `requests` requests of the service in `slot` run by `core` back to back,
    /// `errors` of them answered with an error, which took `busy_cycles` together (the core
    /// times a run of requests to one service, not each request: see docs/nic-runtime.md).
    /// Only `core` may call this for its index.
    #[inline]
    pub fn record(&self, core: usize, slot: usize, requests: u64, errors: u64, busy_cycles: u64) {
        let Some(stats) = self.stats.get(core).and_then(|c| c.0.get(slot)) else {
            return;
        };
        stats.requests.add(requests);
        stats.busy_cycles.add(busy_cycles);
        if errors != 0 {
            stats.errors.add(errors);
        }
    }

    /// The slot's statistics, summed over cores.
    pub fn stats(&self, slot: usize) -> Option<ServiceStats> {
        let generation = self.slots.get(slot)?.generation.load(Ordering::Relaxed);
        let mut total = ServiceStats {
            generation,
            ..ServiceStats::default()
        };
        for core in self.stats.iter() {
            let stats = core.0.get(slot)?;
            total.requests += stats.requests.get();
            total.errors += stats.errors.get();
            total.busy_cycles += stats.busy_cycles.get();
        }
        Some(total)
    }

    /// Slots, for the agent's per-service statistics.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microservices::services::Echo;

    #[test]
    fn routes_encode_every_kind() {
        for route in [
            Route::Local(3),
            Route::Parked(31),
            Route::Host,
            Route::Agent,
        ] {
            assert_eq!(Route::decode(route.encode(65535)), Some((65535, route)));
            assert_eq!(Route::decode(route.encode(0)), Some((0, route)));
        }
        assert_eq!(Route::decode(0), None);
    }

    #[test]
    fn install_route_and_remove() {
        let table = ServiceTable::new(1);
        let slot = table.install(Box::new(Echo::new(ServiceId(7)))).unwrap();
        assert_eq!(
            table.install(Box::new(Echo::new(ServiceId(7)))),
            Err(TableError::DuplicateId)
        );
        table.set_route(7001, Some(Route::Local(slot))).unwrap();
        table.set_route(7002, Some(Route::Host)).unwrap();
        assert_eq!(table.route(7001), Some(Route::Local(slot)));
        assert_eq!(table.route(7002), Some(Route::Host));
        assert_eq!(table.route(7003), None);
        assert_eq!(table.find(ServiceId(7)), Some(slot));
        let id = table.with_service(slot, |s| s.identity().id);
        assert_eq!(id, Some(ServiceId(7)));
        table.set_route(7001, Some(Route::Parked(slot))).unwrap();
        assert_eq!(table.route(7001), Some(Route::Parked(slot)));
        assert!(table.remove(slot).is_some());
        assert_eq!(table.route(7001), None);
        assert_eq!(table.route(7002), Some(Route::Host));
        assert!(table.with_service(slot, |_| ()).is_none());
        let before = table.stats(slot).unwrap();
        table.record(0, slot, 1, 1, 100);
        let after = table.stats(slot).unwrap();
        assert_eq!(
            (after.requests, after.errors, after.busy_cycles),
            (1, 1, 100)
        );
        let again = table.install(Box::new(Echo::new(ServiceId(8)))).unwrap();
        assert_eq!(again, slot, "the freed slot is reused");
        assert_ne!(table.stats(slot).unwrap().generation, before.generation);
        table.set_route(7002, None).unwrap();
        assert_eq!(table.routes().count(), 0);
    }

    #[test]
    fn a_route_cache_looks_again_after_every_change() {
        let table = ServiceTable::new(1);
        let mut cache = RouteCache::default();
        let slot = table.install(Box::new(Echo::new(ServiceId(1)))).unwrap();
        assert_eq!(table.route_cached(&mut cache, 7001), None, "no route yet");
        table.set_route(7001, Some(Route::Local(slot))).unwrap();
        assert_eq!(
            table.route_cached(&mut cache, 7001),
            Some(Route::Local(slot))
        );
        // Ports that share an entry (7009 = 7001 + 8) evict each other and stay right.
        table.set_route(7009, Some(Route::Host)).unwrap();
        for _ in 0..2 {
            assert_eq!(table.route_cached(&mut cache, 7009), Some(Route::Host));
            assert_eq!(
                table.route_cached(&mut cache, 7001),
                Some(Route::Local(slot))
            );
        }
        table.set_route(7001, Some(Route::Parked(slot))).unwrap();
        assert_eq!(
            table.route_cached(&mut cache, 7001),
            Some(Route::Parked(slot))
        );
        table.remove(slot);
        assert_eq!(table.route_cached(&mut cache, 7001), None);
        assert_eq!(table.route_cached(&mut cache, 7009), Some(Route::Host));
        table.set_route(7009, None).unwrap();
        assert_eq!(table.route_cached(&mut cache, 7009), None);
        // Every port through the cache answers as the table does.
        table.set_route(5, Some(Route::Agent)).unwrap();
        for port in 0..64 {
            assert_eq!(table.route_cached(&mut cache, port), table.route(port));
        }
    }

    #[test]
    fn tables_fill_up_cleanly() {
        let table = ServiceTable::new(1);
        for id in 0..MAX_SERVICES as u16 {
            table.install(Box::new(Echo::new(ServiceId(id)))).unwrap();
        }
        assert_eq!(
            table.install(Box::new(Echo::new(ServiceId(999)))).err(),
            Some(TableError::NoFreeSlot)
        );
        for port in 0..MAX_ROUTES as u16 {
            table.set_route(port, Some(Route::Host)).unwrap();
        }
        assert_eq!(
            table.set_route(9999, Some(Route::Host)),
            Err(TableError::NoFreeRoute)
        );
        // Re-routing an existing port needs no new entry.
        table.set_route(5, Some(Route::Agent)).unwrap();
        assert_eq!(table.route(5), Some(Route::Agent));
    }
}
