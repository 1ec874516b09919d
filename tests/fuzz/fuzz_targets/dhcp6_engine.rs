//! DHCPv6: see checks.rs (dhcp6_engine).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::dhcp6_engine(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
