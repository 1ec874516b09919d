//! The HTTP connection engine on arbitrary byte streams cut at arbitrary points,
//! with timers firing in between: never a panic, never more bytes than a file has;
//! and the boot profile pages for the same bytes as a query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rackboot_fuzz_checks::engine(data);
    rackboot_fuzz_checks::boot_query(data);
});

#[path = "../checks.rs"]
mod rackboot_fuzz_checks;
