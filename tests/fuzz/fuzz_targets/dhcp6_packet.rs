//! DHCPv6: see checks.rs (dhcp6_packet).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::dhcp6_packet(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
