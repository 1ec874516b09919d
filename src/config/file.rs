//! The TOML file as written, mirrored by serde structs (first of the two steps:
//! parse, then `Config::validate`). Unknown keys are rejected so that a typo
//! never silently falls back to a default. Values that need checks beyond their
//! type keep their span, so that an error can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Directory whose files are served.
    pub root: Option<Spanned<String>>,
    /// Worker threads; 0 = one per core.
    pub workers: Option<Spanned<i64>>,
    /// I/O backend of the HTTP and TFTP workers.
    pub backend: Option<Backend>,
    /// `[http]`
    #[serde(default)]
    pub http: Http,
    /// `[tftp]`; TFTP is off unless this table (or `--tftp`) says where.
    pub tftp: Option<Tftp>,
    /// `[dhcp]`; DHCP is off unless this table (or `--interface`) says where.
    pub dhcp: Option<Dhcp>,
    /// `[dhcp6]`; DHCPv6 is off unless this table (or `--dhcp6-range`) asks.
    pub dhcp6: Option<Dhcp6>,
    /// `[store]`
    #[serde(default)]
    pub store: Store,
    /// `[log]`
    #[serde(default)]
    pub log: Log,
    /// `[boot]`: where the per-machine pages are served, the default profile.
    #[serde(default)]
    pub boot: BootPages,
    /// `[[profile]]`
    #[serde(default)]
    pub profile: Vec<Profile>,
    /// `[[machine]]`: the inventory.
    #[serde(default)]
    pub machine: Vec<Machine>,
    /// `[admin]`: the admin API's listeners.
    #[serde(default)]
    pub admin: Admin,
    /// `[[mount]]`: more directories, served under URL prefixes.
    #[serde(default)]
    pub mount: Vec<Mount>,
    /// `[fleet]`: the boot timelines.
    #[serde(default)]
    pub fleet: Fleet,
}

/// `[fleet]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Whether timelines are kept (default true).
    pub enabled: Option<bool>,
    /// Machines tracked.
    pub machines: Option<Spanned<i64>>,
    /// Boots kept per machine.
    pub boots: Option<Spanned<i64>>,
    /// Seconds from the kernel to the installer's DHCP before a machine is stuck.
    pub installer_secs: Option<Spanned<i64>>,
    /// Seconds from the installer's DHCP to its answers request.
    pub answers_secs: Option<Spanned<i64>>,
}

/// `[[mount]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// The URL prefix (`/images`; `/` adds the directory's files beside the root's).
    pub path: Spanned<String>,
    /// The directory.
    pub dir: Spanned<String>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// The Unix socket; "" turns it off.
    pub socket: Option<Spanned<String>>,
    /// A TCP address, off unless given; needs `token_file`.
    pub listen: Option<Spanned<String>>,
    /// The file holding the bearer token TCP clients must send.
    pub token_file: Option<Spanned<String>>,
    /// A TCP address serving `GET /metrics` alone, without a token.
    pub metrics_listen: Option<Spanned<String>>,
}

/// `[boot]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootPages {
    /// URL path of the per-machine iPXE script.
    pub script_path: Option<Spanned<String>>,
    /// URL path (and TFTP name) of the per-machine grub configuration.
    pub grub_path: Option<Spanned<String>>,
    /// URL path of the per-machine installer answers.
    pub config_path: Option<Spanned<String>>,
    /// Profile for machines no profile matches.
    pub default: Option<Spanned<String>>,
    /// `host[:port]` in generated URLs when a request has no `Host`.
    pub server: Option<Spanned<String>>,
    /// URL path prefix of installers' done URLs.
    pub done_path: Option<Spanned<String>>,
    /// The machines state file (the admin API's changes, install-once state).
    pub state_file: Option<Spanned<String>>,
    /// Serve boot media for this server at `/boot.iso`.
    pub media: Option<Spanned<bool>>,
}

