//! Can this process use io_uring? `--backend auto` asks once at start: the
//! sysctl `kernel.io_uring_disabled` (1 limits it to a group, 2 turns it off),
//! then a real ring (a seccomp filter or an old kernel refuses io_uring_setup),
//! then the kernel's opcode table for every operation the workers submit.

use io_uring::{opcode, IoUring, Probe};

/// The operations the io_uring workers submit, by name.
const NEEDED: [(u8, &str); 9] = [
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::Splice::CODE, "SPLICE"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    // SEND_ZC arrived in Linux 6.0, after multishot accept and cancel-by-fd
    // (5.19), which the opcode table cannot show: its presence vouches for them.
    (opcode::SendZc::CODE, "SEND_ZC"),
    (opcode::Timeout::CODE, "TIMEOUT"),
];

/// `Ok(why)` when io_uring can drive the workers, `Err(why not)` otherwise;
/// either text is for the one log line that says which backend runs.
///
/// # Errors
/// The reason io_uring cannot be used, for the log.
pub fn check() -> Result<String, String> {
    // 1 lets only members of kernel.io_uring_group in: the ring setup below tells.
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    if disabled == Some(2) {
        return Err("kernel.io_uring_disabled = 2".into());
    }
    let ring = IoUring::new(8).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => " (denied: kernel.io_uring_disabled, or a seccomp filter)",
            Some(libc::ENOSYS) => " (this kernel has no io_uring)",
            _ => "",
        };
        format!("io_uring_setup: {e}{why}")
    })?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("opcode probe: {e} (kernel older than 5.6)"))?;
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel lacks {} (Linux 6.0 or later has them)",
            missing.join(", ")
        ));
    }
    Ok("the kernel supports every operation the workers use".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_target_kernel_passes_the_check() {
        // The design's target (Linux 6.x, io_uring enabled) must select io_uring;
        // where this fails, the message is what `--backend auto` would log.
        if let Err(why) = super::check() {
            panic!("io_uring unusable here: {why}");
        }
    }
}
