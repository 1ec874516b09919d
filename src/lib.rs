//! rackboot: a network boot server that holds its boot files in memory and serves
//! them over HTTP/1.1 (and, as the layers grow, TFTP and DHCP) from one binary.
//!
//! Layers, data flowing down: `config` (what to serve and how) -> `store` (files
//! in sealed memory) -> `wire` (message views) -> `proto` (sans-IO engines) -> `io`
//! (backends that own sockets and the clock) -> `runtime` (one worker per core).

pub mod config;
pub mod io;
pub mod lease;
pub mod proto;
pub mod runtime;
pub mod sim;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;
pub mod wire;
