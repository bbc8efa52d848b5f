//! CBC's process: started in a process group of its own, so that the interrupt and the kill
//! reach every process a wrapper script starts, not only the script; waited for against the
//! deadline; and always reaped, with no signal sent once it is.
//!
//! The order is what makes the signals safe. The program's pid is its group's id. While the
//! program is not reaped (running, or ended and a zombie) that id cannot be given to another
//! process or group, so a signal to the group reaches our processes and no others. So the end
//! of the program is seen with `waitid(WNOWAIT)`, which leaves it unreaped; then what is left
//! of the group (a wrapper's children) is killed; then the program is reaped, and from then on
//! nothing is signalled.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// How often the deadline is looked at while CBC runs.
const POLL: Duration = Duration::from_millis(5);

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The program exited by itself, after the interrupt if `interrupted`.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Whether it had been interrupted.
        interrupted: bool,
    },
    /// It was still running at the deadline and was killed with its group.
    Killed,
}

/// A program running as the leader of its own process group. Dropped before it is reaped, its
/// group is killed and it is reaped.
pub(super) struct Group {
    /// `None` once reaped.
    child: Option<Child>,
    /// The program's pid, which is its group's id.
    id: libc::pid_t,
}

impl Group {
    /// Starts `command` as the leader of a new process group.
    pub(super) fn spawn(command: &mut Command) -> io::Result<Group> {
        let mut child = command.process_group(0).spawn()?;
        match libc::pid_t::try_from(child.id()) {
            Ok(id) => Ok(Group {
                child: Some(child),
                id,
            }),
            Err(_) => {
                // Cannot happen (pids fit a pid_t); if it did, no group could be signalled.
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other("the program's pid does not fit a pid_t"))
            }
        }
    }

    /// Waits for the program, interrupting its group (SIGINT) at `interrupt_at` and killing it
    /// (SIGKILL) at `deadline`; once the program has ended, what is left of its group is
    /// killed before the program is reaped.
    pub(super) fn wait(mut self, interrupt_at: Instant, deadline: Instant) -> io::Result<Ended> {
        let mut interrupted = false;
        loop {
            let now = Instant::now();
            if self.ended()? {
                let status = self.finish()?;
                return Ok(Ended::Exited {
                    status,
                    interrupted,
                });
            }
            if now >= deadline {
                self.finish()?;
                return Ok(Ended::Killed);
            }
            if !interrupted && now >= interrupt_at {
                self.signal(libc::SIGINT);
                interrupted = true;
            }
            let next = if interrupted { deadline } else { interrupt_at };
            thread::sleep(POLL.min(next.saturating_duration_since(now)));
        }
    }

    /// Whether the program has ended, leaving it unreaped.
    fn ended(&self) -> io::Result<bool> {
        if self.child.is_none() {
            return Ok(true);
        }
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value (plain integers and a union of
            // them); waitid fills it in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is ours and lives across the call, which writes only into it.
            // WNOWAIT leaves the program unreaped, so `self.id` keeps naming it and its group.
            let result = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.id as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            if result == 0 {
                // SAFETY: after a successful waitid, si_pid is the field it set: the pid of
                // the program if it has ended, zero (as we zeroed it) if not.
                return Ok(unsafe { info.si_pid() } != 0);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Sends `signal` to the program's group, unless the program is reaped.
    fn signal(&self, signal: libc::c_int) {
        if self.child.is_none() {
            return;
        }
        // SAFETY: kill(2) takes two integers and touches no memory of this process. The
        // program is not reaped (`child` is cleared only after it is), so its pid, the group's
        // id, is not reused (POSIX: not while the group has a member, and an unreaped leader
        // is one): -id names our program's group and no other process.
        unsafe {
            libc::kill(-self.id, signal);
        }
    }

    /// Kills what is left of the group and reaps the program: its exit status.
    fn finish(&mut self) -> io::Result<ExitStatus> {
        self.signal(libc::SIGKILL);
        match self.child.take() {
            Some(mut child) => child.wait(),
            None => Err(io::Error::other("the program was already reaped")),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.finish();
        }
    }
}
