//! A connection's sending side on io_uring: the head (with a small body) from
//! the connection's own copy, a large body by the worker's [`Body`] path:
//! `splice` (memfd -> the connection's pipe -> socket, linked), `send-zc`
//! (from the file's mapping; the op holds the file until the kernel's
//! notification) or `send` (the kernel copies from the mapping).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use super::super::op::{End, Op, Pages, Poll, Send, SendZc, Shared, Splice};
use crate::config::Body;
use crate::proto::http::Transmit;
use crate::store::BootFile;

/// Bodies up to this size are copied behind the head and sent with it.
pub(super) const INLINE_BODY: u64 = 32 << 10;
/// Most bytes of one body send (`send`, `send-zc`).
const SEND_CHUNK: usize = 4 << 20;
/// Pipe capacity asked for per connection (`splice`): one splice pair moves
/// this much. 1 MiB is the default pipe-max-size.
const PIPE: usize = 1 << 20;

/// A connection's pipe for the `splice` path.
pub(super) struct Pipe {
    read: Rc<OwnedFd>,
    write: Rc<OwnedFd>,
    /// Capacity granted (the kernel may refuse to grow it).
    size: usize,
    /// Body bytes read into the pipe and not yet sent.
    pub(super) held: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live array of two ints, what pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both are new descriptors that we own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
        let size = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&write),
                libc::F_SETPIPE_SZ,
                PIPE as libc::c_int,
            )
        };
        // Refused (over pipe-user-pages-soft for an unprivileged user): the
        // default 64 KiB still works, in smaller steps.
        let size = if size > 0 { size as usize } else { 64 << 10 };
        Ok(Self {
            read: Rc::new(read),
            write: Rc::new(write),
            size,
            held: 0,
        })
    }
}

/// What a send's completion means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// This many bytes reached the socket.
    Bytes(usize),
    /// A SEND_ZC notification: pages were let go; nothing was sent.
    Notified,
    /// Nothing went out, and nothing failed: drive again (a short splice into
    /// the pipe broke the link, or EAGAIN).
    Retry,
    /// The send failed with this errno.
    Failed(i32),
}

/// A connection's sending side: one send (or splice chain) in flight at most.
#[derive(Default)]
pub(super) struct Out {
    /// The head's buffer, lent to each send and given back by its completion.
    pub(super) tx: Vec<u8>,
    pub(super) send_inflight: bool,
    pub(super) splice_inflight: bool,
    pub(super) poll_inflight: bool,
    pub(super) pipe: Option<Pipe>,
}

/// The ops of one send: the operation kind each is tagged with, and the op.
pub(super) type Ops = Vec<(Leg, Op)>;

/// Which leg of a send an op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leg {
    /// Into the socket (SEND, SEND_ZC, or the pipe's splice into it).
    Send,
    /// The memfd's splice into the pipe.
    SpliceIn,
    /// The wait for room in the socket before the pipe's splice into it.
    Poll,
}

impl Out {
    /// Whether any operation of the sending side is in flight.
    pub(super) fn busy(&self) -> bool {
        self.send_inflight || self.splice_inflight || self.poll_inflight
    }

    /// Books a completion of this side's `leg`: what it means for the engine.
    pub(super) fn completed(&mut self, leg: Leg, result: i32, notification: bool) -> Sent {
        match leg {
            Leg::Poll => {
                self.poll_inflight = false;
                return Sent::Retry;
            }
            Leg::SpliceIn => {
                self.splice_inflight = false;
                if result > 0 {
                    if let Some(p) = self.pipe.as_mut() {
                        p.held += result as usize;
                    }
                }
                return match result {
                    r if r >= 0 || r == -libc::ECANCELED => Sent::Retry,
                    r => Sent::Failed(-r),
                };
            }
            Leg::Send => {}
        }
        if notification {
            return Sent::Notified;
        }
        self.send_inflight = false;
        let pipe = self.pipe.as_mut().filter(|p| p.held > 0);
        match result {
            n if n >= 0 => {
                if let Some(p) = pipe {
                    p.held = p.held.saturating_sub(n as usize);
                }
                Sent::Bytes(n as usize)
            }
            // Only a broken link cancels a live connection's send (the worker
            // cancels only when closing): the splice into the pipe came up
            // short or failed, and what the pipe holds, if anything, goes next.
            e if e == -libc::ECANCELED => Sent::Retry,
            e if e == -libc::EAGAIN => Sent::Retry,
            e => Sent::Failed(-e),
        }
    }

