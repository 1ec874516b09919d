//! Helpers for unit tests: a base instant for fake clocks, temporary directories.
#![allow(unreachable_pub, reason = "test-only helpers")]

use std::time::Instant;

/// Any base instant; tests add offsets to it and never sleep.
#[allow(
    clippy::disallowed_methods,
    reason = "the one clock read of the unit tests: a base that fake clocks offset"
)]
pub fn t0() -> Instant {
    Instant::now()
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory named after `tag` and the process.
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rackboot-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A DHCP engine for 10.77.0.0/24 (the boot captures' network): server
/// 10.77.0.1 as router and DNS, pool .100-.199, one-hour leases, `rules`.
pub fn dhcp_engine(
    mode: crate::proto::dhcp::Mode,
    rules: Vec<crate::proto::dhcp::policy::Rule>,
) -> crate::proto::dhcp::Engine {
    use crate::proto::dhcp::{Engine, Settings, Subnet};
    use std::net::Ipv4Addr;
    let server = Ipv4Addr::new(10, 77, 0, 1);
    let subnet = Subnet {
        router: Some(server),
        dns: vec![server],
        ..Subnet::pool(
            Ipv4Addr::new(10, 77, 0, 0),
            24,
            (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 199)),
            3600,
        )
    };
    let settings = Settings {
        mode,
        subnets: vec![subnet],
        rules,
        ..Settings::default()
    };
    Engine::new(
        settings,
        crate::lease::Table::default(),
        t0(),
        1_800_000_000,
    )
}
