//! The HTTP request-head parser, Range and target decoding on arbitrary bytes:
//! never a panic, and a decoded path never names anything outside the root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::head(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