    /// The ops that send what `t` names on `socket`, marking them in flight;
    /// `None` when there is nothing to write.
    pub(super) fn start(&mut self, socket: &Shared, t: &Transmit<'_>, body: Body) -> Option<Ops> {
        let file = t.file.filter(|f| f.len > 0);
        let large = file.filter(|f| f.len > INLINE_BODY);
        if !t.bytes.is_empty() || large.is_none() {
            // The head, with a small body behind it, from the connection's own
            // copy. Before a large body the head goes alone, with MSG_MORE so
            // that it shares a segment with the first body bytes.
            let mut tx = std::mem::take(&mut self.tx);
            tx.clear();
            tx.extend_from_slice(t.bytes);
            let mut flags = libc::MSG_NOSIGNAL;
            match file {
                Some(f) if f.len <= INLINE_BODY => {
                    tx.extend_from_slice(f.bytes(usize::MAX)?);
                }
                Some(_) => flags |= libc::MSG_MORE,
                None => {}
            }
            if tx.is_empty() {
                self.tx = tx;
                return None;
            }
            self.send_inflight = true;
            let op = Send::bytes(Rc::clone(socket), tx, flags);
            return Some(vec![(Leg::Send, Op::Send(op))]);
        }
        let f = large?;
        let remaining = usize::try_from(f.len).unwrap_or(usize::MAX);
        if body == Body::Splice {
            if self.pipe.is_none() {
                match Pipe::new() {
                    Ok(p) => self.pipe = Some(p),
                    Err(e) => {
                        tracing::debug!(error = %e, "no pipe for splice; this body is sent with SEND");
                    }
                }
            }
            if let Some(p) = &self.pipe {
                let file = Arc::clone(f.file);
                return Some(self.splice(socket, p.held, remaining.min(p.size), file, f.offset));
            }
        }
        let offset = usize::try_from(f.offset).ok()?;
        let file = Arc::clone(f.file);
        let len = remaining
            .min(SEND_CHUNK)
            .min(file.bytes().len().checked_sub(offset)?);
        let socket = Rc::clone(socket);
        let pages = Pages::new(file, offset, len)?;
        let op = if body == Body::SendZc {
            Op::SendZc(SendZc::file(socket, pages, libc::MSG_NOSIGNAL))
        } else {
            Op::Send(Send::file(socket, pages, libc::MSG_NOSIGNAL))
        };
        self.send_inflight = true;
        Some(vec![(Leg::Send, op)])
    }

    /// The splice chain: what the pipe holds goes first (the engine's offset
    /// already points past it); else up to `len` bytes of `file` from
    /// `offset` into the pipe, then out. io_uring runs every splice on a kernel
    /// worker thread, and one that blocks on a full socket holds its thread
    /// (1,000 threads for 1,000 slow readers, bench/backends), so the splice
    /// into the socket does not block, and a poll for room comes before it.
    fn splice(
        &mut self,
        socket: &Shared,
        held: usize,
        len: usize,
        file: Arc<BootFile>,
        offset: u64,
    ) -> Ops {
        let pipe = self
            .pipe
            .as_ref()
            .map(|p| (Rc::clone(&p.read), Rc::clone(&p.write)));
        let Some((read, write)) = pipe else {
            return Vec::new();
        };
        let mut ops = Vec::with_capacity(3);
        let out_len = if held > 0 { held } else { len };
        if held == 0 {
            self.splice_inflight = true;
            let fill = Splice::new(End::File(file, offset), End::Fd(write), len as u32, 0);
            ops.push((Leg::SpliceIn, Op::Splice(fill)));
        }
        self.send_inflight = true;
        self.poll_inflight = true;
        ops.push((Leg::Poll, Op::Poll(Poll::writable(Rc::clone(socket)))));
        let out = Splice::new(
            End::Fd(read),
            End::Fd(Rc::clone(socket)),
            out_len as u32,
            libc::SPLICE_F_NONBLOCK,
        );
        ops.push((Leg::Send, Op::Splice(out)));
        ops
    }
}
