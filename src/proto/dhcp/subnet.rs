//! What the server is told about its networks: a subnet (pools, options) and a
//! static reservation, with the address arithmetic allocation needs.

use std::net::Ipv4Addr;

/// One subnet the server gives addresses in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Address ranges handed out, inclusive, in allocation order.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Addresses in the ranges never handed out.
    pub exclude: Vec<Ipv4Addr>,
    /// Lease time, seconds.
    pub lease_secs: u32,
    /// Option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 6 (sent whenever set: the Debian installer needs it).
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Raw options by number.
    pub options: Vec<(u8, Vec<u8>)>,
    /// Only clients with all these tags get addresses here (dnsmasq's
    /// `dhcp-range=tag:X,...`); another subnet of the same network may serve
    /// the rest.
    pub tags: Vec<String>,
    /// Clients with any of these tags do not.
    pub not_tags: Vec<String>,
    /// Tags its clients get (dnsmasq's `dhcp-range=set:X,...`), before the
    /// boot rules are read.
    pub set_tags: Vec<String>,
}

impl Subnet {
    /// The addresses `first` to `last` of `network`/`prefix`, leased for
    /// `lease_secs`, with no options yet.
    pub fn pool(
        network: Ipv4Addr,
        prefix: u8,
        (first, last): (Ipv4Addr, Ipv4Addr),
        lease_secs: u32,
    ) -> Self {
        Self {
            network,
            prefix,
            ranges: vec![(first, last)],
            exclude: Vec::new(),
            lease_secs,
            router: None,
            dns: Vec::new(),
            domain: None,
            ntp: Vec::new(),
            mtu: None,
            options: Vec::new(),
            tags: Vec::new(),
            not_tags: Vec::new(),
            set_tags: Vec::new(),
        }
    }

    /// Whether a client with `tags` may get an address here.
    pub fn serves(&self, tags: &[&str]) -> bool {
        super::policy::tags_fit(&self.tags, &self.not_tags, tags)
    }

    /// Whether only some clients get addresses here.
    pub fn is_filtered(&self) -> bool {
        !self.tags.is_empty() || !self.not_tags.is_empty()
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = self.mask_bits();
        u32::from(ip) & mask == u32::from(self.network) & mask
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The subnet mask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// Addresses in the ranges.
    pub fn size(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(a, b)| u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1)
            .sum()
    }

    pub(super) fn in_ranges(&self, ip: Ipv4Addr) -> bool {
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
    }

    pub(super) fn index(&self, ip: Ipv4Addr) -> Option<u64> {
        let mut before = 0;
        for (a, b) in &self.ranges {
            if (*a..=*b).contains(&ip) {
                return Some(before + u64::from(u32::from(ip) - u32::from(*a)));
            }
            before += u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1;
        }
        None
    }

    pub(super) fn nth(&self, mut i: u64) -> Option<Ipv4Addr> {
        for (a, b) in &self.ranges {
            let n = u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1;
            if i < n {
                return Some(Ipv4Addr::from(u32::from(*a) + i as u32));
            }
            i -= n;
        }
        None
    }
}

/// A static reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The machine's MAC (ignored when `client_id` is given).
    pub mac: [u8; 6],
    /// Its other NICs' MACs: one address for whichever asks (a lease of one
    /// is given up when another takes the address).
    pub other_macs: Vec<[u8; 6]>,
    /// Its DHCP client identifier (option 61), when it is known by that
    /// instead of its MAC (dnsmasq's `dhcp-host=id:...`).
    pub client_id: Option<Vec<u8>>,
    /// Its address (in one of the subnets; may be outside the ranges).
    pub ip: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Its own lease time, seconds (`u32::MAX`: infinite), over the subnet's.
    pub lease_secs: Option<u32>,
    /// Raw options by number.
    pub options: Vec<(u8, Vec<u8>)>,
    /// Its client ids are ignored: its leases are keyed by its MAC
    /// (dnsmasq's `dhcp-host=MAC,id:*`).
    pub ignore_client_id: bool,
    /// The reservation holds only for a client with all these tags
    /// (dnsmasq's `dhcp-host=tag:X,...`).
    pub tags: Vec<String>,
    /// ...and none of these.
    pub not_tags: Vec<String>,
}

impl Host {
    /// Whether only some of its clients' requests get this reservation.
    pub fn is_filtered(&self) -> bool {
        !self.tags.is_empty() || !self.not_tags.is_empty()
    }

    /// Whether a request with `tags` gets it.
    pub fn serves(&self, tags: &[&str]) -> bool {
        super::policy::tags_fit(&self.tags, &self.not_tags, tags)
    }

    /// Whether this is the host of a client with `mac` and lease key
    /// `client` (option 61 as `0, id...`, or `1, htype, chaddr`: one that is
    /// htype + chaddr keys as the hardware address does).
    pub fn is(&self, mac: Option<[u8; 6]>, client: &[u8]) -> bool {
        match &self.client_id {
            Some(id) => client.get(1..) == Some(&id[..]) && matches!(client.first(), Some(0 | 1)),
            None => mac.is_some_and(|m| m == self.mac || self.other_macs.contains(&m)),
        }
    }
}
