//! The process's open-file limit: every socket (a connection, a transfer, a
//! storm's machine) is a descriptor. The server raises it at start, the storm
//! before it plays its machines.

/// Raises the open-file limit toward `want`: the soft limit up to the hard
/// one, and, where the process may (root, or CAP_SYS_RESOURCE), the hard
/// one up to the kernel's `fs.nr_open`. A storm holds a socket or two per
/// machine; a server one per connection and transfer. Returns the soft
/// limit it ends with, and what bounds it when that is below `want`.
pub fn raise(want: usize) -> (usize, Option<String>) {
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