/// `[[profile]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Unique name.
    pub name: Spanned<String>,
    /// Kernel: a served path or an absolute URL.
    pub kernel: Spanned<String>,
    /// Initrds: served paths or absolute URLs.
    #[serde(default)]
    pub initrd: Vec<Spanned<String>>,
    /// Kernel command line template.
    #[serde(default)]
    pub cmdline: String,
    /// The loader its machines run: `ipxe` (default) or `grub`.
    pub loader: Option<Spanned<String>>,
    /// Its loader's page template file (an iPXE script or a grub configuration).
    pub script: Option<Spanned<String>>,
    /// Installer answers (preseed, kickstart, cloud-init) template file.
    pub config: Option<Spanned<String>>,
    /// `[profile.match]`
    #[serde(default, rename = "match")]
    pub matches: Match,
    /// Template variables.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Install once, then boot local.
    #[serde(default)]
    pub once: bool,
    /// Local-boot script template file.
    pub local: Option<Spanned<String>>,
}

/// `[profile.match]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// MAC patterns.
    #[serde(default)]
    pub mac: Vec<Spanned<String>>,
    /// SMBIOS UUIDs.
    #[serde(default)]
    pub uuid: Vec<String>,
    /// iPXE `${buildarch}` values.
    #[serde(default)]
    pub arch: Vec<String>,
    /// iPXE `${platform}` values.
    #[serde(default)]
    pub platform: Vec<String>,
    /// Hostname patterns.
    #[serde(default)]
    pub hostname: Vec<String>,
    /// Labels that must all be equal.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[machine]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// MAC address.
    pub mac: Spanned<String>,
    /// Name given to its templates.
    pub hostname: Option<String>,
    /// Its profile, by name.
    pub profile: Option<Spanned<String>>,
    /// Labels for `[profile.match]`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Template variables over the profile's.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `install`, `local` or `always`.
    pub netboot: Option<Spanned<String>>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address and port to listen on.
    pub listen: Option<Spanned<String>>,
    /// Largest request head, bytes.
    pub max_head_bytes: Option<Spanned<i64>>,
    /// Most header fields in a request.
    pub max_headers: Option<Spanned<i64>>,
    /// Longest request target, bytes.
    pub max_target_bytes: Option<Spanned<i64>>,
    /// Keep-alive idle timeout, seconds.
    pub idle_secs: Option<Spanned<i64>>,
    /// Time allowed to send a whole request head, seconds.
    pub head_secs: Option<Spanned<i64>>,
    /// Time a response may make no progress, seconds.
    pub send_secs: Option<Spanned<i64>>,
    /// Open connections per worker.
    pub max_connections: Option<Spanned<i64>>,
    /// Microseconds a worker keeps polling after activity before it sleeps.
    pub busy_poll_us: Option<Spanned<i64>>,
    /// How the io_uring backend sends large bodies.
    pub body: Option<Body>,
    /// HTTPS: the certificate chain (PEM).
    pub tls_cert: Option<Spanned<String>>,
    /// HTTPS: the certificate's private key (PEM).
    pub tls_key: Option<Spanned<String>>,
    /// HTTPS listen address (default: the HTTP address, port 443).
    pub tls_listen: Option<Spanned<String>>,
}

/// `[tftp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tftp {
    /// Address and port to answer on (`ADDR` alone means port 69).
    pub listen: Option<Spanned<String>>,
    /// Answer every transfer from the listening port (clients behind NAT).
    pub single_port: Option<bool>,
    /// First retransmission timeout, seconds.
    pub timeout_secs: Option<Spanned<i64>>,
    /// Retransmissions of one window before a transfer is abandoned.
    pub retries: Option<Spanned<i64>>,
    /// Largest window granted.
    pub max_windowsize: Option<Spanned<i64>>,
    /// Live transfers per worker.
    pub max_transfers: Option<Spanned<i64>>,
    /// Live transfers per client address, per worker.
    pub max_per_client: Option<Spanned<i64>>,
    /// How the io_uring backend sends a window.
    pub send: Option<TftpSend>,
    /// Grant the blksize option (default true).
    pub blksize: Option<bool>,
    /// Look file names up in lower case (default false).
    pub lowercase: Option<bool>,
    /// `[[tftp.interface_root]]`: requests that reach an interface are
    /// served from its own directory.
    #[serde(default)]
    pub interface_root: Vec<InterfaceRoot>,
}

