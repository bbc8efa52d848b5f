//! `Plan::footprint` against what building really allocates: a counting global allocator
//! records the peak of live heap bytes while each kind is built. The estimate must cover the
//! peak (a NIC refuses deploys by it) and stay within twice the peak plus 1 MiB (or it would
//! refuse deploys that fit).

mod params;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use microservices::services::deploy::{self, Params};
use microservices::{ServiceId, ServiceKind};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on as it is.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap bytes above what was live before, while `build` runs.
fn peak_of(build: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    build();
    PEAK.load(Ordering::Relaxed) - base
}

fn check(params: Params) {
    let kind = params.kind();
    let plan = deploy::Plan::new(deploy::Node::Host, params).expect("valid parameters");
    let peak = peak_of(|| drop(plan.build(ServiceId(1)).expect("builds")));
    let estimate = plan.footprint();
    eprintln!("{kind:>10}: estimate {estimate:>10} B, peak {peak:>10} B");
    assert!(
        estimate >= peak,
        "{kind}: estimate {estimate} < peak {peak}"
    );
    assert!(
        estimate <= 2 * peak + (1 << 20),
        "{kind}: estimate {estimate} far above peak {peak}"
    );
}

/// One test only: the counters are process-wide, so nothing else may allocate meanwhile.
#[test]
fn footprints_cover_the_peak_of_every_build() {
    for kind in ServiceKind::ALL.into_iter().filter(|k| !k.host_only()) {
        check(Params::standard(kind));
        check(params::custom(kind));
    }
}
