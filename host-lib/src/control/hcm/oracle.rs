//! The straightforward HCM searches, kept as the test oracle for [`super::Fast`]: every call
//! builds the parent's hierarchical topology as one list of nodes per level and scans it.

use microservices::apps::NodeId;

use super::{traverse, Search};
use crate::control::ledger::Ledger;
use crate::control::levels::Level;
use crate::control::placement::{Deployment, PlaceError, Placement, Placer};
use crate::control::topology::{ComputeId, Topology};
use crate::control::workload::Workload;

/// HCM with the straightforward searches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Oracle;

impl Placer for Oracle {
    fn name(&self) -> &'static str {
        "hcm-oracle"
    }

    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError> {
        traverse(&Lists { topology }, self.name(), workload, topology, ledger)
    }
}

struct Lists<'t> {
    topology: &'t Topology,
}

impl Lists<'_> {
    /// `get_hierarchical_topo`: every node of the cluster, sorted into its level from `n`.
    fn hierarchical_topology(&self, n: ComputeId) -> [Vec<ComputeId>; 6] {
        let mut levels: [Vec<ComputeId>; 6] = Default::default();
        for m in (0..self.topology.len() as u32).map(ComputeId) {
            levels[self.topology.level(n, m).index()].push(m);
        }
        levels
    }
}

impl Search for Lists<'_> {
    fn first_fit(&self, deployment: &Deployment<'_>, v: NodeId) -> ComputeId {
        (0..self.topology.len() as u32)
            .map(ComputeId)
            .find(|&n| deployment.fits(v, n))
            .unwrap_or_else(|| deployment.closest(v))
    }

    fn best_fit(
        &self,
        deployment: &Deployment<'_>,
        v: NodeId,
        parent: ComputeId,
        level: Level,
    ) -> Option<ComputeId> {
        let candidates = &self.hierarchical_topology(parent)[level.index()];
        let mut best: Option<(f64, ComputeId)> = None;
        for &n in candidates {
            if !deployment.fits(v, n) {
                continue;
            }
            let left = deployment.leftover(v, n);
            match best {
                Some((score, _)) if score <= left => {}
                _ => best = Some((left, n)),
            }
        }
        best.map(|(_, n)| n)
    }
}
