//! The deploy factory (`services::deploy`): every kind from empty parameters and from
//! parameters of one's own, every layout's bounds, host-only kinds, the memory check, and
//! arbitrary parameter bytes (untrusted: they come in DEPLOY commands).

mod params;

use microservices::services::deploy::{self, DeployError, Node, Params, Plan};
use microservices::services::nat::Rule;
use microservices::{ServiceId, ServiceKind};
use params::custom;
use proptest::prelude::*;

fn nic_kinds() -> impl Iterator<Item = ServiceKind> {
    ServiceKind::ALL.into_iter().filter(|k| !k.host_only())
}

#[test]
fn every_nic_kind_deploys_in_its_standard_configuration() {
    assert_eq!(nic_kinds().count(), 15);
    for kind in nic_kinds() {
        let plan = deploy::plan(Node::Nic, kind, &[]).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(plan.params(), &Params::standard(kind));
        let service = plan.build(ServiceId(3)).unwrap();
        assert_eq!(service.identity().kind, kind);
        assert_eq!(service.identity().id, ServiceId(3));
        // The standard configuration written out is a valid parameter block of its own.
        let bytes = Params::standard(kind).encode();
        assert_eq!(Params::decode(kind, &bytes), Ok(Params::standard(kind)));
    }
}

#[test]
fn every_nic_kind_deploys_from_its_parameters() {
    for kind in nic_kinds() {
        let params = custom(kind);
        assert_ne!(params, Params::standard(kind), "{kind}");
        let bytes = params.encode();
        let plan = deploy::plan(Node::Nic, kind, &bytes).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(plan.params(), &params, "{kind}");
        assert!(plan.footprint() < plan_of_standard(kind).footprint() || kind.host_only());
        let service = plan.build(ServiceId(4)).unwrap();
        assert_eq!(service.identity().kind, kind);
    }
}

fn plan_of_standard(kind: ServiceKind) -> Plan {
    deploy::plan(Node::Nic, kind, &[]).unwrap()
}

#[test]
fn parameters_configure_the_instance() {
    use microservices::engines::SoftwareEngines;
    use microservices::services::count::request;
    use microservices::{Context, ServiceError};
    // Count over 100 items: item 99 counts, item 100 is out of the space.
    let mut count = deploy::plan(
        Node::Nic,
        ServiceKind::Count,
        &Params::Count { items: 100 }.encode(),
    )
    .unwrap()
    .build(ServiceId(1))
    .unwrap();
    let mut out = [0u8; 64];
    let mut context = Context::new(&SoftwareEngines, 0);
    let len = count
        .handle(&mut context, &request::add(&[99]), &mut out)
        .unwrap();
    assert_eq!(out[0], 0, "{:?}", &out[..len]);
    assert_eq!(
        count.handle(&mut context, &request::add(&[100]), &mut out),
        Err(ServiceError::BadField)
    );
}