/// `[[tftp.interface_root]]` (dnsmasq's `tftp-root=DIR,INTERFACE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceRoot {
    /// The interface.
    pub interface: Spanned<String>,
    /// The directory its requests are served from (instead of the root).
    pub dir: Spanned<String>,
}

/// `[dhcp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    /// Interface to answer on, or a list of them.
    pub interface: Option<Spanned<toml::Value>>,
    /// `server` (owns addresses) or `proxy` (boot answers only).
    pub mode: Option<Spanned<String>>,
    /// NAK requests for unknown addresses on its subnets.
    pub authoritative: Option<bool>,
    /// The lease journal.
    pub lease_file: Option<Spanned<String>>,
    /// A dnsmasq lease file whose leases fill an empty journal at start.
    pub import_leases: Option<Spanned<String>>,
    /// Seconds an offered address is held for its client.
    pub offer_secs: Option<Spanned<i64>>,
    /// Seconds a declined address stays out of use.
    pub decline_secs: Option<Spanned<i64>>,
    /// Milliseconds to wait for an ICMP echo reply before first offering an
    /// address (conflict detection); 0 = no probe.
    pub probe_ms: Option<Spanned<i64>>,
    /// At most this share (percent) of a subnet's pool is held by offers.
    pub held_offers_percent: Option<Spanned<i64>>,
    /// Messages answered per MAC per second (0: no limit).
    pub answers_per_mac: Option<Spanned<i64>>,
    /// Append the built-in boot rules after `[[dhcp.boot]]`.
    pub default_rules: Option<bool>,
    /// Send IPv6 router advertisements saying "no router" on the interface.
    pub router_advertisement: Option<bool>,
    /// The built-in iPXE rule sends option 175.176 (skip the ProxyDHCP wait).
    pub no_pxedhcp: Option<bool>,
    /// The built-in UEFI PXE rule names snponly.efi when it is served.
    pub uefi_snponly: Option<bool>,
    /// `[dhcp.balance]`: several servers share the clients (RFC 3074).
    pub balance: Option<Balance>,
    /// `[[dhcp.subnet]]`
    #[serde(default)]
    pub subnet: Vec<Subnet>,
    /// `[[dhcp.host]]`
    #[serde(default)]
    pub host: Vec<Host>,
    /// `[[dhcp.boot]]`
    #[serde(default)]
    pub boot: Vec<Boot>,
    /// `[[dhcp.option]]`: options sent by tag.
    #[serde(default)]
    pub option: Vec<TaggedOption>,
    /// `always` (every configured option) or `asked` (only those in the
    /// client's option 55, unless `force`: dnsmasq's way).
    pub send_options: Option<Spanned<String>>,
    /// `[[dhcp.pxe_service]]`: PXE boot menu items.
    #[serde(default)]
    pub pxe_service: Vec<PxeService>,
    /// `[dhcp.pxe_prompt]`: the PXE menu's prompt.
    pub pxe_prompt: Option<PxePrompt>,
}

