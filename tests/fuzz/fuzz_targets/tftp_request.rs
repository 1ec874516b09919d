//! TFTP request acceptance (filename, mode, options) on arbitrary datagrams.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::tftp_request(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
