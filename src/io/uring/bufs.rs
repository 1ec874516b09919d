//! A provided-buffer ring: buffers the kernel picks from as data arrives, so
//! that a connection waiting for its next request holds no receive buffer of
//! its own (a multishot receive names a group, not a buffer). The worker copies
//! what arrived out of the buffer and hands the buffer straight back.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use memmap2::MmapMut;

/// `count` buffers of `size` bytes in one group, and the ring that offers
/// them to the kernel. The ring must be unregistered from its io_uring before
/// this is dropped (see `Ring`'s drop).
pub(crate) struct Provided {
    // Anonymous mappings, reached only through raw pointers: the kernel reads
    // the one and writes the other behind our back.
    entries: MmapMut,
    buffers: MmapMut,
    count: u16,
    size: u32,
    /// The next tail to publish: every buffer up to it is the kernel's.
    tail: u16,
}

impl Provided {
    /// `count` (a power of two, at most 32768) buffers of `size` bytes, every
    /// one offered; the caller registers [`Self::ring_addr`] with the kernel.
    pub(crate) fn new(count: u16, size: u32) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 1 << 15 || size == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let entries = MmapMut::map_anon(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let buffers = MmapMut::map_anon(usize::from(count) * size as usize)?;
        let mut provided = Self {
            entries,
            buffers,
            count,
            size,
            tail: 0,
        };
        for bid in 0..count {
            provided.give_back(bid);
        }
        Ok(provided)
    }

    /// The ring's address, for IORING_REGISTER_PBUF_RING.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.entries.as_ptr() as u64
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// The `len` bytes the kernel put in buffer `bid`, or `None` when the
    /// completion names a buffer or a length this ring never offered.
    ///
    /// # Safety
    /// A completion reaped from the ring this is registered with must have
    /// handed `bid` over, and it must not have been given back since: the
    /// kernel writes no more into it until then.
    pub(crate) unsafe fn filled(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid >= self.count || len > self.size as usize {
            return None;
        }
        let start = usize::from(bid) * self.size as usize;
        // SAFETY: in bounds of the buffers mapping (checked above); the caller
        // vouches that the kernel is done writing it.
        Some(unsafe { std::slice::from_raw_parts(self.buffers.as_ptr().add(start), len) })
    }

    /// Offers buffer `bid` to the kernel again. Ignores a `bid` out of range.
    pub(crate) fn give_back(&mut self, bid: u16) {
        if bid >= self.count {
            return;
        }
        let entries = self.entries.as_mut_ptr().cast::<BufRingEntry>();
        let at = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.as_ptr() as u64 + u64::from(bid) * u64::from(self.size);
        // SAFETY: `at` is below `count`, inside the entries mapping. The kernel
        // reads entries only between its head and the published tail, and this
        // one lies past the tail until the store below; the fields written are
        // not the tail, which shares entry 0.
        unsafe {
            let entry = &mut *entries.add(at);
            entry.set_addr(addr);
            entry.set_len(self.size);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a u16 inside entry 0, aligned and live as long as
        // the mapping; the kernel reads it, only this thread writes it.
        let tail = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(entries).cast_mut()) };
        // Release: the entry's fields are visible before the tail that offers it.
        tail.store(self.tail, Ordering::Release);
    }
}

impl std::fmt::Debug for Provided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provided")
            .field("count", &self.count)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}
