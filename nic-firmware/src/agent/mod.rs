//! The orchestrator agent (E3 section 3.4): per-service execution statistics with a moving
//! average, link utilisation and queue depth, summarised every interval in a 16-byte
//! heartbeat; and the commands that move a service (deploy, stop, snapshot, restore, set
//! route, remove).
//!
//! Layers: [`stats`] keeps each service's moving average, [`heartbeat`] and [`command`] are the
//! byte formats (docs/heartbeat.md, docs/orchestrator-commands.md), and this module applies
//! them to a runtime's [`ServiceTable`]. Commands arrive as UDP datagrams on the agent's port of
//! the NIC IP; heartbeats leave from that port to the controller. The agent is the control
//! path: deploy, snapshot and restore allocate, the packet path never does.

pub mod command;
pub mod heartbeat;
pub mod stats;

use alloc::boxed::Box;
use alloc::vec::Vec;

use core::sync::atomic::{AtomicU64, Ordering};

use microservices::services::deploy::{self, DeployError};
use microservices::{Service, ServiceId, ServiceKind};

use self::command::{Command, CommandError, RouteTarget, CHUNK};
use self::heartbeat::{Heartbeat, HeartbeatFlags, NO_SERVICE};
use self::stats::ServiceStatistics;
use crate::counters::CounterTotals;
use crate::platform::{Endpoint, MAX_PORTS};
use crate::service_table::{Route, ServiceTable, TableError, MAX_SERVICES};
use crate::tm::depth::DepthSummary;

/// E3's heartbeat period.
pub const HEARTBEAT_INTERVAL_NS: u64 = 50_000_000;
/// Largest state a restore accepts (bytes).
pub const MAX_RESTORE: u32 = 64 << 20;

/// Free heap bytes as the board's allocator counts them (a board without a bounded heap, such
/// as the software NIC, gives none).
pub type FreeMemory = fn() -> usize;

/// Heap bytes a deploy must leave free: the agent's own transfers and the runtime's control
/// path need some, and an allocator's free total is not one contiguous block.
pub const DEPLOY_RESERVE: usize = 1 << 20;

/// Builds instance `id` of `kind` from its deploy parameters
/// (`microservices::services::deploy`: empty parameters are the kind's standard
/// configuration), refusing it unless it leaves [`DEPLOY_RESERVE`] bytes of the heap free.
/// The agent's DEPLOY command and the boot configuration both build services here.
pub fn build_service(
    kind: ServiceKind,
    id: ServiceId,
    params: &[u8],
    free_memory: Option<FreeMemory>,
) -> Result<Box<dyn Service>, DeployError> {
    let plan = deploy::plan(deploy::Node::Nic, kind, params)?;
    if let Some(free) = free_memory {
        plan.fits(free().saturating_sub(DEPLOY_RESERVE))?;
    }
    plan.build(id)
}

/// The answer a deploy refusal gets.
pub fn deploy_status(error: &DeployError) -> CommandError {
    match error {
        DeployError::HostOnly(_) => CommandError::Unsupported,
        DeployError::BadParameters { .. } | DeployError::Refused { .. } => CommandError::BadField,
        DeployError::NoMemory { .. } | DeployError::OutOfMemory(_) => CommandError::NoMemory,
    }
}

/// What the agent's deploys came to, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeployCounts {
    /// Services deployed.
    pub deployed: u64,
    /// Deploys refused for lack of memory.
    pub no_memory: u64,
    /// Deploys refused otherwise (bad parameters, a kind the node cannot run, no free slot).
    pub refused: u64,
}

#[derive(Default)]
struct DeployCounters {
    deployed: AtomicU64,
    no_memory: AtomicU64,
    refused: AtomicU64,
}

/// How the agent is set up.
pub struct AgentConfig {
    /// This node's id in heartbeats.
    pub node: u16,
    /// The UDP port of the NIC IP commands arrive on and heartbeats leave from.
    pub port: u16,
    /// Where heartbeats go; `None` keeps them local ([`Agent::last_heartbeat`]).
    pub controller: Option<Endpoint>,
    /// Time between heartbeats.
    pub heartbeat_interval_ns: u64,
    /// The board's free heap, which deploys must fit in (leaving [`DEPLOY_RESERVE`]);
    /// `None` deploys without a check.
    pub free_memory: Option<FreeMemory>,
}

