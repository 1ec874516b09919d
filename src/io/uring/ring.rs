//! The ring every io_uring worker drives (through its driver): setup with
//! deferred task work where the kernel has it, the provided receive buffers,
//! push and wait.

use std::time::Duration;

use io_uring::{squeue, types, IoUring};

use super::bufs::Provided;
use crate::io::Error;

/// Most kernel worker threads per ring, bounded and unbounded each.
const IOWQ_MAX_WORKERS: u32 = 4;

/// The group id of a ring's provided buffers (one group per ring).
pub(crate) const BUFFER_GROUP: u16 = 0;

/// One worker's ring, and the buffers it offers to multishot receives.
pub(crate) struct Ring {
    worker: usize,
    // Declared before `provided`: the ring closes before the buffers unmap.
    ring: IoUring,
    provided: Option<Provided>,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel lets go of the buffers before they unmap.
        if self.provided.is_some() {
            let _ = self.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
        }
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// A ring of `entries` submission entries for worker `worker`.
    ///
    /// # Errors
    /// io_uring_setup failed (disabled, denied by seccomp, too old a kernel).
    pub(crate) fn new(worker: usize, entries: u32) -> Result<Self, Error> {
        let build = |deferred: bool| {
            let mut b = IoUring::builder();
            // The completion queue must not overflow when every connection has a
            // receive, a send and a zero-copy notification outstanding.
            b.setup_cqsize(entries * 8);
            if deferred {
                // One thread owns the ring, so the kernel may defer completion
                // work until that thread asks for events (no interrupt of the
                // worker per completion), and flags pending work in the ring,
                // which lets a busy-polling worker look without a syscall.
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_taskrun_flag();
            }
            b.build(entries)
        };
        // Deferred task work needs Linux 6.1: without it, the plain ring.
        let ring = build(true)
            .or_else(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => build(false),
                _ => Err(e),
            })
            .map_err(|source| Error::Poll {
                worker,
                op: "io_uring_setup",
                source,
            })?;
        // Operations io_uring cannot complete inline (every splice) run on
        // kernel worker threads, one more for each that waits: cap them per
        // ring, as the workers' own operations never block (bench/backends saw
        // 1,000 threads for 1,000 splicing connections before the cap).
        let mut max = [IOWQ_MAX_WORKERS; 2];
        if let Err(e) = ring.submitter().register_iowq_max_workers(&mut max) {
            tracing::debug!(worker, error = %e, "cannot cap io_uring's worker threads");
        }
        Ok(Self {
            worker,
            ring,
            provided: None,
        })
    }

    /// Offers `count` buffers of `size` bytes as group [`BUFFER_GROUP`].
    ///
    /// # Errors
    /// The mapping or its registration failed (Linux older than 5.19).
    pub(crate) fn provide(&mut self, count: u16, size: u32) -> Result<(), Error> {
        let provided = Provided::new(count, size).map_err(|source| Error::Poll {
            worker: self.worker,
            op: "map provided buffers",
            source,
        })?;
        // SAFETY: the ring lives in `provided`, which `self` keeps until its
        // drop has unregistered it.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                provided.ring_addr(),
                provided.count(),
                BUFFER_GROUP,
                0,
            )
        }
        .map_err(|source| Error::Poll {
            worker: self.worker,
            op: "register provided buffers",
            source,
        })?;
        self.provided = Some(provided);
        Ok(())
    }

    /// What the kernel put in provided buffer `bid` (`len` bytes); `None` for
    /// a buffer never offered.
    ///
    /// # Safety
    /// `bid` must come from a reaped completion's flags, not yet given back.
    pub(crate) unsafe fn filled(&self, bid: u16, len: usize) -> Option<&[u8]> {
        // SAFETY: the caller vouches that the kernel has handed `bid` over.
        self.provided
            .as_ref()
            .and_then(|p| unsafe { p.filled(bid, len) })
    }

    /// Offers provided buffer `bid` to the kernel again.
    pub(crate) fn give_back(&mut self, bid: u16) {
        if let Some(p) = self.provided.as_mut() {
            p.give_back(bid);
        }
    }

    /// Queues `sqe`, submitting what is queued first when the queue is full.
    ///
    /// # Safety
    /// Every buffer, iovec, msghdr and address `sqe` names must stay valid (and,
    /// for a receive, unaliased) until its completion is reaped; for a
    /// zero-copy send, until its notification is. Every descriptor it names must
    /// stay open until then.
    pub(crate) unsafe fn push(&mut self, sqe: &squeue::Entry) -> Result<(), Error> {
        loop {
            // SAFETY: the caller upholds this function's contract for `sqe`.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(|source| self.error(source))?;
        }
    }

    /// Queues `sqes` together (a linked chain must not be cut by a submit),
    /// submitting what is queued first when they do not fit.
    ///
    /// # Safety
    /// As [`Self::push`], for each entry.
    pub(crate) unsafe fn push_all(&mut self, sqes: &[squeue::Entry]) -> Result<(), Error> {
        if sqes.len() > self.ring.params().sq_entries() as usize {
            return Err(self.error(std::io::Error::other("chain longer than the ring")));
        }
        loop {
            // SAFETY: the caller upholds this function's contract for `sqes`.
            if unsafe { self.ring.submission().push_multiple(sqes) }.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(|source| self.error(source))?;
        }
    }

    /// Submits what is queued and waits for one completion, or until `wait`
    /// passes (`None`: no limit; zero: do not wait). `done` is replaced by the
    /// completions, as (user_data, result, flags).
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn submit_and_wait(
        &mut self,
        wait: Option<Duration>,
        done: &mut Vec<(u64, i32, u32)>,
    ) -> Result<(), Error> {
        let result = match wait {
            Some(d) if d.is_zero() => {
                let sq = self.ring.submission();
                if sq.is_empty() && !sq.taskrun() {
                    // Nothing to submit and no completion work pending in the
                    // kernel: a look at the completion queue is enough.
                    Ok(0)
                } else {
                    drop(sq);
                    self.ring.submit()
                }
            }
            Some(d) => {
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(source) => return Err(self.error(source)),
        }
        done.clear();
        done.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::Poll {
            worker: self.worker,
            op: "io_uring_enter",
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_buffers_come_back_and_carry_every_byte_in_order() {
        use io_uring::{cqueue, opcode};
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // Two buffers of 8 bytes for 40 messages: each buffer is reused many
        // times, and the ring's tail wraps.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut ring = Ring::new(0, 8).unwrap();
        ring.provide(2, 8).unwrap();
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut done = Vec::new();
        let mut armed = false;
        for i in 0..40u8 {
            if !armed {
                let sqe = opcode::RecvMulti::new(types::Fd(server.as_raw_fd()), BUFFER_GROUP)
                    .build()
                    .user_data(1);
                // SAFETY: the buffers are the ring's; `server` outlives the loop.
                unsafe { ring.push(&sqe) }.unwrap();
                armed = true;
            }
            let message = [i; 5];
            client.write_all(&message).unwrap();
            want.extend_from_slice(&message);
            while got.len() < want.len() {
                ring.submit_and_wait(Some(Duration::from_secs(5)), &mut done)
                    .unwrap();
                for &(_, result, flags) in &done {
                    armed &= cqueue::more(flags);
                    if result == -libc::ENOBUFS {
                        continue;
                    }
                    assert!(result > 0, "receive failed: {result}");
                    let bid = cqueue::buffer_select(flags).unwrap();
                    // SAFETY: `bid` is this completion's, given back below.
                    got.extend_from_slice(unsafe { ring.filled(bid, result as usize) }.unwrap());
                    ring.give_back(bid);
                }
                if !armed {
                    break;
                }
            }
        }
        assert_eq!(got, want);
        // SAFETY: a bid never offered is refused, not read.
        assert!(unsafe { ring.filled(2, 1) }.is_none());
    }
}
