//! Applications and clusters read from TOML files (formats in docs/placement.md). A bad file
//! is refused with a message naming the line and the problem: syntax, unknown services or
//! fields, dangling calls, cycles, negative resources, impossible constraints.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use microservices::apps::{App, DagBuilder, DagError, Wiring};
use microservices::ServiceKind;
use serde::Deserialize;
use toml::Spanned;

use super::communication::{Network, LIQUIDIO_PCIE_GBPS};
use super::profile::{builtin_profile, Pin, Profile};
use super::topology::{
    builtin_server_types, Cluster, CoreClass, NodeKind, NodeSpec, ServerType, Topology,
};
use super::workload::{capacity, Resource, Workload};

/// A refused file: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Turns byte spans into line numbers for one file's errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            message: message.into(),
        }
    }

    fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(value.span()), message)
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            self.error(e.span(), message)
        })
    }

    /// A number that must be finite and not negative.
    fn amount(&self, value: &Spanned<f64>, what: &str) -> Result<f64, ConfigError> {
        let x = *value.get_ref();
        if !x.is_finite() || x < 0.0 {
            return Err(self.at(value, format!("{what} must not be negative (got {x})")));
        }
        Ok(x)
    }

    /// A number that must be finite and positive.
    fn positive(&self, value: &Spanned<f64>, what: &str) -> Result<f64, ConfigError> {
        let x = self.amount(value, what)?;
        if x == 0.0 {
            return Err(self.at(value, format!("{what} must be positive")));
        }
        Ok(x)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    name: Spanned<String>,
    rate: Option<Spanned<f64>>,
    #[serde(default)]
    tier: Vec<TierFile>,
    #[serde(default)]
    call: Vec<CallFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    name: Spanned<String>,
    service: Spanned<String>,
    #[serde(default = "one")]
    shards: Spanned<u16>,
    #[serde(default)]
    backups: u8,
    request_bytes: Option<Spanned<f64>>,
    host_us: Option<Spanned<f64>>,
    nic_us: Option<Spanned<f64>>,
    memory_gb: Option<Spanned<f64>>,
    disk_gb: Option<Spanned<f64>>,
    pin: Option<Spanned<String>>,
}

fn one() -> Spanned<u16> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallFile {
    from: Spanned<String>,
    to: Spanned<String>,
    spread: Option<Spanned<u16>>,
}

/// An application read from a file, with the line of each tier for later messages.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The application with its profiles, at `rate`.
    pub workload: Workload,
    /// The rate the file asks for, if any.
    pub rate: Option<f64>,
    path: PathBuf,
    tier_lines: Vec<usize>,
}

impl AppConfig {
    /// Refuses constraints `topology` cannot meet: a tier whose pin allows no computing node
    /// of the cluster, or that needs more memory or disk than any node it may use has.
    pub fn check_against(&self, topology: &Topology) -> Result<(), ConfigError> {
        let dag = self.workload.dag();
        for (t, tier) in dag.tiers().iter().enumerate() {
            let profile = &self.workload.profiles()[t];
            let allowed: Vec<&NodeSpec> = topology
                .nodes()
                .iter()
                .map(|n| &n.spec)
                .filter(|spec| profile.pin.allows(spec.kind))
                .collect();
            let problem = if allowed.is_empty() {
                Some(format!(
                    "tier `{}` is pinned to {} nodes and cluster `{}` has none",
                    tier.name,
                    profile.pin,
                    topology.name()
                ))
            } else {
                [Resource::Memory, Resource::Disk].into_iter().find_map(|r| {
                    let need = match r {
                        Resource::Memory => profile.memory_gb,
                        _ => profile.disk_gb,
                    };
                    let most = allowed
                        .iter()
                        .map(|spec| capacity(spec)[r.index()])
                        .fold(0.0, f64::max);
                    (need > most).then(|| {
                        format!(
                            "tier `{}` needs {need} of {r} per instance but no node it may use in `{}` has more than {most}",
                            tier.name,
                            topology.name()
                        )
                    })
                })
            };
            if let Some(message) = problem {
                return Err(ConfigError {
                    path: self.path.clone(),
                    line: self.tier_lines.get(t).copied(),
                    message: format!("impossible constraint: {message}"),
                });
            }
        }
        Ok(())
    }
}

/// Reads an application file.
pub fn load_app(path: &Path) -> Result<AppConfig, ConfigError> {
    let text = read(path)?;
    parse_app(path, &text)
}