impl AgentConfig {
    /// Node `node` taking commands on `port`, heartbeats every 50 ms kept local, deploys
    /// unchecked for memory.
    pub fn new(node: u16, port: u16) -> Self {
        AgentConfig {
            node,
            port,
            controller: None,
            heartbeat_interval_ns: HEARTBEAT_INTERVAL_NS,
            free_memory: None,
        }
    }
}

/// What the runtime measured during one heartbeat interval.
pub struct Measurements<'a> {
    /// Time now.
    pub now_ns: u64,
    /// The board's cycle counter now (service execution time is counted in cycles).
    pub cycles: u64,
    /// Cores running the runtime.
    pub cores: usize,
    /// Queue depth summary of the interval.
    pub depth: DepthSummary,
    /// Counters since start.
    pub counters: &'a CounterTotals,
    /// Line rate of each port (0 for absent ports).
    pub link_bits_per_second: [u64; MAX_PORTS],
    /// The service table.
    pub services: &'a ServiceTable,
}

struct Transfer {
    service: u16,
    bytes: Vec<u8>,
}

struct AgentState {
    next_heartbeat_ns: u64,
    last_tick_ns: u64,
    last_tick_cycles: u64,
    sequence: u16,
    services: [ServiceStatistics; MAX_SERVICES],
    last_bytes: [[u64; 2]; MAX_PORTS],
    last_drops: u64,
    last_heartbeat: Option<Heartbeat>,
    snapshot: Option<Transfer>,
    restore: Option<Transfer>,
}

/// The agent of one runtime.
pub struct Agent {
    config: AgentConfig,
    state: spin::Mutex<AgentState>,
    deploys: DeployCounters,
}

impl Agent {
    /// An agent with `config`.
    pub fn new(config: AgentConfig) -> Self {
        Agent {
            state: spin::Mutex::new(AgentState {
                next_heartbeat_ns: config.heartbeat_interval_ns,
                last_tick_ns: 0,
                last_tick_cycles: 0,
                sequence: 0,
                services: [ServiceStatistics::default(); MAX_SERVICES],
                last_bytes: [[0; 2]; MAX_PORTS],
                last_drops: 0,
                last_heartbeat: None,
                snapshot: None,
                restore: None,
            }),
            deploys: DeployCounters::default(),
            config,
        }
    }

