//! The boot-storm simulator (`rackboot storm`, issue #6): virtual machines as
//! sans-IO state machines with firmware-like timers, driven on a virtual network
//! or over real sockets. So far: the DHCP client of each firmware identity and
//! EDK2's TFTP download, HTTP GETs, what iPXE does with a boot script, and the
//! machine that chains them into a whole boot (machine.rs).
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dhcp;
pub mod http;
pub mod machine;
pub mod script;
pub mod tftp;
