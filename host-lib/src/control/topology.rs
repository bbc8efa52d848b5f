//! Cluster topology: datacenter, pods of racks, servers, and the computing nodes (host
//! processor, SmartNICs) of each server, with their resources, ports, power and cost; the server types
//! and clusters of E3 Table 4.

use std::fmt;

use super::communication::{Network, LIQUIDIO_PCIE_GBPS};

/// Index of a computing node in [`Topology::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputeId(pub u32);

impl ComputeId {
    /// The index as a `usize`, for slices.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Host processor or SmartNIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// The server's host processor.
    Host,
    /// A SmartNIC's cores.
    Nic,
}

impl NodeKind {
    /// Both kinds, host first.
    pub const ALL: [NodeKind; 2] = [NodeKind::Host, NodeKind::Nic];

    /// `host` or `nic`.
    pub const fn name(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Nic => "nic",
        }
    }

    /// 0 for the host, 1 for a NIC: index into per-kind arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of a processor's cores: the speed of a microservice on them comes from its
/// profile for that class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoreClass {
    /// Server-class x86 cores (Table 1's host columns).
    Beefy,
    /// Wimpy cores of a SmartNIC or an ARM/MIPS server (Table 1's SmartNIC column).
    Wimpy,
}

impl CoreClass {
    /// 0 for beefy, 1 for wimpy: index into per-class arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// `beefy` or `wimpy`.
    pub const fn name(self) -> &'static str {
        match self {
            CoreClass::Beefy => "beefy",
            CoreClass::Wimpy => "wimpy",
        }
    }
}

/// What one computing node offers.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Host or NIC.
    pub kind: NodeKind,
    /// Class of its cores.
    pub core_class: CoreClass,
    /// Number of cores.
    pub cores: u32,
    /// Memory, GB.
    pub memory_gb: f64,
    /// Disk, GB.
    pub disk_gb: f64,
    /// Bandwidth of its own network ports, Gb/s per direction (0 for a host that reaches the
    /// network through its server's SmartNICs).
    pub bandwidth_gbps: f64,
    /// Bandwidth of its PCIe link to the host, Gb/s per direction (SmartNICs; 0 for hosts).
    pub pcie_gbps: f64,
    /// Requests it can hold in flight, per core (its queues).
    pub queue_per_core: u32,
    /// Power when idle, W.
    pub idle_w: f64,
    /// Power at full load, W.
    pub peak_w: f64,
}

/// A kind of server: a host processor and its SmartNICs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerType {
    /// Name used in config files and on the command line.
    pub name: String,
    /// Purchase cost, $.
    pub cost: f64,
    /// The host processor.
    pub host: NodeSpec,
    /// The SmartNICs, if any.
    pub nics: Vec<NodeSpec>,
}

impl ServerType {
    /// Idle power of the whole server, W.
    pub fn idle_w(&self) -> f64 {
        self.host.idle_w + self.nics.iter().map(|n| n.idle_w).sum::<f64>()
    }

    /// Peak power of the whole server, W.
    pub fn peak_w(&self) -> f64 {
        self.host.peak_w + self.nics.iter().map(|n| n.peak_w).sum::<f64>()
    }

    /// The host and then the NICs.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        std::iter::once(&self.host).chain(self.nics.iter())
    }
}

/// Disk of every Table 4 server (a Seagate HDD; the size is ours).
const DISK_GB: f64 = 1000.0;
/// In-flight requests per core before a node counts as saturated.
const QUEUE_PER_CORE: u32 = 64;
/// A LiquidIO II NIC's idle power: Type1-SmartNIC idle minus Beefy idle (98 W - 83 W).
const NIC_IDLE_W: f64 = 15.0;
/// Active power of one beefy core and one wimpy core (W), from Table 1: a 12-core host draws
/// up to about 113 W above idle, a 12-core SmartNIC up to about 24.7 W. A server's
/// idle-to-peak span (Table 4) is split among its processors in proportion to these.
const BEEFY_CORE_W: f64 = 113.0 / 12.0;
const WIMPY_CORE_W: f64 = 24.7 / 12.0;

