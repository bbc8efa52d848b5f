//! One hardware-in-loop scenario's run: its time limit, and the child processes (its QEMUs) it
//! started, which the scenario kills and reaps itself when it ends.
//!
//! A scenario's body runs on a thread of its own. When it runs past its limit that thread may
//! be blocked anywhere, still owning its NICs, and `PR_SET_PDEATHSIG` (see
//! [`EmulatedNic::start`](crate::nic::EmulatedNic::start)) fires only when the thread that
//! started a QEMU ends. So every child started through [`spawn`] on a scenario's thread is
//! registered in that scenario's [`Children`], and [`run`] kills and reaps whatever is still
//! registered when the body ends, panics or times out, before it reports. Killing closes the
//! registry: a body that goes on after its scenario gave up cannot start another process.
//!
//! A child is shared between its owner and the registry ([`SharedChild`]), so it is waited
//! for once, in one place: neither side can signal a process id the other already reaped.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// A child process, shared by its owner and the registry it was started in.
#[derive(Clone, Debug)]
pub struct SharedChild(Arc<Mutex<Child>>);

impl SharedChild {
    fn new(child: Child) -> SharedChild {
        SharedChild(Arc::new(Mutex::new(child)))
    }

    /// The child, for a moment (do not hold it while waiting for something else: the
    /// registry locks it to kill it).
    pub fn lock(&self) -> MutexGuard<'_, Child> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.lock().id()
    }

    /// Kills it unless it already ended, and reaps it; `true` if it was still running.
    pub fn kill_and_reap(&self) -> bool {
        let mut child = self.lock();
        let running = matches!(child.try_wait(), Ok(None));
        // `kill` and `wait` on a child already reaped do nothing (std keeps its status), so
        // no other process with a recycled id is ever signalled.
        let _ = child.kill();
        let _ = child.wait();
        running
    }
}

#[derive(Debug, Default)]
struct Registry {
    children: Vec<Weak<Mutex<Child>>>,
    closed: bool,
}

/// The processes one scenario started. Cloning shares the registry.
#[derive(Clone, Debug, Default)]
pub struct Children(Arc<Mutex<Registry>>);

thread_local! {
    static CURRENT: RefCell<Option<Children>> = const { RefCell::new(None) };
}

/// While alive, children spawned on this thread go to a registry; dropping it restores the
/// thread's previous one.
#[must_use = "the registry is the thread's only while the guard lives"]
pub struct Entered {
    previous: Option<Children>,
    // The guard belongs to the thread whose registry it set.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Why a registry refused to start a process.
#[derive(Debug)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the scenario that would own this process has already ended")
    }
}

impl std::error::Error for Closed {}

impl Children {
    /// An empty registry.
    pub fn new() -> Children {
        Children::default()
    }

    /// Makes this the registry of every child [`spawn`]ed on the calling thread while the
    /// guard lives.
    pub fn enter(&self) -> Entered {
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self.clone()));
        Entered {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }

    /// The calling thread's registry, if it entered one (to hand to a thread it starts).
    pub fn current() -> Option<Children> {
        CURRENT.with(|current| current.borrow().clone())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `command` and registers the child; refused (nothing started) once the registry
    /// is closed. Starting and registering are one step under the registry's lock, so
    /// [`Children::kill_all`] cannot miss a child started while it runs.
    pub fn spawn(&self, command: &mut Command) -> io::Result<SharedChild> {
        let mut registry = self.registry();
        if registry.closed {
            return Err(io::Error::other(Closed));
        }
        let child = SharedChild::new(command.spawn()?);
        registry.children.retain(|child| child.strong_count() > 0);
        registry.children.push(Arc::downgrade(&child.0));
        Ok(child)
    }

    /// Closes the registry, then kills and reaps every child still running; returns how many
    /// were still running.
    pub fn kill_all(&self) -> usize {
        let children = {
            let mut registry = self.registry();
            registry.closed = true;
            std::mem::take(&mut registry.children)
        };
        children
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|child| SharedChild(Arc::clone(child)).kill_and_reap())
            .count()
    }
}

/// Starts `command`, registered in the calling thread's [`Children`] if it entered one.
pub fn spawn(command: &mut Command) -> io::Result<SharedChild> {
    match Children::current() {
        Some(children) => children.spawn(command),
        None => Ok(SharedChild::new(command.spawn()?)),
    }
}

/// How a scenario failed. In each case its children were killed and reaped first.
pub enum Failure {
    /// The body panicked; the panic, to pass on.
    Panicked {
        /// The panic's payload.
        payload: Box<dyn Any + Send>,
        /// Children still running when it ended (killed).
        killed: usize,
    },
    /// The body did not finish within `limit`; its thread is left behind, blocked.
    TimedOut {
        /// The limit.
        limit: Duration,
        /// Children still running then (killed).
        killed: usize,
    },
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panicked { payload, killed } => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic without a message");
                write!(
                    f,
                    "the scenario panicked ({message}); {killed} processes it left were killed"
                )
            }
            Failure::TimedOut { limit, killed } => write!(
                f,
                "the scenario did not finish within its {limit:?} limit; {killed} processes it \
                 left were killed"
            ),
        }
    }
}

/// A scenario's body running on its own thread.
pub struct Running {
    started: Instant,
    children: Children,
    finished: mpsc::Receiver<()>,
    worker: std::thread::JoinHandle<()>,
}

