//! An application ready to place: its DAG, a profile per tier and an offered request rate,
//! turned into per-node request rates, per-node resource demands on each core class (the
//! service's own work, memory, disk), and the flows of messages between nodes and from the
//! clients that the communication model prices once both ends are placed.

use std::fmt;

use microservices::apps::{App, Dag, EdgeKind, NodeId, Role};

use super::profile::{builtin_profile, Pin, Profile, TABLE_1_MESSAGES_US};
use super::topology::{CoreClass, NodeSpec};

/// The resources a computing node offers and a microservice instance consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Cores (busy core-seconds per second).
    Cpu,
    /// Memory, GB.
    Memory,
    /// Disk, GB.
    Disk,
    /// Bandwidth of a node's network ports, Gb/s per direction.
    Bandwidth,
    /// Bandwidth of a SmartNIC's PCIe link, Gb/s per direction.
    Pcie,
    /// Requests in flight, counted as the busy cores whose queues they fill: a node's mean
    /// outstanding requests `cores u / (1 - u)` (Little's law with the evaluator's queueing)
    /// stay within its queues (`queue_per_core` per core) while `u <= q / (q + 1)`.
    Outstanding,
}

/// Number of [`Resource`]s.
pub const RESOURCES: usize = 6;

/// An amount of every resource, indexed by [`Resource::index`].
pub type Amounts = [f64; RESOURCES];

impl Resource {
    /// Every resource, in index order.
    pub const ALL: [Resource; RESOURCES] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Disk,
        Resource::Bandwidth,
        Resource::Pcie,
        Resource::Outstanding,
    ];

    /// Position in [`Amounts`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Name and unit, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu (cores)",
            Resource::Memory => "memory (GB)",
            Resource::Disk => "disk (GB)",
            Resource::Bandwidth => "port bandwidth (Gb/s)",
            Resource::Pcie => "PCIe bandwidth (Gb/s)",
            Resource::Outstanding => "outstanding requests (busy cores within the queues)",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a computing node of `spec` offers.
pub fn capacity(spec: &NodeSpec) -> Amounts {
    let cores = f64::from(spec.cores);
    let queue = f64::from(spec.queue_per_core);
    [
        cores,
        spec.memory_gb,
        spec.disk_gb,
        spec.bandwidth_gbps,
        spec.pcie_gbps,
        cores * queue / (queue + 1.0),
    ]
}

/// Share of its primary's core time a backup spends applying state updates.
pub const BACKUP_CPU_SHARE: f64 = 0.1;
/// Bytes of state update a stateful primary sends its backups per request.
pub const STATE_UPDATE_BYTES: f64 = 64.0;

/// Messages between two DAG nodes, or between a source node and the application's clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flow {
    /// The node that sends the requests (or state updates); `None` for the clients.
    pub caller: Option<NodeId>,
    /// The node that receives them.
    pub callee: NodeId,
    /// Calls (or one-way messages) per second.
    pub rate: f64,
    /// Bytes of each message (a reply is as large as its request).
    pub bytes: f64,
    /// Whether each call has a reply (a request/response); state updates do not.
    pub round_trip: bool,
}

impl Flow {
    /// Messages each end sends or receives per call: the request and its reply, or the one
    /// update.
    pub fn messages_per_end(&self) -> f64 {
        if self.round_trip {
            2.0
        } else {
            1.0
        }
    }

    /// Load on every link the flow crosses, Gb/s per direction.
    pub fn gbps(&self) -> f64 {
        self.rate * self.bytes * 8.0 / 1e9
    }

    /// The other end of the flow, seen from `v` (`None`: the clients).
    pub fn peer(&self, v: NodeId) -> Option<NodeId> {
        if self.callee == v {
            self.caller
        } else {
            Some(self.callee)
        }
    }
}

/// Why a workload could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadError {
    /// The number of profiles is not the number of tiers.
    ProfileCount {
        /// Tiers in the DAG.
        tiers: usize,
        /// Profiles given.
        profiles: usize,
    },
    /// A profile has an impossible figure.
    BadProfile {
        /// The tier.
        tier: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The request rate is negative or not finite.
    BadRate(f64),
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::ProfileCount { tiers, profiles } => {
                write!(f, "{profiles} profiles for {tiers} tiers")
            }
            WorkloadError::BadProfile { tier, problem } => write!(f, "tier `{tier}`: {problem}"),
            WorkloadError::BadRate(rate) => write!(f, "request rate {rate} is not a rate"),
        }
    }
}

