//! Deploy parameters (`microservices::services::deploy`) on arbitrary bytes: the first byte picks
//! the kind (catalogue index), the rest are the parameters a DEPLOY command carries. Planning
//! for a NIC must answer, never panic; what it accepts must write back to the same bytes, and
//! build (when small enough to build on every input) into an instance of that kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microservices::services::deploy::{self, Node};
use microservices::{ServiceId, ServiceKind};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, params)) = data.split_first() else {
        return;
    };
    let kind = ServiceKind::ALL[usize::from(kind) % ServiceKind::ALL.len()];
    let Ok(plan) = deploy::plan(Node::Nic, kind, params) else {
        return;
    };
    assert_eq!(plan.params().kind(), kind);
    if !params.is_empty() {
        assert_eq!(plan.params().encode(), params);
    }
    if plan.footprint() < 1 << 20 {
        let service = plan.build(ServiceId(1)).expect("a plan that fits builds");
        assert_eq!(service.identity().kind, kind);
    }
});