/// Parses an application from `text` (read from `path`, for messages).
pub fn parse_app(path: &Path, text: &str) -> Result<AppConfig, ConfigError> {
    let source = Source { path, text };
    let file: AppFile = source.parse()?;
    let rate = file
        .rate
        .as_ref()
        .map(|r| source.amount(r, "rate"))
        .transpose()?;
    if file.tier.is_empty() {
        return Err(source.at(&file.name, "the application has no [[tier]]"));
    }
    let mut builder = DagBuilder::new(file.name.get_ref().clone());
    let mut profiles = Vec::new();
    let mut tier_lines = Vec::new();
    for tier in &file.tier {
        let kind: ServiceKind = tier.service.get_ref().parse().map_err(|_| {
            let known: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.name()).collect();
            source.at(
                &tier.service,
                format!(
                    "unknown service `{}` (known: {})",
                    tier.service.get_ref(),
                    known.join(", ")
                ),
            )
        })?;
        profiles.push(tier_profile(&source, tier, kind)?);
        tier_lines.push(source.line_of(tier.name.span().start));
        builder
            .tier(
                tier.name.get_ref().clone(),
                kind,
                *tier.shards.get_ref(),
                tier.backups,
            )
            .map_err(|e| {
                let span = match e {
                    DagError::NoShards(_) => tier.shards.span(),
                    _ => tier.name.span(),
                };
                source.error(Some(span), e.to_string())
            })?;
    }
    for call in &file.call {
        let end = |name: &Spanned<String>| {
            builder.tier_named(name.get_ref()).ok_or_else(|| {
                source.at(
                    name,
                    format!("call names tier `{}`, which is not defined", name.get_ref()),
                )
            })
        };
        let (from, to) = (end(&call.from)?, end(&call.to)?);
        let wiring = call
            .spread
            .as_ref()
            .map_or(Wiring::All, |s| Wiring::Spread(*s.get_ref()));
        builder.connect(from, to, wiring).map_err(|e| {
            let span = match (&e, &call.spread) {
                (DagError::BadSpread { .. }, Some(spread)) => spread.span(),
                _ => call.from.span(),
            };
            source.error(Some(span), e.to_string())
        })?;
    }
    let dag = builder.build().map_err(|e| {
        // A cycle: point at the last call on it in the file.
        let line = match &e {
            DagError::Cycle(tiers) => file
                .call
                .iter()
                .rfind(|c| {
                    tiers
                        .iter()
                        .zip(tiers.iter().cycle().skip(1))
                        .any(|(a, b)| c.from.get_ref() == a && c.to.get_ref() == b)
                })
                .map(|c| c.from.span()),
            _ => None,
        };
        source.error(line, e.to_string())
    })?;
    let workload = Workload::new(dag, profiles, rate.unwrap_or(0.0))
        .map_err(|e| source.error(None, e.to_string()))?;
    Ok(AppConfig {
        workload,
        rate,
        path: path.to_path_buf(),
        tier_lines,
    })
}

fn tier_profile(
    source: &Source<'_>,
    tier: &TierFile,
    kind: ServiceKind,
) -> Result<Profile, ConfigError> {
    let mut profile = builtin_profile(kind);
    if let Some(x) = &tier.request_bytes {
        profile.request_bytes = source.amount(x, "request_bytes")?;
    }
    if let Some(x) = &tier.host_us {
        profile.core_us[CoreClass::Beefy.index()] = source.positive(x, "host_us")?;
    }
    if let Some(x) = &tier.nic_us {
        profile.core_us[CoreClass::Wimpy.index()] = source.positive(x, "nic_us")?;
    }
    if let Some(x) = &tier.memory_gb {
        profile.memory_gb = source.amount(x, "memory_gb")?;
    }
    if let Some(x) = &tier.disk_gb {
        profile.disk_gb = source.amount(x, "disk_gb")?;
    }
    if let Some(pin) = &tier.pin {
        let wanted: Pin = pin.get_ref().parse().map_err(|()| {
            source.at(
                pin,
                format!("pin must be any, host or nic (got `{}`)", pin.get_ref()),
            )
        })?;
        if kind.host_only() && wanted != Pin::Host {
            return Err(source.at(
                pin,
                format!("impossible constraint: {kind} runs only on hosts, so it cannot be pinned to {wanted}"),
            ));
        }
        profile.pin = wanted;
    }
    Ok(profile)
}

/// The most servers a cluster file may describe (the benchmark's largest FatTree has 50,000).
pub const MAX_SERVERS: u64 = 1_000_000;
/// The most SmartNICs one server type may have.
pub const MAX_NICS: u32 = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    name: Spanned<String>,
    servers_per_rack: Option<Spanned<u32>>,
    racks_per_pod: Option<Spanned<u32>>,
    #[serde(default)]
    server_type: Vec<ServerTypeFile>,
    #[serde(default)]
    servers: Vec<ServersFile>,
    network: Option<Spanned<NetworkFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTypeFile {
    name: Spanned<String>,
    cost: Spanned<f64>,
    host: NodeFile,
    #[serde(default)]
    nics: Vec<NodeFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    cores: Spanned<u32>,
    core: Spanned<String>,
    memory_gb: Spanned<f64>,
    #[serde(default = "zero")]
    disk_gb: Spanned<f64>,
    bandwidth_gbps: Spanned<f64>,
    pcie_gbps: Option<Spanned<f64>>,
    idle_w: Spanned<f64>,
    peak_w: Spanned<f64>,
    #[serde(default = "one_u32")]
    count: u32,
}

