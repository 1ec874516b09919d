//! The boot-storm simulator (`rackboot storm`, issue #6): virtual machines as
//! sans-IO state machines with firmware-like timers, driven on a virtual network
//! or over real sockets. So far: the DHCP client of each firmware identity and
//! EDK2's TFTP download, HTTP GETs, and what iPXE does with a boot script.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dhcp;
pub mod http;
pub mod script;
pub mod tftp;