fn host(core_class: CoreClass, cores: u32, memory_gb: f64, bandwidth_gbps: f64) -> NodeSpec {
    NodeSpec {
        kind: NodeKind::Host,
        core_class,
        cores,
        memory_gb,
        disk_gb: DISK_GB,
        bandwidth_gbps,
        pcie_gbps: 0.0,
        queue_per_core: QUEUE_PER_CORE,
        idle_w: 0.0,
        peak_w: 0.0,
    }
}

/// A LiquidIO II: 12 cnMIPS cores, 4 GB, PCIe Gen3 x8, and `ports_gbps` of its two 10 GbE
/// ports in use.
fn liquidio(ports_gbps: f64) -> NodeSpec {
    NodeSpec {
        kind: NodeKind::Nic,
        core_class: CoreClass::Wimpy,
        cores: 12,
        memory_gb: 4.0,
        disk_gb: 0.0,
        bandwidth_gbps: ports_gbps,
        pcie_gbps: LIQUIDIO_PCIE_GBPS,
        queue_per_core: QUEUE_PER_CORE,
        idle_w: 0.0,
        peak_w: 0.0,
    }
}

/// Builds a server type whose idle and peak power match Table 4's totals: each NIC idles at
/// [`NIC_IDLE_W`], the host takes the rest of the idle power, and the idle-to-peak span is
/// shared in proportion to each processor's core power.
fn server(
    name: &str,
    cost: f64,
    idle_w: f64,
    peak_w: f64,
    mut host: NodeSpec,
    mut nics: Vec<NodeSpec>,
) -> ServerType {
    let core_w = |spec: &NodeSpec| {
        f64::from(spec.cores)
            * match spec.core_class {
                CoreClass::Beefy => BEEFY_CORE_W,
                CoreClass::Wimpy => WIMPY_CORE_W,
            }
    };
    let weight: f64 = core_w(&host) + nics.iter().map(core_w).sum::<f64>();
    let span = peak_w - idle_w;
    for nic in &mut nics {
        nic.idle_w = NIC_IDLE_W;
        nic.peak_w = NIC_IDLE_W + span * core_w(nic) / weight;
    }
    host.idle_w = idle_w - NIC_IDLE_W * nics.len() as f64;
    host.peak_w = host.idle_w + span * core_w(&host) / weight;
    ServerType {
        name: name.to_string(),
        cost,
        host,
        nics,
    }
}

/// The server types of E3 Table 4. The hosts of the SmartNIC servers have no ports of their
/// own: they reach the network through the SmartNICs (E3 section 3.2). Table 4 gives Type2 40
/// Gb/s over four SmartNICs, so each uses one 10 GbE port; Type1's one SmartNIC uses both.
pub fn builtin_server_types() -> Vec<ServerType> {
    vec![
        server(
            "beefy",
            4500.0,
            83.0,
            201.0,
            host(CoreClass::Beefy, 12, 64.0, 20.0),
            vec![],
        ),
        server(
            "wimpy",
            2209.0,
            79.0,
            95.0,
            host(CoreClass::Wimpy, 32, 2.0, 20.0),
            vec![],
        ),
        server(
            "type1-smartnic",
            4650.0,
            98.0,
            222.0,
            host(CoreClass::Beefy, 12, 64.0, 0.0),
            vec![liquidio(20.0)],
        ),
        server(
            "type2-smartnic",
            6750.0,
            145.0,
            252.0,
            host(CoreClass::Beefy, 16, 128.0, 0.0),
            vec![liquidio(10.0); 4],
        ),
        server(
            "superbeefy",
            12550.0,
            77.0,
            256.0,
            host(CoreClass::Beefy, 24, 192.0, 80.0),
            vec![],
        ),
    ]
}