/// `[dhcp6]`: DHCPv6 on the `[dhcp]` interfaces, leases in its journal.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhcp6 {
    /// Answer a SOLICIT that asks for Rapid Commit with a binding at once.
    pub rapid_commit: Option<bool>,
    /// Option 7 in ADVERTISE (255: clients take this server at once).
    pub preference: Option<Spanned<i64>>,
    /// Seconds an advertised address is held for its client.
    pub offer_secs: Option<Spanned<i64>>,
    /// Seconds a declined address stays out of use.
    pub decline_secs: Option<Spanned<i64>>,
    /// At most this share (percent) of a pool is held by advertisements.
    pub held_offers_percent: Option<Spanned<i64>>,
    /// Router lifetime in the router advertisements, seconds (0: not a
    /// default router).
    pub router_lifetime_secs: Option<Spanned<i64>>,
    /// `[[dhcp6.subnet]]`
    #[serde(default)]
    pub subnet: Vec<Subnet6>,
    /// `[[dhcp6.host]]`
    #[serde(default)]
    pub host: Vec<Host6>,
}

/// `[[dhcp6.subnet]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet6 {
    /// `PREFIX/LEN`; the interface's own prefix when left out.
    pub prefix: Option<Spanned<String>>,
    /// `FIRST-LAST` address ranges; none: stateless (no addresses given).
    #[serde(default)]
    pub ranges: Vec<Spanned<String>>,
    /// Preferred lifetime, seconds.
    pub preferred_secs: Option<Spanned<i64>>,
    /// Valid lifetime, seconds.
    pub valid_secs: Option<Spanned<i64>>,
    /// Name servers (option 23).
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    /// Search domains (option 24).
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `[[dhcp6.host]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host6 {
    /// MAC address (from the relay's option 79 or the client's DUID).
    pub mac: Option<Spanned<String>>,
    /// The client's DUID in hex.
    pub duid: Option<Spanned<String>>,
    /// Fixed address.
    pub ip: Option<Spanned<String>>,
    /// Host name, kept with the lease.
    pub hostname: Option<String>,
}

/// `[[dhcp.pxe_service]]`: one PXE menu item (dnsmasq's `pxe-service`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PxeService {
    /// The client architecture it is shown to: a PXE name (`x86PC`,
    /// `x86-64_EFI`, `BC_EFI`, ...) or an option 93 number.
    pub arch: Spanned<toml::Value>,
    /// The menu text.
    pub text: String,
    /// The file a boot server request for it gets.
    pub file: Option<String>,
    /// A boot server type (instead of a file); neither: boot from disk.
    #[serde(rename = "type")]
    pub boot_type: Option<Spanned<i64>>,
    /// The boot server's address, when not this server.
    pub server: Option<Spanned<String>>,
    /// Tags required.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Tags forbidden.
    #[serde(default)]
    pub not_tag: Vec<String>,
}

/// `[dhcp.pxe_prompt]` (dnsmasq's `pxe-prompt`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PxePrompt {
    /// The prompt's text.
    pub text: String,
    /// Seconds before the first item boots; 255 (the default) waits.
    pub timeout: Option<Spanned<i64>>,
    /// Tags required.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Tags forbidden.
    #[serde(default)]
    pub not_tag: Vec<String>,
}

/// `[[dhcp.option]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggedOption {
    /// Option number, 1 to 254.
    pub code: Spanned<i64>,
    /// A text value.
    pub text: Option<String>,
    /// A list of IPv4 addresses (0.0.0.0: the server's own).
    pub ip: Option<Vec<String>>,
    /// Raw bytes in hex.
    pub hex: Option<String>,
    /// Tags required.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Tags forbidden.
    #[serde(default)]
    pub not_tag: Vec<String>,
    /// Sent even when not asked for.
    #[serde(default)]
    pub force: bool,
}

/// One option a `[[dhcp.boot]]` rule requires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionTest {
    /// Its number (inside option 124 with `enterprise`).
    pub code: Spanned<i64>,
    /// Hex bytes, `*` for any byte, matched at the option's start.
    pub hex: Option<String>,
    /// Text found anywhere in it.
    pub text: Option<String>,
    /// A number equal to one of its elements of `width` bytes.
    pub number: Option<i64>,
    /// The element width for `number` (1, 2 or 4).
    pub width: Option<i64>,
    /// V-I vendor class (option 124) data of this enterprise.
    pub enterprise: Option<i64>,
}

