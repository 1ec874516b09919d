//! What the storm asks of the process: its CPU time. (Its open-file limit is
//! raised by crate::io::fd_limit, shared with the server.)

use std::time::Duration;

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time (user + system) of the whole process.
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

pub(super) fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain data; zeroed is valid and getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage for the call to write.
    if unsafe { libc::getrusage(who, &raw mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}
