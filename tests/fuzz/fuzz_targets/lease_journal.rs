//! The lease journal's replay (records, damaged stretches, torn tail) on
//! arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::lease_journal(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
