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

/// Raises the open-file limit toward `want`: the soft limit up to the hard
/// one, and, where the process may (root, or CAP_SYS_RESOURCE), the hard
/// one up to the kernel's `fs.nr_open`. A storm holds a socket or two per
/// machine; a server one per connection and transfer. Returns the soft limit it ends with, and what bounds it when that
/// is below `want`.
pub fn raise_fd_limit(want: usize) -> (usize, Option<String>) {
    // SAFETY: rlimit is plain data; getrlimit fills it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is valid for the call to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return (usize::MAX, None);
    }
    let want = want as libc::rlim_t;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    if want > lim.rlim_max {
        if let Some(nr_open) = nr_open {
            let raised = libc::rlimit {
                rlim_cur: want.min(nr_open),
                rlim_max: want.min(nr_open).max(lim.rlim_max),
            };
            // SAFETY: `raised` is a valid rlimit for the call to read.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
                lim = raised;
            }
        }
    }
    if lim.rlim_cur < want {
        let cur = want.min(lim.rlim_max);
        let next = libc::rlimit {
            rlim_cur: cur,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `next` is a valid rlimit for the call to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const next) } == 0 {
            lim.rlim_cur = cur;
        }
    }
    let bound = (lim.rlim_cur < want).then(|| {
        if nr_open.is_some_and(|n| lim.rlim_cur >= n) {
            format!(
                "the kernel's fs.nr_open ({}); raise it with sysctl",
                lim.rlim_cur
            )
        } else {
            format!(
                "the open-file limit ({}, hard {}): raising the hard limit needs root with \
                 CAP_SYS_RESOURCE (or ulimit -Hn, LimitNOFILE= before the start)",
                lim.rlim_cur, lim.rlim_max
            )
        }
    });
    (usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX), bound)
}
