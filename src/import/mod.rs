//! Taking over from the servers a provisioning host already runs: dnsmasq's
//! configuration and leases ([`dnsmasq`]).

pub mod dnsmasq;
pub mod nginx;
