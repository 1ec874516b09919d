//! The io_uring driver every worker runs on: a ring and a slab of the
//! operations in flight. Each operation ([`Op`], one kind per file under op/)
//! owns what the kernel reads or writes for it (buffers, messages, the file
//! whose pages it sends, and a handle that keeps its descriptor open) until its
//! last completion: the one without `MORE` (a multishot receive's end, a
//! zero-copy send's notification). A completion names its operation by slot
//! and generation, so a stale one (a slot freed and reused) is recognised.
//! When the driver is dropped, everything still in flight is cancelled and its
//! completions drained before any buffer is let go.
//!
//! Workers keep protocol decisions only: they submit an [`Op`] with a tag of
//! their own (which connection or transfer, and what for), and get the tag
//! back with each completion, and the operation itself with the last one (to
//! reuse its buffers).

use std::mem::ManuallyDrop;
use std::time::Duration;

use io_uring::{cqueue, squeue};

use super::op::{cancel, Op};
use super::ring::Ring;
use crate::io::Error;

/// `user_data` of operations the driver submits for itself (cancels): their
/// completions carry nothing a worker needs.
const INTERNAL: u64 = u64::MAX;
/// How long a dropped driver waits for its operations to drain.
const DRAIN: Duration = Duration::from_secs(2);

/// Which operation a completion belongs to: its slab slot and the slot's
/// generation when it was submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpId {
    slot: u32,
    gen: u32,
}

impl OpId {
    fn user_data(self) -> u64 {
        u64::from(self.gen) << 32 | u64::from(self.slot)
    }

    fn from_user_data(data: u64) -> Self {
        Self {
            slot: data as u32,
            gen: (data >> 32) as u32,
        }
    }
}

/// One completion, as the worker sees it.
#[derive(Debug)]
pub(crate) struct Completion<T> {
    /// The worker's tag of the operation.
    pub tag: T,
    /// The kernel's result: a count, or a negated errno.
    pub result: i32,
    /// The kernel's flags (buffer id, `MORE`, `NOTIF`).
    pub flags: u32,
    /// The operation, handed back with its last completion (its buffers may be
    /// reused); `None` while more completions of it are to come.
    pub op: Option<Op>,
}

impl<T> Completion<T> {
    /// Whether this is a zero-copy send's notification (the kernel let go of
    /// the pages; nothing was sent).
    pub(crate) fn is_notification(&self) -> bool {
        cqueue::notif(self.flags)
    }

    /// The provided buffer the kernel filled, for a receive from the group.
    pub(crate) fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

struct Slot<T> {
    gen: u32,
    op: Option<(T, Op)>,
}

/// A ring and the operations in flight on it.
pub(crate) struct Driver<T> {
    /// Dropped after the operations have drained; leaked if they do not (the
    /// kernel may still write into what they own).
    ring: ManuallyDrop<Ring>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    cqes: Vec<(u64, i32, u32)>,
}

impl<T> std::fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("ring", &*self.ring)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl<T: Copy> Driver<T> {
    /// A driver on `ring`.
    pub(crate) fn new(ring: Ring) -> Self {
        Self {
            ring: ManuallyDrop::new(ring),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            cqes: Vec::with_capacity(1024),
        }
    }

    /// Operations in flight (submitted, last completion not yet reaped).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The ring, for its provided buffers.
    pub(crate) fn buffers(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// Keeps `op` in the slab; its entry, tagged with where it is kept.
    fn insert(&mut self, tag: T, mut op: Op) -> (OpId, squeue::Entry) {
        // An op's entry points only into heap blocks the op owns, so it may
        // move into the slab after the entry is built.
        let sqe = op.entry();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, op: None });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.gen = entry.gen.wrapping_add(1);
        entry.op = Some((tag, op));
        self.live += 1;
        let id = OpId {
            slot,
            gen: entry.gen,
        };
        (id, sqe.user_data(id.user_data()))
    }