    /// What deploys came to so far.
    pub fn deploy_counts(&self) -> DeployCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DeployCounts {
            deployed: get(&self.deploys.deployed),
            no_memory: get(&self.deploys.no_memory),
            refused: get(&self.deploys.refused),
        }
    }

    /// Builds a service for a DEPLOY command, counting and logging a refusal.
    fn deploy(
        &self,
        table: &ServiceTable,
        service: u16,
        kind: ServiceKind,
        params: &[u8],
    ) -> Result<usize, CommandError> {
        let built = if table.find(ServiceId(service)).is_some() {
            Err(CommandError::DuplicateService)
        } else {
            let id = ServiceId(service);
            build_service(kind, id, params, self.config.free_memory)
                .map_err(|error| {
                    log::warn!("deploy of service {service} refused: {error}");
                    deploy_status(&error)
                })
                .and_then(|instance| table.install(instance).map_err(table_error))
        };
        let counter = match built {
            Ok(_) => &self.deploys.deployed,
            Err(CommandError::NoMemory) => &self.deploys.no_memory,
            Err(_) => &self.deploys.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        built
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Whether a heartbeat is due at `now_ns`.
    pub fn heartbeat_due(&self, now_ns: u64) -> bool {
        self.state
            .try_lock()
            .is_some_and(|state| now_ns >= state.next_heartbeat_ns)
    }

    /// The last heartbeat made.
    pub fn last_heartbeat(&self) -> Option<Heartbeat> {
        self.state.lock().last_heartbeat
    }

    /// Closes the interval and makes its heartbeat.
    pub fn heartbeat(&self, m: &Measurements<'_>) -> Heartbeat {
        let mut state = self.state.lock();
        let interval_ns = m.now_ns.saturating_sub(state.last_tick_ns).max(1);
        let interval_cycles = m.cycles.wrapping_sub(state.last_tick_cycles).max(1);
        state.last_tick_ns = m.now_ns;
        state.last_tick_cycles = m.cycles;
        // Service time is counted in board cycles; this interval says how long one is.
        let to_ns = |cycles: u64| {
            (u128::from(cycles) * u128::from(interval_ns) / u128::from(interval_cycles)) as u64
        };
        state.next_heartbeat_ns = m.now_ns.saturating_add(self.config.heartbeat_interval_ns);
        state.sequence = state.sequence.wrapping_add(1);

        let mut flags = HeartbeatFlags::empty();
        if m.depth.standing() {
            flags |= HeartbeatFlags::STANDING_QUEUE;
        }
        let drops = m.counters.total_dropped();
        if drops != state.last_drops {
            flags |= HeartbeatFlags::DROPPING;
        }
        state.last_drops = drops;

        let mut utilisation = 0u64;
        for port in 0..MAX_PORTS {
            let now = [m.counters.rx_bytes[port], m.counters.tx_bytes[port]];
            let capacity = u128::from(m.link_bits_per_second[port]) * u128::from(interval_ns);
            for (direction, bytes) in now.iter().enumerate() {
                let delta = bytes.wrapping_sub(state.last_bytes[port][direction]);
                // bits * 1e9 ns/s * 10_000 basis points / (bits/s * ns)
                let scaled = u128::from(delta) * 8 * 1_000_000_000 * 10_000;
                if let Some(points) = scaled.checked_div(capacity) {
                    utilisation = utilisation.max(points.min(10_000) as u64);
                }
            }
            state.last_bytes[port] = now;
        }

        let mut busiest: Option<(u16, u64, u64)> = None;
        let mut overloaded = 0u8;
        for slot in 0..m.services.slots().min(MAX_SERVICES) {
            let (Some(stats), Some(id)) = (
                m.services.stats(slot),
                m.services.with_service(slot, |s| s.identity().id.0),
            ) else {
                state.services[slot] = ServiceStatistics::default();
                continue;
            };
            let interval = state.services[slot].close_interval(
                stats.generation,
                stats.requests,
                stats.busy_cycles,
                to_ns,
            );
            if interval.overloaded {
                overloaded = overloaded.saturating_add(1);
            }
            if interval.busy_ns > 0 && busiest.is_none_or(|(_, busy, _)| interval.busy_ns > busy) {
                busiest = Some((id, interval.busy_ns, state.services[slot].ema_ns()));
            }
        }
        if overloaded > 0 {
            flags |= HeartbeatFlags::OVERLOAD;
        }
        let node_ns = u128::from(interval_ns) * m.cores.max(1) as u128;
        let (busiest_service, busiest_ema_ns, busiest_cpu_percent) = match busiest {
            Some((id, busy, ema)) => {
                let percent = (u128::from(busy) * 100 / node_ns).min(100) as u8;
                (id, ema, percent)
            }
            None => (NO_SERVICE, 0, 0),
        };
        let beat = Heartbeat {
            flags,
            node: self.config.node,
            sequence: state.sequence,
            queue_depth: u16::try_from(m.depth.mean()).unwrap_or(u16::MAX),
            link_utilisation: utilisation as u16,
            busiest_service,
            busiest_ema_ns,
            busiest_cpu_percent,
            overloaded_services: overloaded,
        };
        state.last_heartbeat = Some(beat);
        beat
    }

    /// Carries out the command in `request` on `table` and writes the answer into `answer`;
    /// returns the answer's length and whether a port stopped parking (the parked requests
    /// must then be handed on).
    pub fn execute(
        &self,
        table: &ServiceTable,
        request: &[u8],
        answer: &mut [u8],
    ) -> (usize, bool) {
        let (id, parsed) = command::parse(request);
        let mut body = [0u8; 4 + CHUNK];
        let result = parsed.and_then(|c| self.apply(table, &c, &mut body));
        let header = command::write_answer_header(answer, id, result.map(|_| ()));
        let (body_len, released) = result.unwrap_or((0, false));
        let body_len = body_len.min(answer.len().saturating_sub(header));
        answer[header..header + body_len].copy_from_slice(&body[..body_len]);
        (header + body_len, released)
    }

    fn apply(
        &self,
        table: &ServiceTable,
        command: &Command<'_>,
        body: &mut [u8; 4 + CHUNK],
    ) -> Result<(usize, bool), CommandError> {
        let slot_of = |service: u16| {
            table
                .find(ServiceId(service))
                .ok_or(CommandError::UnknownService)
        };
        match *command {
            Command::Deploy {
                service,
                kind,
                port,
                config,
            } => {
                let slot = self.deploy(table, service, kind, config)?;
                if let Err(error) = table.set_route(port, Some(Route::Local(slot))) {
                    table.remove(slot);
                    return Err(table_error(error));
                }
                Ok((0, false))
            }
            Command::Stop { service } => {
                let slot = slot_of(service)?;
                for (port, route) in table.routes() {
                    if route == Route::Local(slot) {
                        table
                            .set_route(port, Some(Route::Parked(slot)))
                            .map_err(table_error)?;
                    }
                }
                Ok((0, false))
            }
            Command::Snapshot { service, offset } => {
                let slot = slot_of(service)?;
                let mut state = self.state.lock();
                if offset == 0 {
                    let mut bytes = Vec::new();
                    table.with_service(slot, |s| s.snapshot(&mut bytes));
                    state.snapshot = Some(Transfer { service, bytes });
                }
                let transfer = state
                    .snapshot
                    .as_ref()
                    .filter(|t| t.service == service)
                    .ok_or(CommandError::OutOfSequence)?;
                let total = transfer.bytes.len();
                let start = usize::try_from(offset).map_err(|_| CommandError::BadField)?;
                let chunk = transfer.bytes.get(start..).ok_or(CommandError::BadField)?;
                let chunk = &chunk[..chunk.len().min(CHUNK)];
                body[..4].copy_from_slice(&(total as u32).to_le_bytes());
                body[4..4 + chunk.len()].copy_from_slice(chunk);
                Ok((4 + chunk.len(), false))
            }
            Command::Restore {
                service,
                total,
                offset,
                chunk,
            } => {
                let slot = slot_of(service)?;
                if total > MAX_RESTORE {
                    return Err(CommandError::BadField);
                }
                let mut state = self.state.lock();
                if offset == 0 {
                    // The whole state's room up front, fallibly: a restore that does not fit
                    // the heap is refused, not a crash.
                    let mut bytes = Vec::new();
                    bytes
                        .try_reserve_exact(total as usize)
                        .map_err(|_| CommandError::NoMemory)?;
                    state.restore = Some(Transfer { service, bytes });
                }
                let transfer = state
                    .restore
                    .as_mut()
                    .filter(|t| t.service == service && t.bytes.len() == offset as usize)
                    .ok_or(CommandError::OutOfSequence)?;
                transfer.bytes.extend_from_slice(chunk);
                if transfer.bytes.len() < total as usize {
                    return Ok((0, false));
                }
                let bytes = core::mem::take(&mut transfer.bytes);
                state.restore = None;
                drop(state);
                match table.with_service(slot, |s| s.restore(&bytes)) {
                    Some(Ok(())) => Ok((0, false)),
                    Some(Err(_)) => Err(CommandError::BadState),
                    None => Err(CommandError::UnknownService),
                }
            }
            Command::SetRoute { port, target } => {
                let route = match target {
                    RouteTarget::None => None,
                    RouteTarget::Host => Some(Route::Host),
                    RouteTarget::Service(service) => Some(Route::Local(slot_of(service)?)),
                };
                let was_parked = matches!(table.route(port), Some(Route::Parked(_)));
                table.set_route(port, route).map_err(table_error)?;
                Ok((0, was_parked))
            }
            Command::Remove { service } => {
                let slot = slot_of(service)?;
                let parked = table
                    .routes()
                    .any(|(_, route)| route == Route::Parked(slot));
                table.remove(slot);
                // Requests parked for a removed service now find the port closed.
                Ok((0, parked))
            }
        }
    }
}

fn table_error(error: TableError) -> CommandError {
    match error {
        TableError::NoFreeSlot | TableError::NoFreeRoute => CommandError::Full,
        TableError::DuplicateId => CommandError::DuplicateService,
        TableError::UnknownService => CommandError::UnknownService,
    }
}
