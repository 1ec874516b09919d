//! Scripted boots for the fleet's unit tests: DHCP events from the byte
//! fixtures of real clients (CLIENTS.md) with their chaddr set to one MAC,
//! answers built as a server would, transfers on a fake clock.
#![allow(unreachable_pub, reason = "test-only helpers")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::timeline::{Fleet, Limits, Timers};
use super::{Dhcp, Event, Fetch, Mac, Page, PageKind, Proto, Start};

/// The server's address in the scripted boots.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The script iPXE is given.
pub const SCRIPT_URL: &str = "http://10.0.0.1/boot.ipxe";
/// The script served at [`SCRIPT_URL`].
pub const SCRIPT: &str = "#!ipxe\nkernel http://10.0.0.1/d-i/linux initrd=initrd.gz auto=true url=http://10.0.0.1/preseed.cfg\ninitrd http://10.0.0.1/d-i/initrd.gz\nboot\n";

/// A fixture of tests/fixtures/dhcp with its chaddr set to `mac`.
pub fn fixture(name: &str, mac: Mac) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/dhcp/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut b = std::fs::read(&path).unwrap();
    b[28..34].copy_from_slice(&mac.0);
    b
}

/// A server's answer of `kind` (2 OFFER, 5 ACK, 6 NAK) giving `ip` and `file`.
pub fn answer(kind: u8, ip: Ipv4Addr, file: &str, dns: bool) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 2;
    b[1] = 1;
    b[2] = 6;
    b[16..20].copy_from_slice(&ip.octets());
    b[20..24].copy_from_slice(&SERVER.octets());
    b[108..108 + file.len()].copy_from_slice(file.as_bytes());
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, kind]);
    if dns {
        b.extend_from_slice(&[6, 4, 10, 0, 0, 53]);
    }
    b.push(255);
    b
}

/// A fleet on a fake clock, with the script served as a file.
pub struct Play {
    pub fleet: Fleet,
    pub t0: Instant,
}

impl Play {
    pub fn new() -> Self {
        Self::with(Limits::default())
    }

    pub fn with(limits: Limits) -> Self {
        Self {
            fleet: Fleet::new(limits, Timers::default()),
            t0: crate::testutil::t0(),
        }
    }

    /// The instant `s` seconds in.
    pub fn at(&self, s: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(s)
    }

    fn feed(&mut self, e: Event) {
        self.fleet
            .handle(e, &|p: &str| (p == "/boot.ipxe").then(|| SCRIPT.to_owned()));
    }

    /// `request` (a fixture name) from `mac` at `s`, answered with `reply`.
    pub fn dhcp(&mut self, s: f64, mac: Mac, request: &str, reply: Result<Vec<u8>, &'static str>) {
        let req = fixture(request, mac);
        let at = self.at(s);
        let e = Dhcp::from_wire(at, &req, reply.as_deref().map_err(|w| *w)).unwrap();
        self.feed(Event::Dhcp(e));
    }

    /// A whole DISCOVER/OFFER/REQUEST/ACK of `who` (`edk2`, `ipxe-efi`,
    /// `ipxe-bios`, `d-i`) at `s`, giving `ip` and `file`.
    pub fn lease(&mut self, s: f64, mac: Mac, who: &str, ip: Ipv4Addr, file: &str, dns: bool) {
        self.dhcp(
            s,
            mac,
            &format!("{who}-discover"),
            Ok(answer(2, ip, file, dns)),
        );
        self.dhcp(
            s + 0.1,
            mac,
            &format!("{who}-request"),
            Ok(answer(5, ip, file, dns)),
        );
    }

    /// A transfer of `path` from `ip` over `s0..s1`.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        s0: f64,
        s1: f64,
        ip: Ipv4Addr,
        proto: Proto,
        path: &str,
        result: &str,
        bytes: u64,
        blocks: (u64, u64),
    ) {
        let e = Fetch {
            start: self.at(s0),
            end: self.at(s1),
            peer: IpAddr::V4(ip),
            proto,
            path: path.into(),
            status: if proto == Proto::Http {
                result.parse().unwrap_or(200)
            } else {
                0
            },
            result: if proto == Proto::Http {
                "-".into()
            } else {
                result.into()
            },
            bytes,
            resent: 0,
            blocks,
            blksize: 1468,
        };
        self.feed(Event::Fetch(e));
    }

    /// A whole HTTP GET of `path` answered 200.
    pub fn get(&mut self, s: f64, ip: Ipv4Addr, path: &str, bytes: u64) {
        self.fetch(s, s + 0.2, ip, Proto::Http, path, "200", bytes, (0, 0));
    }

    /// A transfer that started at `s` and has not ended.
    pub fn start(&mut self, s: f64, ip: Ipv4Addr, proto: Proto, path: &str) {
        let e = Start {
            at: self.at(s),
            peer: IpAddr::V4(ip),
            proto,
            path: path.into(),
        };
        self.feed(Event::Start(e));
    }

    /// A page the profiles rendered for `mac` at `s`.
    pub fn page(
        &mut self,
        s: f64,
        mac: Mac,
        ip: Ipv4Addr,
        kind: PageKind,
        body: Option<&str>,
        error: Option<&str>,
    ) {
        let e = Page {
            at: self.at(s),
            mac,
            peer: Some(IpAddr::V4(ip)),
            kind,
            body: body.map(Into::into),
            error: error.map(Into::into),
        };
        self.feed(Event::Page(e));
    }

    /// An EDK2 machine's boot up to (and including) `until` steps:
    /// 0 DHCP, 1 NBP, 2 iPXE DHCP, 3 script, 4 kernel, 5 initrd, 6 installer DHCP, 7 answers.
    pub fn edk2(&mut self, mac: Mac, ip: Ipv4Addr, until: usize, installer_dns: bool) {
        let steps: [&dyn Fn(&mut Self); 8] = [
            &|p| p.lease(0.0, mac, "edk2", ip, "ipxe.efi", true),
            &|p| {
                p.fetch(
                    4.0,
                    4.1,
                    ip,
                    Proto::Tftp,
                    "/ipxe.efi",
                    "size_probe",
                    0,
                    (0, 580),
                );
                p.fetch(
                    4.2,
                    4.6,
                    ip,
                    Proto::Tftp,
                    "/ipxe.efi",
                    "done",
                    850_528,
                    (580, 580),
                );
            },
            &|p| p.lease(10.0, mac, "ipxe-efi", ip, SCRIPT_URL, true),
            &|p| p.get(23.0, ip, "/boot.ipxe", SCRIPT.len() as u64),
            &|p| p.get(23.3, ip, "/d-i/linux", 8_200_000),
            &|p| p.get(23.6, ip, "/d-i/initrd.gz", 40_800_000),
            &|p| p.lease(70.0, mac, "d-i", ip, "", installer_dns),
            &|p| p.get(76.0, ip, "/preseed.cfg", 900),
        ];
        for step in steps.iter().take(until + 1) {
            step(self);
        }
    }

    pub fn boot(&self, mac: Mac) -> &super::timeline::Boot {
        self.fleet.machine(&mac).unwrap().boots.back().unwrap()
    }
}

/// The `n`th test machine's MAC and address.
pub fn machine(n: u8) -> (Mac, Ipv4Addr) {
    (
        Mac([0x52, 0x54, 0, 0x12, 0x34, n]),
        Ipv4Addr::new(10, 0, 0, 100 + n),
    )
}
