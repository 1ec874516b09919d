//! The boot-storm simulator (`rackboot storm`, issue #6): virtual machines as
//! sans-IO state machines with firmware-like timers (the DHCP client of each
//! firmware identity, EDK2's TFTP download, HTTP GETs, what iPXE does with a
//! boot script, and the machine that chains them into a whole boot), the fleet
//! a seed draws, and the report. `io::storm` drives them over real sockets.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dhcp;
pub mod dhcp6;
pub mod faults;
pub mod fleet;
pub mod grub;
pub mod http;
pub mod machine;
pub mod report;
pub mod script;
pub mod svg;
pub mod tftp;
