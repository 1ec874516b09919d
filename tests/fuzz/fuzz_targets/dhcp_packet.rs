//! DHCP: the message view, option index (overload, RFC 3396) and reply writer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::dhcp_packet(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