/// A built-in server type by name (case-insensitive).
pub fn builtin_server_type(name: &str) -> Option<ServerType> {
    builtin_server_types()
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Default servers per rack (E3 section 5.6's FatTree).
pub const SERVERS_PER_RACK: u32 = 40;
/// Default racks per pod of the FatTree above the racks.
pub const RACKS_PER_POD: u32 = 16;

/// A cluster description: which servers, how they are racked, and what communication costs.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Name used on the command line.
    pub name: String,
    /// Server types and how many of each, in rack order.
    pub servers: Vec<(ServerType, u32)>,
    /// Servers per rack (one ToR switch each).
    pub servers_per_rack: u32,
    /// Racks per pod.
    pub racks_per_pod: u32,
    /// What communication costs (per-message core time, latency, uplink oversubscription).
    pub network: Network,
}

/// The clusters of E3 Table 4 (and 3xType1 and 3xBeefy of sections 5.1 and 5.4).
pub const BUILTIN_CLUSTERS: [(&str, &[(&str, u32)]); 7] = [
    ("4xbeefy", &[("beefy", 4)]),
    ("4xwimpy", &[("wimpy", 4)]),
    ("2xbeefy+2xwimpy", &[("beefy", 2), ("wimpy", 2)]),
    ("2xtype2", &[("type2-smartnic", 2)]),
    ("1xsuperbeefy", &[("superbeefy", 1)]),
    ("3xtype1", &[("type1-smartnic", 3)]),
    ("3xbeefy", &[("beefy", 3)]),
];

impl Cluster {
    /// A cluster of `servers` given as (type, count), with default racking and network.
    pub fn new(name: &str, servers: Vec<(ServerType, u32)>) -> Cluster {
        Cluster {
            name: name.to_string(),
            servers,
            servers_per_rack: SERVERS_PER_RACK,
            racks_per_pod: RACKS_PER_POD,
            network: Network::default(),
        }
    }

    /// A built-in cluster by name (case-insensitive), or a FatTree of Type2-SmartNIC servers
    /// named `type2xN` (the scale experiments of section 5.6).
    pub fn builtin(name: &str) -> Option<Cluster> {
        let lower = name.to_ascii_lowercase();
        if let Some(count) = lower.strip_prefix("type2x") {
            let count: u32 = count.parse().ok().filter(|&c| c > 0)?;
            return Some(Cluster::type2_fat_tree(count));
        }
        let (name, servers) = BUILTIN_CLUSTERS.iter().find(|(n, _)| *n == lower)?;
        let servers = servers
            .iter()
            .map(|&(t, count)| builtin_server_type(t).map(|t| (t, count)))
            .collect::<Option<Vec<_>>>()?;
        Some(Cluster::new(name, servers))
    }

    /// `servers` Type2-SmartNIC servers, 40 to a rack.
    pub fn type2_fat_tree(servers: u32) -> Cluster {
        let name = format!("type2x{servers}");
        let server = builtin_server_type("type2-smartnic").map(|t| vec![(t, servers)]);
        Cluster::new(&name, server.unwrap_or_default())
    }

    /// Total purchase cost, $.
    pub fn cost(&self) -> f64 {
        self.servers
            .iter()
            .map(|(t, n)| t.cost * f64::from(*n))
            .sum()
    }

    /// Lays the cluster out as a topology.
    pub fn topology(&self) -> Topology {
        Topology::build(self)
    }
}

/// One computing node of the topology.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeNode {
    /// Its resources and power.
    pub spec: NodeSpec,
    /// The server it belongs to (its fault domain).
    pub server: u32,
}

/// One server of the topology.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// Index into [`Cluster::servers`] of its type.
    pub type_index: u32,
    /// Its rack.
    pub rack: u32,
    /// Its first computing node (the host); the NICs follow.
    pub first_node: u32,
    /// Number of computing nodes (1 + NICs).
    pub node_count: u32,
}

