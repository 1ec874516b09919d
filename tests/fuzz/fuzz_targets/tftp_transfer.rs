//! The TFTP transfer engine fed arbitrary datagrams and timers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::tftp_transfer(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
