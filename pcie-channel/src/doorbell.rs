//! `std` on Linux only: an optional eventfd doorbell, so a consumer can sleep instead of polling.
//! The producer rings it after publishing; the consumer waits on it when a poll finds nothing.
//! Share it with the peer process by inheriting the file descriptor (or SCM_RIGHTS).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

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