impl std::error::Error for WorkloadError {}

/// An application with its profiles and offered load: the input of every placement algorithm.
#[derive(Clone, Debug)]
pub struct Workload {
    dag: Dag,
    profiles: Vec<Profile>,
    rate: f64,
    /// Requests per second each node handles (a backup: state updates per second).
    node_rate: Vec<f64>,
    /// Demand of each node on a beefy and on a wimpy core class.
    demand: Vec<[Amounts; 2]>,
    /// Replica group (the shard) of each node: primary and backups share one.
    group: Vec<u32>,
    /// Every flow of messages.
    flows: Vec<Flow>,
    /// The flows each node is an end of, as indices into `flows`.
    incident: Vec<Vec<u32>>,
}

impl Workload {
    /// A workload of `dag` with one profile per tier, offered `rate` requests per second.
    pub fn new(dag: Dag, profiles: Vec<Profile>, rate: f64) -> Result<Workload, WorkloadError> {
        if profiles.len() != dag.tiers().len() {
            return Err(WorkloadError::ProfileCount {
                tiers: dag.tiers().len(),
                profiles: profiles.len(),
            });
        }
        for (tier, profile) in dag.tiers().iter().zip(&profiles) {
            profile
                .check()
                .map_err(|problem| WorkloadError::BadProfile {
                    tier: tier.name.clone(),
                    problem,
                })?;
        }
        if !rate.is_finite() || rate < 0.0 {
            return Err(WorkloadError::BadRate(rate));
        }
        let node_rate = node_rates(&dag, rate);
        let mut group = vec![0u32; dag.len()];
        let mut next_group = 0;
        for v in dag.node_ids() {
            group[v.index()] = match dag.node(v).role {
                Role::Primary => {
                    next_group += 1;
                    next_group - 1
                }
                Role::Backup { primary, .. } => group[primary.index()],
            };
        }
        let flows = flows(&dag, &profiles, &node_rate);
        let mut incident = vec![Vec::new(); dag.len()];
        for (i, flow) in flows.iter().enumerate() {
            incident[flow.callee.index()].push(i as u32);
            if let Some(caller) = flow.caller {
                incident[caller.index()].push(i as u32);
            }
        }
        let mut workload = Workload {
            dag,
            profiles,
            rate,
            node_rate,
            demand: Vec::new(),
            group,
            flows,
            incident,
        };
        workload.demand = workload
            .dag
            .node_ids()
            .map(|v| {
                [
                    workload.compute_demand(v, CoreClass::Beefy),
                    workload.compute_demand(v, CoreClass::Wimpy),
                ]
            })
            .collect();
        Ok(workload)
    }

    /// A built-in application with the built-in profiles.
    pub fn builtin(app: App, rate: f64) -> Result<Workload, WorkloadError> {
        let dag = app.dag();
        let profiles = dag
            .tiers()
            .iter()
            .map(|t| builtin_profile(t.kind))
            .collect();
        Workload::new(dag, profiles, rate)
    }

    /// The same application offered `rate` requests per second.
    pub fn with_rate(&self, rate: f64) -> Result<Workload, WorkloadError> {
        Workload::new(self.dag.clone(), self.profiles.clone(), rate)
    }

    fn compute_demand(&self, v: NodeId, class: CoreClass) -> Amounts {
        let node = self.dag.node(v);
        let profile = &self.profiles[node.tier.index()];
        let rate = self.node_rate[v.index()];
        let cpu_share = match node.role {
            Role::Primary => 1.0,
            Role::Backup { .. } if profile.stateful => BACKUP_CPU_SHARE,
            Role::Backup { .. } => 0.0,
        };
        let cpu = rate * cpu_share * profile.us_on(class) / 1e6;
        [cpu, profile.memory_gb, profile.disk_gb, 0.0, 0.0, cpu]
    }

    /// The application DAG.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The profile of each tier.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The profile of `v`'s tier.
    pub fn profile(&self, v: NodeId) -> &Profile {
        &self.profiles[self.dag.node(v).tier.index()]
    }

    /// Offered requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Requests (or, for a backup, state updates) per second at `v`.
    pub fn node_rate(&self, v: NodeId) -> f64 {
        self.node_rate[v.index()]
    }

