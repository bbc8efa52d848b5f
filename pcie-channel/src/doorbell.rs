//! `std` on Linux only: an optional eventfd doorbell, so a receiver can sleep instead of polling
//! (docs/pcie-channel.md §4.4). The sender rings it after publishing while the receiver's
//! waiting word is set ([`crate::Sender::set_doorbell`]); the receiver sleeps on it when a poll
//! finds nothing ([`Receiver::wait`]). Share it with the peer process by inheriting the file
//! descriptor or passing it with SCM_RIGHTS (as QEMU's ivshmem-server does for the
//! ivshmem-doorbell device).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::channel::ChannelError;
use crate::notify::{Notify, NotifyError};
use crate::receive::Receiver;

/// An eventfd counter: `ring` adds one, `wait` sleeps until it is non-zero and resets it.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new doorbell (non-blocking eventfd; inherited across `exec` so a child can use it).
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd has no memory arguments; a negative result is reported below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Doorbell { fd })
    }

    /// Wraps an inherited eventfd.
    ///
    /// # Safety
    /// `fd` must be an open eventfd that nothing else owns (it is closed on drop).
    pub unsafe fn from_raw_fd(fd: RawFd) -> Doorbell {
        Doorbell {
            // SAFETY: forwarded contract.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    /// Wakes the waiter.
    pub fn ring(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to our own fd.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                core::mem::size_of::<u64>(),
            )
        };
        if n == 8 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        // A counter at its maximum already wakes the waiter.
        if error.kind() == io::ErrorKind::WouldBlock {
            Ok(())
        } else {
            Err(error)
        }
    }

    /// Sleeps until rung or `timeout` passes; returns whether it was rung (and resets it).
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: one valid pollfd on the stack.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(error)
            };
        }
        if ready == 0 {
            return Ok(false);
        }
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live local from our own fd.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                core::mem::size_of::<u64>(),
            )
        };
        Ok(n == 8 && count > 0)
    }
}

impl Notify for Doorbell {
    fn notify(&self) -> Result<(), NotifyError> {
        self.ring().map_err(|error| NotifyError {
            code: error.raw_os_error().unwrap_or(0),
        })
    }
}

/// Why [`Receiver::wait`] failed.
#[derive(Debug)]
pub enum WaitError {
    /// The channel failed or the peer is disconnected.
    Channel(ChannelError),
    /// Polling or reading the eventfd failed.
    Doorbell(io::Error),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Channel(error) => write!(f, "waiting for messages: {error}"),
            WaitError::Doorbell(error) => write!(f, "waiting on the doorbell: {error}"),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WaitError::Channel(error) => Some(error),
            WaitError::Doorbell(error) => Some(error),
        }
    }
}

impl From<ChannelError> for WaitError {
    fn from(error: ChannelError) -> Self {
        WaitError::Channel(error)
    }
}

/// How a [`Receiver::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// New entries were there before it slept (at the re-check after arming).
    Pending,
    /// The doorbell rang (the entries may already have been taken by an earlier poll: a ring
    /// can be stale).
    Rung,
    /// The timeout passed without a ring.
    TimedOut,
}

impl Receiver<'_> {
    /// Sleeps until the sender publishes something, or `timeout` passes: arm, re-check, sleep
    /// on `doorbell`, disarm. Call it when [`Receiver::poll`] (or another receive) finds
    /// nothing: that receive is the check of check, arm, re-check. Poll again after it returns,
    /// whatever it returns (a wake-up may be stale, a timeout is when to check the peer's
    /// heartbeat). The sender must ring the same eventfd ([`crate::Sender::set_doorbell`]); one
    /// that does not only makes every wait last its timeout.
    pub fn wait(&mut self, doorbell: &Doorbell, timeout: Duration) -> Result<Woken, WaitError> {
        // No check of our own before arming: the caller's receive just made it, and a second
        // look (health and every producer index) would only repeat it. What rules out a lost
        // wake-up is the re-check in `arm_wait`, after the waiting word is set and fenced (W1,
        // docs/pcie-channel.md §4.4): a publication it misses sees the armed word and rings.
        if self.arm_wait()? {
            return Ok(Woken::Pending);
        }
        let rung = doorbell.wait(Some(timeout));
        self.disarm_wait();
        match rung.map_err(WaitError::Doorbell)? {
            true => Ok(Woken::Rung),
            false => Ok(Woken::TimedOut),
        }
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rung_doorbell_wakes_one_wait_and_resets() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.wait(Some(Duration::from_millis(0))).unwrap());
        bell.ring().unwrap();
        bell.ring().unwrap();
        assert!(bell.wait(Some(Duration::from_millis(0))).unwrap());
        assert!(!bell.wait(Some(Duration::from_millis(0))).unwrap());
    }

    #[test]
    fn a_doorbell_wakes_another_thread() {
        let bell = std::sync::Arc::new(Doorbell::new().unwrap());
        let waiter = {
            let bell = bell.clone();
            std::thread::spawn(move || bell.wait(None).unwrap())
        };
        bell.ring().unwrap();
        assert!(waiter.join().unwrap());
    }
}