/// One rack: a ToR switch and a run of consecutive servers and computing nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rack {
    /// Its pod.
    pub pod: u32,
    /// First and one-past-last server.
    pub servers: (u32, u32),
    /// First and one-past-last computing node.
    pub nodes: (u32, u32),
}

/// A cluster laid out as datacenter -> pods -> racks -> servers -> computing nodes, every
/// level stored as consecutive ranges so that "the nodes of this rack" is a range.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    name: String,
    nodes: Vec<ComputeNode>,
    servers: Vec<Server>,
    racks: Vec<Rack>,
    /// First and one-past-last rack of each pod.
    pods: Vec<(u32, u32)>,
    /// Capacity of the uplinks of each rack, then of each pod, Gb/s per direction.
    uplinks: Vec<f64>,
    network: Network,
    cost: f64,
}

impl Topology {
    fn build(cluster: &Cluster) -> Topology {
        let per_rack = cluster.servers_per_rack.max(1);
        let per_pod = cluster.racks_per_pod.max(1);
        let mut nodes = Vec::new();
        let mut servers = Vec::new();
        let mut racks: Vec<Rack> = Vec::new();
        for (type_index, (server_type, count)) in cluster.servers.iter().enumerate() {
            for _ in 0..*count {
                let index = servers.len() as u32;
                let rack = index / per_rack;
                if racks.len() as u32 == rack {
                    racks.push(Rack {
                        pod: rack / per_pod,
                        servers: (index, index),
                        nodes: (nodes.len() as u32, nodes.len() as u32),
                    });
                }
                let first_node = nodes.len() as u32;
                for spec in server_type.nodes() {
                    nodes.push(ComputeNode {
                        spec: spec.clone(),
                        server: index,
                    });
                }
                servers.push(Server {
                    type_index: type_index as u32,
                    rack,
                    first_node,
                    node_count: nodes.len() as u32 - first_node,
                });
                let current = &mut racks[rack as usize];
                current.servers.1 = index + 1;
                current.nodes.1 = nodes.len() as u32;
            }
        }
        let pod_count = racks.last().map_or(0, |r| r.pod + 1);
        let pods = (0..pod_count)
            .map(|p| {
                let first = p * per_pod;
                (first, (first + per_pod).min(racks.len() as u32))
            })
            .collect::<Vec<(u32, u32)>>();
        let oversubscription = cluster.network.oversubscription.max(1.0);
        let mut uplinks: Vec<f64> = racks
            .iter()
            .map(|r| {
                let ports: f64 = nodes[r.nodes.0 as usize..r.nodes.1 as usize]
                    .iter()
                    .map(|n| n.spec.bandwidth_gbps)
                    .sum();
                ports / oversubscription
            })
            .collect();
        let pod_uplinks: Vec<f64> = pods
            .iter()
            .map(|&(first, end)| {
                uplinks[first as usize..end as usize].iter().sum::<f64>() / oversubscription
            })
            .collect();
        uplinks.extend(pod_uplinks);
        Topology {
            name: cluster.name.clone(),
            nodes,
            servers,
            racks,
            pods,
            uplinks,
            network: cluster.network,
            cost: cluster.cost(),
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every computing node, indexed by [`ComputeId`].
    pub fn nodes(&self) -> &[ComputeNode] {
        &self.nodes
    }

    /// One computing node.
    pub fn node(&self, id: ComputeId) -> &ComputeNode {
        &self.nodes[id.index()]
    }

    /// Number of computing nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no computing nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every server.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// Every rack.
    pub fn racks(&self) -> &[Rack] {
        &self.racks
    }

    /// Every pod, as its range of racks.
    pub fn pods(&self) -> &[(u32, u32)] {
        &self.pods
    }

    /// What communication costs.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Number of uplinks: one per rack, then one per pod.
    pub fn uplink_count(&self) -> usize {
        self.uplinks.len()
    }

    /// Capacity of uplink `u` (see [`super::communication::Link::Uplink`]), Gb/s per
    /// direction.
    pub fn uplink_capacity(&self, u: u32) -> f64 {
        self.uplinks.get(u as usize).copied().unwrap_or(0.0)
    }

    /// Purchase cost of the whole cluster, $.
    pub fn cost(&self) -> f64 {
        self.cost
    }

    /// The server of a node.
    pub fn server_of(&self, id: ComputeId) -> &Server {
        &self.servers[self.nodes[id.index()].server as usize]
    }

    /// The rack of a node.
    pub fn rack_of(&self, id: ComputeId) -> &Rack {
        &self.racks[self.server_of(id).rack as usize]
    }

    /// A human-readable name: `s12/host`, `s12/nic2`.
    pub fn label(&self, id: ComputeId) -> String {
        let node = self.node(id);
        let server = &self.servers[node.server as usize];
        match node.spec.kind {
            NodeKind::Host => format!("s{}/host", node.server),
            NodeKind::Nic => format!("s{}/nic{}", node.server, id.0 - server.first_node - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn server_types_match_table_4() {
        // (name, cost, beefy cores, wimpy cores, memory, idle, peak, bandwidth)
        let table = [
            ("beefy", 4500.0, 12, 0, 64.0, 83.0, 201.0, 20.0),
            ("wimpy", 2209.0, 0, 32, 2.0, 79.0, 95.0, 20.0),
            ("type1-smartnic", 4650.0, 12, 12, 68.0, 98.0, 222.0, 20.0),
            ("type2-smartnic", 6750.0, 16, 48, 144.0, 145.0, 252.0, 40.0),
            ("superbeefy", 12550.0, 24, 0, 192.0, 77.0, 256.0, 80.0),
        ];
        for (name, cost, bc, wc, mem, idle, peak, bw) in table {
            let t = builtin_server_type(name).unwrap();
            let cores = |class: CoreClass| -> u32 {
                t.nodes()
                    .filter(|n| n.core_class == class)
                    .map(|n| n.cores)
                    .sum()
            };
            assert_eq!(t.cost, cost, "{name}");
            assert_eq!(cores(CoreClass::Beefy), bc, "{name}");
            assert_eq!(cores(CoreClass::Wimpy), wc, "{name}");
            assert!(close(t.nodes().map(|n| n.memory_gb).sum(), mem), "{name}");
            assert!(close(t.idle_w(), idle), "{name}");
            assert!(close(t.peak_w(), peak), "{name}");
            let ports: f64 = t.nodes().map(|n| n.bandwidth_gbps).sum();
            assert!(close(ports, bw), "{name}");
        }
    }

    #[test]
    fn clusters_match_table_4_costs() {
        let costs = [
            ("4xbeefy", 18000.0),
            ("4xwimpy", 8836.0),
            ("2xbeefy+2xwimpy", 13418.0),
            ("2xtype2", 13500.0),
            ("1xsuperbeefy", 12550.0),
        ];
        for (name, cost) in costs {
            assert!(
                close(Cluster::builtin(name).unwrap().cost(), cost),
                "{name}"
            );
        }
    }

    #[test]
    fn racks_and_pods_are_contiguous_ranges() {
        let mut cluster = Cluster::type2_fat_tree(100);
        cluster.racks_per_pod = 2;
        let topo = cluster.topology();
        assert_eq!(topo.len(), 500);
        assert_eq!(topo.racks().len(), 3);
        assert_eq!(topo.racks()[2].servers, (80, 100));
        assert_eq!(topo.racks()[1].nodes, (200, 400));
        assert_eq!(topo.pods(), [(0, 2), (2, 3)]);
        assert_eq!(topo.label(ComputeId(7)), "s1/nic1");
        assert_eq!(topo.server_of(ComputeId(7)).first_node, 5);
    }
}