    /// Every flow of messages.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// The flows `v` is an end of.
    pub fn flows_of(&self, v: NodeId) -> impl Iterator<Item = &Flow> + '_ {
        self.incident[v.index()]
            .iter()
            .map(|&i| &self.flows[i as usize])
    }

    /// What `v`'s own work consumes on a node of `spec` (its messages come on top, priced by
    /// where their other ends are).
    pub fn demand(&self, v: NodeId, spec: &NodeSpec) -> &Amounts {
        &self.demand[v.index()][spec.core_class.index()]
    }

    /// What `v` consumes on cores of `class`.
    pub fn demand_on(&self, v: NodeId, class: CoreClass) -> &Amounts {
        &self.demand[v.index()][class.index()]
    }

    /// Where `v` may run.
    pub fn pin(&self, v: NodeId) -> Pin {
        self.profile(v).pin
    }

    /// The replica group of `v`: its primary and backups share it, and no two nodes of a group
    /// may share a server.
    pub fn replica_group(&self, v: NodeId) -> u32 {
        self.group[v.index()]
    }

    /// The other members of `v`'s replica group (its primary and the other backups).
    pub fn replica_peers(&self, v: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let primary = match self.dag.node(v).role {
            Role::Primary => v,
            Role::Backup { primary, .. } => primary,
        };
        std::iter::once(primary)
            .chain(
                self.dag
                    .out_edges(primary)
                    .iter()
                    .filter(|e| e.kind == EdgeKind::Replicate)
                    .map(|e| e.to),
            )
            .filter(move |&w| w != v)
    }

    /// Core time per application request over all nodes, each on its fastest class, as Table
    /// 1 measures it (every primary's work and its two messages over a kernel-bypass stack,
    /// and its backups' share), microseconds: the yardstick of offered loads.
    pub fn best_core_us_per_request(&self) -> f64 {
        if self.rate == 0.0 {
            return 0.0;
        }
        self.dag
            .node_ids()
            .map(|v| {
                let demand = &self.demand[v.index()];
                let messages = match self.dag.node(v).role {
                    Role::Primary => self.node_rate[v.index()],
                    Role::Backup { .. } => 0.0,
                };
                (0..2)
                    .map(|c| demand[c][0] + messages * TABLE_1_MESSAGES_US[c] / 1e6)
                    .fold(f64::INFINITY, f64::min)
                    / self.rate
                    * 1e6
            })
            .sum()
    }
}

/// The smallest application with a call, for tests: a NAT tier calling a Count tier, one shard
/// each with `backups` backups, offered `rate` requests per second.
#[cfg(test)]
pub(crate) fn nat_calls_count(backups: u8, rate: f64) -> Workload {
    use microservices::apps::{DagBuilder, Wiring};
    use microservices::ServiceKind;
    let mut builder = DagBuilder::new("nat-count");
    let a = builder.tier("a", ServiceKind::Nat, 1, backups).unwrap();
    let b = builder.tier("b", ServiceKind::Count, 1, backups).unwrap();
    builder.connect(a, b, Wiring::All).unwrap();
    let dag = builder.build().unwrap();
    let profiles = dag
        .tiers()
        .iter()
        .map(|t| builtin_profile(t.kind))
        .collect();
    Workload::new(dag, profiles, rate).unwrap()
}

/// The flows of `dag`: each source node's requests from the clients; each primary's calls,
/// its rate shared equally among the shards of each tier it calls, with the callee's request
/// size; each stateful primary's state updates to its backups.
fn flows(dag: &Dag, profiles: &[Profile], rates: &[f64]) -> Vec<Flow> {
    let bytes_of = |v: NodeId| profiles[dag.node(v).tier.index()].request_bytes;
    let mut flows = Vec::new();
    for v in dag.sources() {
        flows.push(Flow {
            caller: None,
            callee: v,
            rate: rates[v.index()],
            bytes: bytes_of(v),
            round_trip: true,
        });
    }
    for v in dag.node_ids() {
        if dag.node(v).role != Role::Primary {
            continue;
        }
        for (_, group) in dag.call_groups(v) {
            let share = rates[v.index()] / group.len() as f64;
            for edge in group {
                flows.push(Flow {
                    caller: Some(v),
                    callee: edge.to,
                    rate: share,
                    bytes: bytes_of(edge.to),
                    round_trip: true,
                });
            }
        }
        if profiles[dag.node(v).tier.index()].stateful {
            for edge in dag.out_edges(v) {
                if edge.kind == EdgeKind::Replicate {
                    flows.push(Flow {
                        caller: Some(v),
                        callee: edge.to,
                        rate: rates[v.index()],
                        bytes: STATE_UPDATE_BYTES,
                        round_trip: false,
                    });
                }
            }
        }
    }
    flows
}

