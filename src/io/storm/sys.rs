//! What the storm asks of the process: CPU time, and the open-file limit a
//! storm of sockets needs.

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

/// Raises the soft open-file limit toward `want` (at most the hard limit): a
/// storm holds a socket or two per machine. Says so when the hard limit is
/// lower.
pub(super) fn raise_fd_limit(want: usize) {
    // SAFETY: rlimit is plain data; getrlimit fills it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is valid for the call to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return;
    }
    if (want as libc::rlim_t) > lim.rlim_max {
        eprintln!(
            "storm: this storm may hold ~{want} sockets (in self mode the server's count too), but \
             the open-file limit is {}: machines past it fail with 'Too many open files'; raise it \
             (ulimit -Hn) or spread the power-ons (--ramp)",
            lim.rlim_max
        );
    }
    let want = (want as libc::rlim_t).min(lim.rlim_max);
    if lim.rlim_cur < want {
        lim.rlim_cur = want;
        // SAFETY: `lim` is a valid rlimit for the call to read.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
    }
}