/// `[[dhcp.subnet]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// `ADDR/PREFIX`; the interface's own network when left out.
    pub network: Option<Spanned<String>>,
    /// `FIRST-LAST` address ranges.
    #[serde(default)]
    pub ranges: Vec<Spanned<String>>,
    /// Addresses never handed out.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Lease time, seconds.
    pub lease_secs: Option<Spanned<i64>>,
    /// Default gateway.
    pub router: Option<Spanned<String>>,
    /// Name servers.
    pub dns: Option<Vec<Spanned<String>>>,
    /// Domain name.
    pub domain: Option<String>,
    /// NTP servers.
    #[serde(default)]
    pub ntp: Vec<Spanned<String>>,
    /// Interface MTU for clients.
    pub mtu: Option<Spanned<i64>>,
    /// Raw options.
    #[serde(default)]
    pub options: Vec<RawOption>,
    /// Only clients with all these tags get addresses here.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Clients with any of these tags do not.
    #[serde(default)]
    pub not_tag: Vec<String>,
    /// Tags its clients get, for rules and options.
    #[serde(default)]
    pub set_tag: Vec<String>,
}

/// `[[dhcp.host]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// MAC address.
    pub mac: Option<Spanned<String>>,
    /// The machine's other NICs: one address for whichever asks.
    #[serde(default)]
    pub other_macs: Vec<Spanned<String>>,
    /// DHCP client identifier (option 61) in hex, instead of the MAC.
    pub client_id: Option<Spanned<String>>,
    /// Fixed address.
    pub ip: Option<Spanned<String>>,
    /// Its own lease time, seconds (dnsmasq's per-host lease).
    pub lease_secs: Option<Spanned<i64>>,
    /// Host name sent as option 12.
    pub hostname: Option<String>,
    /// Key its leases by the MAC, whatever client id it sends.
    #[serde(default)]
    pub ignore_client_id: bool,
    /// The reservation holds only for clients with these tags.
    #[serde(default)]
    pub tag: Vec<String>,
    /// ...and none of these.
    #[serde(default)]
    pub not_tag: Vec<String>,
    /// Raw options.
    #[serde(default)]
    pub options: Vec<RawOption>,
}

/// `[[dhcp.boot]]`: match keys, then tags and the action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// Name for logs.
    pub name: Option<String>,
    /// Client architectures (option 93).
    #[serde(default)]
    pub arch: Vec<Spanned<i64>>,
    /// Vendor class prefix.
    pub vendor: Option<String>,
    /// User class item.
    pub user_class: Option<String>,
    /// iPXE or not.
    pub ipxe: Option<bool>,
    /// MAC prefix, `52:54:00` or a whole MAC.
    pub mac: Option<Spanned<String>>,
    /// Client UUID.
    pub uuid: Option<Spanned<String>>,
    /// Relay agent address (giaddr).
    pub relay: Option<Spanned<String>>,
    /// Relay circuit id (text).
    pub circuit_id: Option<String>,
    /// Relay remote id (text).
    pub remote_id: Option<String>,
    /// Vendor class containing this text.
    pub vendor_contains: Option<String>,
    /// A user class containing this text.
    pub user_class_contains: Option<String>,
    /// Options the request carries.
    #[serde(default)]
    pub has_option: Vec<OptionTest>,
    /// The subnet the client is answered in, `ADDR/PREFIX`.
    pub subnet: Option<Spanned<String>>,
    /// Whether the client has a `[[dhcp.host]]` reservation.
    pub known: Option<bool>,
    /// The loader of the client's profile: `ipxe` or `grub`.
    pub loader: Option<Spanned<String>>,
    /// Tags required.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Tags forbidden.
    #[serde(default)]
    pub not_tag: Vec<String>,
    /// Tags set.
    #[serde(default)]
    pub set_tag: Vec<String>,
    /// Boot file name or URL.
    pub file: Option<String>,
    /// Server host name (sname) in the reply.
    pub server_name: Option<String>,
    /// Answer nothing to the clients it matches.
    pub ignore: Option<bool>,
    /// Next server for TFTP.
    pub next_server: Option<Spanned<String>>,
    /// Send iPXE 175.176.
    pub no_pxedhcp: Option<bool>,
    /// Raw options.
    #[serde(default)]
    pub options: Vec<RawOption>,
}

