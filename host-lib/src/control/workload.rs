//! An application ready to place: its DAG, a profile per tier and an offered request rate,
//! turned into per-node request rates and per-node resource demands on each core class.

use std::fmt;

use microservices::apps::{App, Dag, EdgeKind, NodeId, Role};

use super::profile::{builtin_profile, Pin, Profile};
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
    /// Network bandwidth, Gb/s.
    Bandwidth,
    /// Requests in flight.
    Outstanding,
}

/// Number of [`Resource`]s.
pub const RESOURCES: usize = 5;

/// An amount of every resource, indexed by [`Resource::index`].
pub type Amounts = [f64; RESOURCES];

impl Resource {
    /// Every resource, in index order.
    pub const ALL: [Resource; RESOURCES] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Disk,
        Resource::Bandwidth,
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
            Resource::Bandwidth => "bandwidth (Gb/s)",
            Resource::Outstanding => "outstanding requests",
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
    [
        f64::from(spec.cores),
        spec.memory_gb,
        spec.disk_gb,
        spec.bandwidth_gbps,
        f64::from(spec.cores) * f64::from(spec.queue_per_core),
    ]
}

/// Share of its primary's core time a backup spends applying state updates.
pub const BACKUP_CPU_SHARE: f64 = 0.1;
/// Bytes of state update a stateful primary sends its backups per request.
pub const STATE_UPDATE_BYTES: f64 = 64.0;
/// Requests a node holds in flight per busy core: a request spends about this many service
/// times in the node at planning load (queueing included).
pub const OUTSTANDING_PER_BUSY_CORE: f64 = 4.0;

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
        let mut workload = Workload {
            dag,
            profiles,
            rate,
            node_rate,
            demand: Vec::new(),
            group,
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
        let (cpu_share, bytes) = match node.role {
            Role::Primary => (1.0, profile.request_bytes * 2.0),
            Role::Backup { .. } if profile.stateful => (BACKUP_CPU_SHARE, STATE_UPDATE_BYTES),
            Role::Backup { .. } => (0.0, 0.0),
        };
        let cpu = rate * cpu_share * profile.us_on(class) / 1e6;
        [
            cpu,
            profile.memory_gb,
            profile.disk_gb,
            rate * bytes * 8.0 / 1e9,
            cpu * OUTSTANDING_PER_BUSY_CORE,
        ]
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

    /// What `v` consumes on a node of `spec`.
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

    /// Core time per application request over all nodes, each on its fastest allowed class,
    /// microseconds: a lower bound of the cluster work one request costs.
    pub fn best_core_us_per_request(&self) -> f64 {
        if self.rate == 0.0 {
            return 0.0;
        }
        self.dag
            .node_ids()
            .map(|v| {
                let demand = &self.demand[v.index()];
                demand[0][0].min(demand[1][0]) / self.rate * 1e6
            })
            .sum()
    }
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