/// Starts `body` on a thread of its own with a fresh [`Children`] entered.
pub fn start(body: impl FnOnce() + Send + 'static) -> Running {
    let children = Children::new();
    let (done, finished) = mpsc::channel();
    let worker = {
        let children = children.clone();
        std::thread::spawn(move || {
            let _entered = children.enter();
            body();
            let _ = done.send(());
        })
    };
    Running {
        started: Instant::now(),
        children,
        finished,
        worker,
    }
}

impl Running {
    /// Waits up to `limit` for the body, then kills and reaps every child it left running
    /// (whether it finished, panicked or ran out of time); returns how long it ran.
    pub fn finish(self, limit: Duration) -> Result<Duration, Failure> {
        match self.finished.recv_timeout(limit) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let joined = self.worker.join();
                let killed = self.children.kill_all();
                match joined {
                    Ok(()) => {
                        if killed > 0 {
                            eprintln!("the scenario left {killed} processes running; killed them");
                        }
                        Ok(self.started.elapsed())
                    }
                    Err(payload) => Err(Failure::Panicked { payload, killed }),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::TimedOut {
                limit,
                killed: self.children.kill_all(),
            }),
        }
    }
}

/// Runs `body` as a scenario under `limit`: [`start`], then [`Running::finish`].
pub fn run(limit: Duration, body: impl FnOnce() + Send + 'static) -> Result<Duration, Failure> {
    start(body).finish(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// A stand-in for QEMU: a process that runs until it is killed.
    fn sleeper() -> Command {
        let mut command = Command::new("sleep");
        command.arg("1000");
        command
    }

    /// How a child ended, once reaped.
    fn signal_of(child: &SharedChild) -> Option<i32> {
        child
            .lock()
            .try_wait()
            .expect("a reaped child's status")
            .and_then(|status| status.signal())
    }

    #[test]
    fn kill_all_kills_and_reaps_what_a_blocked_thread_started_and_refuses_more() {
        let children = Children::new();
        let (started, child) = mpsc::channel();
        let (_keep_blocked, block) = mpsc::channel::<()>();
        let thread_children = children.clone();
        // The "scenario thread": starts a child, hands it over, then blocks for good, as a
        // scenario stuck in a step would (it never ends, so no death signal ever fires).
        std::thread::spawn(move || {
            let _entered = thread_children.enter();
            started.send(spawn(&mut sleeper()).unwrap()).unwrap();
            let _ = block.recv();
        });
        let child = child.recv().unwrap();
        assert_eq!(children.kill_all(), 1);
        assert_eq!(signal_of(&child), Some(libc::SIGKILL), "killed and reaped");
        let refused = children.spawn(&mut sleeper()).unwrap_err();
        assert!(
            refused.get_ref().is_some_and(|e| e.is::<Closed>()),
            "{refused}"
        );
        assert_eq!(children.kill_all(), 0);
    }

    #[test]
    fn a_child_its_owner_already_reaped_is_not_counted_or_signalled() {
        let children = Children::new();
        let _entered = children.enter();
        let mut command = Command::new("true");
        let child = spawn(&mut command).unwrap();
        child.lock().wait().unwrap();
        let dropped = spawn(&mut sleeper()).unwrap();
        dropped.kill_and_reap();
        drop(dropped);
        assert_eq!(children.kill_all(), 0);
        assert_eq!(
            child.lock().try_wait().unwrap().and_then(|s| s.code()),
            Some(0)
        );
    }

    #[test]
    fn spawn_outside_a_scenario_registers_nothing() {
        assert!(Children::current().is_none());
        let child = spawn(&mut sleeper()).unwrap();
        assert!(child.kill_and_reap());
        let children = Children::new();
        {
            let _entered = children.enter();
            assert!(Children::current().is_some());
        }
        assert!(
            Children::current().is_none(),
            "the guard restores the thread's registry"
        );
    }

    #[test]
    fn a_scenario_that_times_out_kills_its_children_before_failing() {
        let (started, child) = mpsc::channel();
        let (release, block) = mpsc::channel::<()>();
        // The body never finishes on its own (it waits for `release`), and the limit starts
        // only once its child runs: the limit is what ends it, however slow the machine.
        let running = start(move || {
            started.send(spawn(&mut sleeper()).unwrap()).unwrap();
            let _ = block.recv();
        });
        let child = child.recv().unwrap();
        let failure = running.finish(Duration::ZERO).unwrap_err();
        assert!(
            matches!(failure, Failure::TimedOut { killed: 1, .. }),
            "{failure}"
        );
        assert_eq!(signal_of(&child), Some(libc::SIGKILL));
        drop(release);
    }

    #[test]
    fn a_scenario_that_panics_kills_its_children_and_passes_the_panic_on() {
        let (started, child) = mpsc::channel();
        let failure = run(Duration::from_secs(600), move || {
            let child = spawn(&mut sleeper()).unwrap();
            started.send(child.clone()).unwrap();
            // Leaked on purpose: nothing but the registry stops it.
            std::mem::forget(child);
            panic!("a step failed");
        })
        .unwrap_err();
        let Failure::Panicked { payload, killed } = failure else {
            panic!("{failure}")
        };
        assert_eq!(killed, 1);
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"a step failed"));
        assert_eq!(signal_of(&child.recv().unwrap()), Some(libc::SIGKILL));
    }

    #[test]
    fn a_scenario_that_finishes_reports_its_time() {
        let took = run(Duration::from_secs(600), || {}).unwrap();
        assert!(took < Duration::from_secs(600));
    }
}