#[test]
fn truncated_or_overlong_parameters_are_refused() {
    for kind in nic_kinds() {
        let bytes = custom(kind).encode();
        for cut in 1..bytes.len() {
            let error = deploy::plan(Node::Nic, kind, &bytes[..cut]).unwrap_err();
            assert!(
                matches!(error, DeployError::BadParameters { kind: k, .. } if k == kind),
                "{kind} cut at {cut}: {error:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            deploy::plan(Node::Nic, kind, &longer).unwrap_err(),
            DeployError::BadParameters {
                kind,
                reason: "bytes after the kind's layout"
            }
        );
    }
}

#[test]
fn values_out_of_bounds_are_refused() {
    let host_bits = vec![Rule {
        prefix: 0x0a00_0001,
        len: 8,
        to: 1,
    }];
    let bad = [
        Params::Count { items: 0 },
        Params::Count {
            items: (1 << 24) + 1,
        },
        Params::Kvs { capacity: 0 },
        Params::Kvs {
            capacity: (1 << 20) + 1,
        },
        Params::Ema {
            streams: 4,
            alpha: 0.0,
        },
        Params::Ema {
            streams: 4,
            alpha: f64::NAN,
        },
        Params::FlowMonitor {
            depth: 17,
            width: 4,
            seed: 0,
        },
        Params::Ddos {
            window: 16,
            low: 0.8,
            high: 0.2,
        },
        Params::Nat { rules: vec![] },
        Params::Nat { rules: host_bits },
        Params::Nids {
            patterns: vec![vec![]],
        },
        Params::Knn {
            points: 10,
            dims: 0,
            classes: 2,
            seed: 0,
        },
        Params::Spike {
            sensors: 4,
            window: 8,
            threshold: f64::INFINITY,
        },
        Params::Bayes {
            classes: 65,
            vocabulary: 10,
            documents: 10,
            seed: 0,
        },
        Params::ApiGateway {
            clients: 4,
            rate: 1.0,
            burst: 1.0,
            key: vec![],
        },
        Params::Recommend {
            users: 4,
            items: 0,
            seed: 0,
        },
        Params::Bm25 {
            documents: 0,
            words: 10,
            seed: 0,
        },
        Params::TopRanker { items: 0 },
    ];
    for params in bad {
        let kind = params.kind();
        let error = deploy::plan(Node::Nic, kind, &params.encode()).unwrap_err();
        assert!(
            matches!(error, DeployError::BadParameters { kind: k, .. } if k == kind),
            "{params:?}: {error:?}"
        );
        assert!(error.to_string().contains(kind.name()), "{error}");
        assert!(Plan::new(Node::Host, params).is_err());
    }
}

#[test]
fn host_only_kinds_are_refused_on_a_nic_and_built_on_a_host() {
    for kind in ServiceKind::ALL.into_iter().filter(|k| k.host_only()) {
        assert_eq!(
            deploy::plan(Node::Nic, kind, &[]).unwrap_err(),
            DeployError::HostOnly(kind)
        );
        assert_eq!(
            Plan::new(Node::Nic, Params::standard(kind)).unwrap_err(),
            DeployError::HostOnly(kind)
        );
    }
    // With the `sql` feature (the crate's default) a host builds it; without, it refuses.
    let sql = deploy::build_on_host(ServiceKind::Sql, ServiceId(2), &[]);
    if cfg!(feature = "sql") {
        assert_eq!(sql.unwrap().identity().kind, ServiceKind::Sql);
    } else {
        assert!(matches!(sql, Err(DeployError::Refused { .. })));
    }
    assert!(matches!(
        deploy::plan(Node::Host, ServiceKind::Sql, &[1]),
        Err(DeployError::BadParameters { .. })
    ));
}

#[test]
fn a_deploy_that_does_not_fit_is_refused_before_it_allocates() {
    let plan = deploy::plan(Node::Nic, ServiceKind::Nat, &[]).unwrap();
    // The DIR-24-8 first level alone is 32 MiB.
    assert!(plan.footprint() > 32 << 20);
    assert_eq!(plan.fits(plan.footprint()), Ok(()));
    let error = plan.fits(16 << 20).unwrap_err();
    assert_eq!(
        error,
        DeployError::NoMemory {
            kind: ServiceKind::Nat,
            needed: plan.footprint(),
            available: 16 << 20,
        }
    );
    assert!(error.to_string().contains("16384 KiB are free"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: a typed answer, never a panic; what is accepted re-encodes to the same
    /// bytes and, when small, builds.
    #[test]
    fn arbitrary_parameter_bytes_never_panic(
        kind in proptest::sample::select(ServiceKind::ALL.to_vec()),
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        if let Ok(plan) = deploy::plan(Node::Nic, kind, &bytes) {
            prop_assert_eq!(plan.params().kind(), kind);
            if !bytes.is_empty() {
                prop_assert_eq!(plan.params().encode(), bytes);
            }
            if plan.footprint() < 1 << 20 {
                prop_assert_eq!(plan.build(ServiceId(1)).unwrap().identity().kind, kind);
            }
        }
    }

    /// Valid layouts with one byte changed: the decoder's bounds are met exactly.
    #[test]
    fn mutated_parameters_never_panic(
        kind in proptest::sample::select(ServiceKind::ALL.to_vec()),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = custom(kind).encode();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(plan) = deploy::plan(Node::Nic, kind, &bytes) {
            if plan.footprint() < 1 << 20 {
                prop_assert_eq!(plan.build(ServiceId(1)).unwrap().identity().kind, kind);
            }
        }
    }
}