fn zero() -> Spanned<f64> {
    Spanned::new(0..0, 0.0)
}

fn one_u32() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServersFile {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    count: Spanned<u32>,
}

/// The `[network]` table: any figure of [`Network`] (docs/placement.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    host_rtt_us: Option<Spanned<f64>>,
    pcie_rtt_us: Option<Spanned<f64>>,
    tor_rtt_us: Option<Spanned<f64>>,
    queue_latency_us: Option<Spanned<f64>>,
    hop_us: Option<Spanned<f64>>,
    oversubscription: Option<Spanned<f64>>,
    beefy_queue_us: Option<Spanned<f64>>,
    wimpy_queue_us: Option<Spanned<f64>>,
    beefy_driver_us: Option<Spanned<f64>>,
    wimpy_driver_us: Option<Spanned<f64>>,
    kernel_us: Option<Spanned<f64>>,
    forward_us: Option<Spanned<f64>>,
}

impl NetworkFile {
    fn apply(&self, source: &Source<'_>, network: &mut Network) -> Result<(), ConfigError> {
        let (cpu, latency) = (&mut network.cpu, &mut network.latency);
        let [beefy_queue, wimpy_queue] = &mut cpu.queue_us;
        let [beefy_driver, wimpy_driver] = &mut cpu.driver_us;
        let fields: [(&Option<Spanned<f64>>, &mut f64, &str); 11] = [
            (&self.host_rtt_us, &mut latency.host_rtt_us, "host_rtt_us"),
            (&self.pcie_rtt_us, &mut latency.pcie_rtt_us, "pcie_rtt_us"),
            (&self.tor_rtt_us, &mut latency.tor_rtt_us, "tor_rtt_us"),
            (
                &self.queue_latency_us,
                &mut latency.queue_us,
                "queue_latency_us",
            ),
            (&self.hop_us, &mut latency.hop_us, "hop_us"),
            (&self.beefy_queue_us, beefy_queue, "beefy_queue_us"),
            (&self.wimpy_queue_us, wimpy_queue, "wimpy_queue_us"),
            (&self.beefy_driver_us, beefy_driver, "beefy_driver_us"),
            (&self.wimpy_driver_us, wimpy_driver, "wimpy_driver_us"),
            (&self.kernel_us, &mut cpu.kernel_us, "kernel_us"),
            (&self.forward_us, &mut cpu.forward_us, "forward_us"),
        ];
        for (value, slot, what) in fields {
            if let Some(value) = value {
                *slot = source.amount(value, what)?;
            }
        }
        if let Some(value) = &self.oversubscription {
            let x = source.amount(value, "oversubscription")?;
            if x < 1.0 {
                return Err(source.at(
                    value,
                    format!("oversubscription must be at least 1 (got {x})"),
                ));
            }
            network.oversubscription = x;
        }
        Ok(())
    }
}

/// Reads a cluster file.
pub fn load_cluster(path: &Path) -> Result<Cluster, ConfigError> {
    let text = read(path)?;
    parse_cluster(path, &text)
}