/// Requests per second at every node when `rate` enter the application (see
/// `microservices::apps` for the traffic semantics); a backup gets its primary's rate.
fn node_rates(dag: &Dag, rate: f64) -> Vec<f64> {
    let mut rates = vec![0.0; dag.len()];
    let sources = dag.sources().count();
    for v in dag.sources() {
        rates[v.index()] = rate / sources as f64;
    }
    for v in dag.topological_order() {
        let here = rates[v.index()];
        for (_, group) in dag.call_groups(v) {
            let share = here / group.len() as f64;
            for edge in group {
                rates[edge.to.index()] += share;
            }
        }
        if let Role::Backup { primary, .. } = dag.node(v).role {
            rates[v.index()] = rates[primary.index()];
        }
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;
    use microservices::ServiceKind;

    #[test]
    fn every_tier_sees_the_whole_rate() {
        for app in App::ALL {
            let w = Workload::builtin(app, 1000.0).unwrap();
            let dag = w.dag();
            for (t, tier) in dag.tiers().iter().enumerate() {
                let total: f64 = dag
                    .node_ids()
                    .filter(|&v| dag.node(v).tier.index() == t && dag.node(v).role == Role::Primary)
                    .map(|v| w.node_rate(v))
                    .sum();
                // Every tier is on exactly one path of tiers from one source tier, except
                // RTA-SHM's SQL, fed by both source tiers.
                let sources = dag
                    .sources()
                    .map(|v| dag.node(v).tier)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                let expected = if app == App::RtaShm && tier.name != "sql" {
                    1000.0 / sources as f64
                } else {
                    1000.0
                };
                assert!((total - expected).abs() < 1e-6, "{app} {}", tier.name);
            }
        }
    }

    #[test]
    fn demand_follows_the_profile() {
        let w = Workload::builtin(App::IotTs, 6000.0).unwrap();
        let dag = w.dag();
        let gateway = NodeId(0);
        assert_eq!(dag.node(gateway).kind, ServiceKind::ApiGateway);
        assert_eq!(w.node_rate(gateway), 1000.0);
        let profile = builtin_profile(ServiceKind::ApiGateway);
        let cpu = w.demand_on(gateway, CoreClass::Wimpy)[Resource::Cpu.index()];
        assert!((cpu - 1000.0 * profile.core_us[1] / 1e6).abs() < 1e-12);
        // Its backup: a tenth of the core time, same memory, in the same replica group.
        let backup = dag
            .node_ids()
            .find(|&v| dag.node(v).role != Role::Primary && dag.node(v).shard == 0)
            .unwrap();
        let backup_cpu = w.demand_on(backup, CoreClass::Wimpy)[0];
        assert!((backup_cpu - cpu * BACKUP_CPU_SHARE).abs() < 1e-12);
        assert_eq!(w.replica_group(backup), w.replica_group(gateway));
        assert_eq!(w.replica_peers(backup).collect::<Vec<_>>(), [gateway]);
        assert_eq!(w.replica_peers(gateway).collect::<Vec<_>>(), [backup]);
    }

    #[test]
    fn refuses_bad_inputs() {
        let dag = App::NfvFin.dag();
        assert!(matches!(
            Workload::new(dag.clone(), vec![], 1.0),
            Err(WorkloadError::ProfileCount { .. })
        ));
        let mut profiles: Vec<_> = dag
            .tiers()
            .iter()
            .map(|t| builtin_profile(t.kind))
            .collect();
        assert!(matches!(
            Workload::new(dag.clone(), profiles.clone(), -1.0),
            Err(WorkloadError::BadRate(_))
        ));
        profiles[1].memory_gb = -2.0;
        assert!(matches!(
            Workload::new(dag, profiles, 1.0),
            Err(WorkloadError::BadProfile { .. })
        ));
    }
}
