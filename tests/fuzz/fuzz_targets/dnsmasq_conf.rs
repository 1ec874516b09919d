//! The dnsmasq importer: any text, read and translated into rackboot TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::dnsmasq_conf(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
