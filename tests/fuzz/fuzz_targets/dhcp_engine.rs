//! DHCP: the sans-IO engine on runs of datagrams at advancing times.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::dhcp_engine(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
