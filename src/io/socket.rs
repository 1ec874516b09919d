//! Listening sockets and thread placement: one SO_REUSEPORT listener per worker (the
//! kernel spreads new connections over the group), and pinning a worker to a core.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::Error;

/// Accept queue length per listener: a rack powering on opens hundreds of
/// connections in the same millisecond.
const BACKLOG: i32 = 4096;

/// `count` listeners bound to the same address with SO_REUSEPORT. Port 0 picks a
/// free port once, shared by all.
///
/// # Errors
/// [`Error::Listen`] naming the address and a hint.
pub fn reuseport_listeners(addr: SocketAddr, count: usize) -> Result<Vec<TcpListener>, Error> {
    let mut bound = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let l = listener(bound).map_err(|e| Error::listen(bound, e))?;
        bound = l.local_addr().map_err(|e| Error::listen(bound, e))?;
        out.push(l);
    }
    Ok(out)
}

fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    dual_stack(&s, addr)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// `[::]` takes IPv4 too (as ::ffff:a.b.c.d), whatever
/// net.ipv6.bindv6only says: one socket serves both families.
pub(crate) fn dual_stack(s: &Socket, addr: SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V6(a) if a.ip().is_unspecified() => s.set_only_v6(false),
        _ => Ok(()),
    }
}

/// The cores this process may run on (as `taskset` or a cgroup left them).
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live local of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set initialised above; `c` is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to `core`.
///
/// # Errors
/// What sched_setaffinity said.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes into the local set; `core` is checked against its size.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        libc::CPU_SET(core, &mut set);
    }
    // SAFETY: `set` is a live local of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