/// A raw option: `code` and exactly one of `text`, `ip`, `hex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    /// Option number, 1 to 254.
    pub code: Spanned<i64>,
    /// A text value.
    pub text: Option<String>,
    /// A list of IPv4 addresses.
    pub ip: Option<Vec<String>>,
    /// Raw bytes in hex.
    pub hex: Option<String>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Cap on the bytes loaded from the root, MiB.
    pub max_mib: Option<Spanned<i64>>,
    /// Lock boot files in memory.
    pub mlock: Option<bool>,
    /// Where DHCP leases live: `journal` (the default) or `postgres`.
    pub backend: Option<Spanned<String>>,
    /// The PostgreSQL connection URL (`backend = "postgres"`).
    pub url: Option<Spanned<String>>,
    /// A file whose first line is the database password.
    pub password_file: Option<Spanned<String>>,
    /// This server's name in the shared store (default: the host name).
    pub server_name: Option<Spanned<String>>,
}

/// `[dhcp.balance]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balance {
    /// How many servers share the clients.
    pub servers: Spanned<i64>,
    /// This server's place among them, from 0.
    pub index: Spanned<i64>,
    /// A client whose `secs` reaches this is answered by every server.
    pub wait_secs: Option<Spanned<i64>>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: Option<LogFormat>,
    /// One line per HTTP request.
    pub access: Option<bool>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: Option<Level>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which I/O backend drives the HTTP and TFTP workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// io_uring when the kernel allows it (see `io::uring::probe`), else mio.
    #[default]
    Auto,
    /// epoll via mio.
    Mio,
    /// io_uring (a worker whose ring cannot be set up falls back to mio).
    Uring,
}

/// How the io_uring HTTP worker sends a body larger than what rides with the
/// head (the mio worker always uses sendfile). bench/backends measures them:
/// on this project's machines (loopback and veth, where SEND_ZC copies too)
/// `send` moved the most bytes in every cell at a CPU cost per GB within the
/// others' range, so it is the default; on a real NIC the zero-copy paths
/// skip the copy that is a third of `send`'s profile: measure there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Body {
    /// Splice the memfd into a per-connection pipe, then the pipe into the
    /// socket (linked operations): the kernel moves page references.
    Splice,
    /// SEND_ZC from the file's mapping: the socket references the pages, and
    /// the mapping is held until the kernel's notification says it let go.
    SendZc,
    /// SEND from the file's mapping: the kernel copies into the socket.
    #[default]
    Send,
}

/// How the io_uring TFTP worker sends a window (the mio worker always uses
/// a copying sendmsg). bench/backends measures both: on loopback and veth the
/// kernel copies SENDMSG_ZC's pages too, so only a NIC can show its saving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TftpSend {
    /// SENDMSG with UDP_SEGMENT over the file's mapping: the kernel copies
    /// the blocks into its buffers, up to 44 blocks of 1,468 bytes per call.
    #[default]
    Sendmsg,
    /// SENDMSG_ZC with UDP_SEGMENT: the socket references the mapping's pages
    /// until the kernel's notification. One call takes only as many blocks as
    /// fit the kernel's fragment limit (`net.core.max_skb_frags`: 7 blocks of
    /// 1,468 bytes at its default of 17), so a large window takes several.
    SendmsgZc,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Failures the operator must act on.
    Error,
    /// Degraded but serving.
    Warn,
    /// Lifecycle and access lines.
    #[default]
    Info,
    /// Per-request decisions.
    Debug,
    /// Everything.
    Trace,
}
