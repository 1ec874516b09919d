//! rackboot: a network boot server that holds its boot files in memory and serves
//! them over DHCP, TFTP and HTTP/1.1 from one binary.
//!
//! Layers, data flowing down: `config` (what to serve and how) -> `store` (files
//! in sealed memory, published as a snapshot with a generation) -> `wire`
//! (message views) -> `proto` (sans-IO engines: the TFTP endpoint and
//! transfers, HTTP connections, the DHCP engine, boot profiles) -> `lease`
//! (the lease table and its journal) -> `io` (the io_uring and epoll backends
//! that own sockets and the clock) -> `runtime` (one worker per core, started
//! one way). `control` is what a running server can be asked (reload,
//! status), `admin` the API that asks it. `sim` is the storm's virtual
//! fleet, driven by `io::storm`.

pub mod admin;
pub mod config;
pub mod control;
pub mod fleet;
pub mod import;
pub mod io;
pub mod lease;
pub mod machines;
pub mod metrics;
pub mod proto;
pub mod runtime;
pub mod sim;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;
pub mod watch;
pub mod wire;