    /// Submits `op`; its completions come back with `tag`.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn submit(&mut self, tag: T, op: Op) -> Result<OpId, Error> {
        let (id, sqe) = self.insert(tag, op);
        // SAFETY: everything the entry names is owned by the op, which the slab
        // keeps (unmoved on the heap) until its last completion is reaped, or
        // by the ring (provided buffers); the op holds its descriptor open.
        unsafe { self.ring.push(&sqe) }?;
        Ok(id)
    }

    /// Submits `ops` as one chain: each starts when the one before it has
    /// completed in full (a short one breaks the chain, and the rest complete
    /// with ECANCELED).
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn submit_linked(&mut self, ops: Vec<(T, Op)>) -> Result<(), Error> {
        let n = ops.len();
        let mut sqes = Vec::with_capacity(n);
        for (i, (tag, op)) in ops.into_iter().enumerate() {
            let (_, sqe) = self.insert(tag, op);
            sqes.push(if i + 1 < n {
                sqe.flags(squeue::Flags::IO_LINK)
            } else {
                sqe
            });
        }
        // SAFETY: as in `submit`, for each op of the chain.
        unsafe { self.ring.push_all(&sqes) }
    }

    /// Asks the kernel to cancel operation `id` (its last completion follows,
    /// usually with ECANCELED).
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn cancel(&mut self, id: OpId) -> Result<(), Error> {
        let sqe = cancel::one(id.user_data()).user_data(INTERNAL);
        // SAFETY: a cancel names no memory.
        unsafe { self.ring.push(&sqe) }
    }

    /// Asks the kernel to cancel every operation on descriptor `fd`.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn cancel_fd(&mut self, fd: std::os::fd::RawFd) -> Result<(), Error> {
        let sqe = cancel::fd(fd).user_data(INTERNAL);
        // SAFETY: a cancel names no memory.
        unsafe { self.ring.push(&sqe) }
    }

    /// Submits what is queued and waits for a completion or `wait` (`None`:
    /// no limit; zero: do not wait); `out` is replaced by the completions.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub(crate) fn turn(
        &mut self,
        wait: Option<Duration>,
        out: &mut Vec<Completion<T>>,
    ) -> Result<(), Error> {
        out.clear();
        let mut cqes = std::mem::take(&mut self.cqes);
        let r = self.ring.submit_and_wait(wait, &mut cqes);
        for &(data, result, flags) in &cqes {
            if let Some(c) = self.complete(data, result, flags) {
                out.push(c);
            }
        }
        self.cqes = cqes;
        r
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32) -> Option<Completion<T>> {
        if data == INTERNAL {
            return None;
        }
        let id = OpId::from_user_data(data);
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        let last = !cqueue::more(flags);
        let (tag, op) = if last {
            let (tag, op) = slot.op.take()?;
            self.free.push(id.slot);
            self.live -= 1;
            (tag, Some(op))
        } else {
            (slot.op.as_ref()?.0, None)
        };
        Some(Completion {
            tag,
            result,
            flags,
            op,
        })
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        if self.live == 0 {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.ring) };
            return;
        }
        let ring = &mut *self.ring;
        // Cancel everything, then reap until every op has had its last
        // completion: only then may what they own be freed.
        let sqe = cancel::all().user_data(INTERNAL);
        // SAFETY: a cancel names no memory.
        let _ = unsafe { ring.push(&sqe) };
        let deadline = crate::io::clock::now() + DRAIN;
        let mut cqes = Vec::new();
        while self.live > 0 && crate::io::clock::now() < deadline {
            if ring
                .submit_and_wait(Some(Duration::from_millis(50)), &mut cqes)
                .is_err()
            {
                break;
            }
            for &(data, _, flags) in &cqes {
                let id = OpId::from_user_data(data);
                if data == INTERNAL || cqueue::more(flags) {
                    continue;
                }
                if let Some(slot) = self.slots.get_mut(id.slot as usize) {
                    if slot.gen == id.gen && slot.op.take().is_some() {
                        self.live -= 1;
                    }
                }
            }
        }
        if self.live > 0 {
            // The kernel still holds some: leak them and the ring rather than
            // free memory it may write into.
            tracing::warn!(
                in_flight = self.live,
                "io_uring operations did not drain; their buffers are leaked"
            );
            std::mem::forget(std::mem::take(&mut self.slots));
        } else {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.ring) };
        }
    }
}

#[cfg(test)]
mod tests;
