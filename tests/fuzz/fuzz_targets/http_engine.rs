//! The HTTP connection engine on arbitrary byte streams cut at arbitrary points,
//! with timers firing in between: never a panic, never more bytes than a file has.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::engine(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