/// Parses a cluster from `text` (read from `path`, for messages).
pub fn parse_cluster(path: &Path, text: &str) -> Result<Cluster, ConfigError> {
    let source = Source { path, text };
    let file: ClusterFile = source.parse()?;
    let mut types = builtin_server_types();
    for t in &file.server_type {
        if types
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(t.name.get_ref()))
        {
            return Err(source.at(
                &t.name,
                format!("server type `{}` is already defined", t.name.get_ref()),
            ));
        }
        let mut nics = Vec::new();
        let nic_count: u32 = t.nics.iter().map(|n| n.count.min(MAX_NICS + 1)).sum();
        if nic_count > MAX_NICS {
            return Err(source.at(
                &t.name,
                format!("more than {MAX_NICS} SmartNICs in one server"),
            ));
        }
        for nic in &t.nics {
            let spec = node_spec(&source, nic, NodeKind::Nic)?;
            if spec.bandwidth_gbps <= 0.0 {
                return Err(source.at(&nic.bandwidth_gbps, "a SmartNIC needs network ports"));
            }
            nics.extend(std::iter::repeat_n(spec, nic.count as usize));
        }
        let host = node_spec(&source, &t.host, NodeKind::Host)?;
        if host.bandwidth_gbps <= 0.0 && nics.is_empty() {
            return Err(source.at(
                &t.host.bandwidth_gbps,
                "a host without SmartNICs needs network ports of its own",
            ));
        }
        types.push(ServerType {
            name: t.name.get_ref().clone(),
            cost: source.amount(&t.cost, "cost")?,
            host,
            nics,
        });
    }
    let mut servers = Vec::new();
    for s in &file.servers {
        let Some(t) = types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(s.kind.get_ref()))
        else {
            let known: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
            return Err(source.at(
                &s.kind,
                format!(
                    "unknown server type `{}` (known: {})",
                    s.kind.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        servers.push((t.clone(), *s.count.get_ref()));
    }
    let total: u64 = file
        .servers
        .iter()
        .map(|s| u64::from(*s.count.get_ref()))
        .sum();
    if total > MAX_SERVERS {
        let last = file.servers.last().map(|s| s.count.span());
        return Err(source.error(last, format!("more than {MAX_SERVERS} servers in all")));
    }
    if servers.iter().all(|(_, count)| *count == 0) {
        return Err(source.at(&file.name, "the cluster has no [[servers]]"));
    }
    let mut cluster = Cluster::new(file.name.get_ref(), servers);
    for (value, slot, what) in [
        (
            &file.servers_per_rack,
            &mut cluster.servers_per_rack,
            "servers_per_rack",
        ),
        (
            &file.racks_per_pod,
            &mut cluster.racks_per_pod,
            "racks_per_pod",
        ),
    ] {
        if let Some(value) = value {
            if *value.get_ref() == 0 {
                return Err(source.at(value, format!("{what} must be positive")));
            }
            *slot = *value.get_ref();
        }
    }
    if let Some(network) = &file.network {
        network.get_ref().apply(&source, &mut cluster.network)?;
        cluster
            .network
            .check()
            .map_err(|problem| source.at(network, problem))?;
    }
    Ok(cluster)
}

fn node_spec(
    source: &Source<'_>,
    node: &NodeFile,
    kind: NodeKind,
) -> Result<NodeSpec, ConfigError> {
    let core_class = match node.core.get_ref().as_str() {
        "beefy" => CoreClass::Beefy,
        "wimpy" => CoreClass::Wimpy,
        other => {
            return Err(source.at(
                &node.core,
                format!("core must be beefy or wimpy (got `{other}`)"),
            ))
        }
    };
    if *node.cores.get_ref() == 0 {
        return Err(source.at(&node.cores, "cores must be positive"));
    }
    let idle_w = source.amount(&node.idle_w, "idle_w")?;
    let peak_w = source.amount(&node.peak_w, "peak_w")?;
    if peak_w < idle_w {
        return Err(source.at(
            &node.peak_w,
            format!("peak_w ({peak_w}) is below idle_w ({idle_w})"),
        ));
    }
    let pcie_gbps = match (&node.pcie_gbps, kind) {
        (Some(x), NodeKind::Nic) => source.positive(x, "pcie_gbps")?,
        (Some(x), NodeKind::Host) => {
            return Err(source.at(x, "pcie_gbps belongs to SmartNICs, not hosts"))
        }
        (None, NodeKind::Nic) => LIQUIDIO_PCIE_GBPS,
        (None, NodeKind::Host) => 0.0,
    };
    Ok(NodeSpec {
        kind,
        core_class,
        cores: *node.cores.get_ref(),
        memory_gb: source.amount(&node.memory_gb, "memory_gb")?,
        disk_gb: source.amount(&node.disk_gb, "disk_gb")?,
        bandwidth_gbps: source.amount(&node.bandwidth_gbps, "bandwidth_gbps")?,
        pcie_gbps,
        queue_per_core: 64,
        idle_w,
        peak_w,
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })
}

/// An application by built-in name (`iot-ts`) or TOML file path.
pub fn app_by_name_or_path(name: &str) -> Result<(Option<App>, Option<AppConfig>), ConfigError> {
    if let Ok(app) = name.parse::<App>() {
        return Ok((Some(app), None));
    }
    let path = Path::new(name);
    if path.exists() {
        return load_app(path).map(|c| (None, Some(c)));
    }
    Err(ConfigError {
        path: path.to_path_buf(),
        line: None,
        message: format!(
            "neither a built-in application nor a file: {}",
            microservices::apps::UnknownApp
        ),
    })
}

/// A cluster by built-in name (`3xtype1`, `type2x1000`) or TOML file path.
pub fn cluster_by_name_or_path(name: &str) -> Result<Cluster, ConfigError> {
    if let Some(cluster) = Cluster::builtin(name) {
        return Ok(cluster);
    }
    let path = Path::new(name);
    if path.exists() {
        return load_cluster(path);
    }
    let known: Vec<&str> = super::topology::BUILTIN_CLUSTERS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    Err(ConfigError {
        path: path.to_path_buf(),
        line: None,
        message: format!(
            "neither a built-in cluster ({}, type2xN) nor a file",
            known.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests;
