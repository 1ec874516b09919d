//! Boot profiles: which kernel, initrd, command line and installer answers each
//! machine gets, rendered per machine from Jinja templates (minijinja).
//!
//! The flow: DHCP points iPXE at the script path (`/boot.ipxe`). A request there
//! without a `mac` gets a one-line script that chains back with iPXE's own
//! settings in the query (MAC, UUID, arch, platform, hostname), so the second
//! request says who the machine is whichever DHCP server sent it here. That
//! request is matched to a profile (the inventory's `profile`, else the first
//! profile whose `match` fits, else the default) and answered with the profile's
//! script; a machine no profile takes gets a script that says so and exits to the
//! firmware's next boot device. The script's command line carries `config_url`,
//! where the installer later fetches the profile's preseed / kickstart /
//! cloud-init, rendered for the same machine.
//!
//! Every template is compiled, and rendered once for each machine of the
//! inventory and once for an unknown machine, when the configuration is loaded:
//! template mistakes stop `rackboot check` and the start, not a boot.

pub(crate) mod facts;
pub mod grub;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

pub use facts::{glob, Facts, Mac};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::machines::{Book, Netboot, Overlay, Phase, Seen};

/// The built-in script: the profile's kernel with its command line, its initrds,
/// boot. `initrd=NAME` lets an EFI kernel find each initrd iPXE loaded.
pub const DEFAULT_SCRIPT: &str = "#!ipxe\n\
    echo rackboot: {{ mac }} boots profile {{ profile }}\n\
    kernel {{ kernel_url }}{% for n in initrd_names %} initrd={{ n }}{% endfor %} {{ cmdline }}\n\
    {% for u in initrd_urls %}initrd {{ u }}\n{% endfor %}\
    boot\n";

/// The built-in local-boot script, for a machine whose `netboot` is `local`:
/// iPXE's `exit` returns to the firmware, which tries its next boot device
/// (UEFI's boot manager its next entry; a BIOS its next device after the
/// network ROM).
pub const DEFAULT_LOCAL: &str = "#!ipxe\n\
    echo rackboot: {{ mac }} is installed (netboot local): booting the next device\n\
    exit\n";

/// Which machines a profile takes: every key given must fit (any item of a list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// MAC patterns (`52:54:00:*`).
    pub mac: Vec<String>,
    /// SMBIOS UUIDs.
    pub uuid: Vec<String>,
    /// iPXE build architectures (`x86_64`, `i386`, `arm64`).
    pub arch: Vec<String>,
    /// iPXE platforms (`pcbios`, `efi`).
    pub platform: Vec<String>,
    /// Hostname patterns (`web-*`).
    pub hostname: Vec<String>,
    /// Inventory labels that must all be equal.
    pub labels: BTreeMap<String, String>,
}

impl Match {
    /// Whether no key is given (such a profile takes only machines named to it).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn fits(&self, f: &Facts, labels: &BTreeMap<String, String>) -> bool {
        let mac = f.mac.map(|m| m.to_string()).unwrap_or_default();
        let any =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|p| glob(p, value));
        !self.is_empty()
            && any(&self.mac, &mac)
            && any(&self.uuid, &f.uuid)
            && any(&self.arch, &f.arch)
            && any(&self.platform, &f.platform)
            && any(&self.hostname, &f.hostname)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The boot loader a profile's machines run after the firmware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Loader {
    /// iPXE: the boot script over HTTP.
    #[default]
    Ipxe,
    /// shim and grub, signed (Secure Boot): a grub configuration over TFTP.
    Grub,
}

impl Loader {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Loader::Ipxe => "ipxe",
            Loader::Grub => "grub",
        }
    }

    /// The loader named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ipxe" => Some(Loader::Ipxe),
            "grub" => Some(Loader::Grub),
            _ => None,
        }
    }
}

/// One profile, its templates as source text.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Name, unique.
    pub name: String,
    /// The loader its machines run: which of its pages `script` and `local`
    /// replace, and what DHCP hands its UEFI PXE machines.
    pub loader: Loader,
    /// Kernel: a path served here (`/d-i/linux`) or an absolute URL.
    pub kernel: String,
    /// Initrds, same forms.
    pub initrds: Vec<String>,
    /// Kernel command line template.
    pub cmdline: String,
    /// Its loader's page template (an iPXE script, or a grub configuration);
    /// `None` for [`DEFAULT_SCRIPT`] or [`grub::DEFAULT`].
    pub script: Option<String>,
    /// Installer answers template (preseed, kickstart, cloud-init), served at the
    /// config path; `None` serves nothing there for this profile.
    pub config: Option<String>,
    /// Which machines it takes.
    pub matches: Match,
    /// Variables for its templates (`vars.NAME`).
    pub vars: BTreeMap<String, String>,
    /// Install once: its machines boot `local` once the installer reported
    /// done (their `netboot` starts as `install`, else `always`).
    pub once: bool,
    /// Its loader's local-boot page template; `None` for [`DEFAULT_LOCAL`]
    /// or [`grub::DEFAULT_LOCAL`].
    pub local: Option<String>,
}

/// One machine of the inventory.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Its MAC.
    pub mac: Mac,
    /// Its name (wins over what the machine says).
    pub hostname: Option<String>,
    /// Its profile, by name (wins over `match`).
    pub profile: Option<String>,
    /// Labels that profiles match on.
    pub labels: BTreeMap<String, String>,
    /// Variables, over the profile's.
    pub vars: BTreeMap<String, String>,
    /// What its boot script does; `None` follows its profile's `once`.
    pub netboot: Option<Netboot>,
}

impl Machine {
    /// This machine with `overlay`'s fields over its own (labels and vars
    /// key by key).
    pub fn overlaid(mut self, overlay: &Overlay) -> Self {
        if let Some(h) = &overlay.hostname {
            self.hostname = Some(h.clone());
        }
        if let Some(p) = &overlay.profile {
            self.profile = Some(p.clone());
        }
        self.labels.extend(overlay.labels.clone());
        self.vars.extend(overlay.vars.clone());
        if let Some(n) = overlay.netboot {
            self.netboot = Some(n);
        }
        self
    }
}

/// Where the rendered pages are served.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The boot script (`/boot.ipxe`).
    pub script: String,
    /// The grub page (`/boot.grub`), over TFTP and HTTP.
    pub grub: String,
    /// The installer's answers (`/config`).
    pub config: String,
    /// Where installers report done (`/done`, then `/MAC/ROUND/TAG`).
    pub done: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            script: "/boot.ipxe".into(),
            grub: "/boot.grub".into(),
            config: "/config".into(),
            done: "/done".into(),
        }
    }
}

/// A template that did not compile or render.
#[derive(Debug, thiserror::Error)]
#[error("profile `{profile}`: {what}: {message}")]
pub struct Error {
    /// The profile.
    pub profile: String,
    /// Which template (`script`, `cmdline`, `config`) and, when rendering, for
    /// which machine.
    pub what: String,
    /// minijinja's message, with the template line.
    pub message: String,
}

/// A rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status: 200, or 400/404/500 with a one-line text body.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// The request facts the HTTP engine adds to the query's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// `Host` as sent (the server's name in the client's URLs).
    pub host: Option<&'a str>,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// The wall time (unix seconds), for what machines were last seen doing.
    pub unix_secs: u64,
    /// The request came over HTTPS: the page's URLs are `https://` too.
    pub tls: bool,
    /// The port the request came in on, for a client known to leave it out
    /// of `Host` (grub); 0 otherwise.
    pub port: u16,
}

/// `host` as the page names the server: with `port` (the one a grub request
/// came in on) when `Host` leaves it out and it is not the scheme's own
/// (grub sends `Host: 10.0.0.1` to port 8080).
fn with_port(host: &str, port: u16, tls: bool) -> String {
    let has_port = host
        .rsplit_once(']')
        .map_or(host, |(_, rest)| rest)
        .contains(':');
    let default = if tls { 443 } else { 80 };
    if has_port || port == 0 || port == default {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// The profiles, the inventory and the compiled templates: shared read-only by
/// every HTTP worker, with the machines' book (the admin API's changes and
/// install-once state), which outlives every generation.
#[derive(Debug, Clone)]
pub struct Profiles {
    paths: Paths,
    profiles: Vec<Profile>,
    default: Option<usize>,
    machines: HashMap<Mac, Machine>,
    /// `host[:port]` for URLs when a request has no usable `Host`.
    fallback_host: String,
    env: Environment<'static>,
    book: Arc<Book>,
}

#[derive(Serialize)]
struct Context<'a> {
    mac: String,
    mac_hyphens: String,
    ip: String,
    hostname: &'a str,
    uuid: &'a str,
    arch: &'a str,
    platform: &'a str,
    labels: &'a BTreeMap<String, String>,
    vars: BTreeMap<&'a str, &'a str>,
    profile: &'a str,
    server: &'a str,
    base_url: String,
    kernel_url: String,
    initrd_urls: Vec<String>,
    initrd_names: Vec<&'a str>,
    grub_kernel: String,
    grub_initrds: Vec<String>,
    grub_cmdline: String,
    config_url: String,
    done_url: String,
    netboot: &'static str,
    cmdline: String,
}

const TEXT: &str = "text/plain; charset=utf-8";
const NO_LABELS: &BTreeMap<String, String> = &BTreeMap::new();

impl Profiles {
    /// Compiles every template and renders each for every machine of the
    /// inventory and for an unknown one.
    ///
    /// # Errors
    /// The first template that does not compile or render, naming the profile,
    /// the template and (when rendering) the machine.
    pub fn new(
        paths: Paths,
        profiles: Vec<Profile>,
        default: Option<usize>,
        machines: Vec<Machine>,
        fallback_host: String,
    ) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        for p in &profiles {
            let fail = |what: &str, e: minijinja::Error| Error {
                profile: p.name.clone(),
                what: what.into(),
                message: describe(&e),
            };
            let own = |t: &Option<String>, loader: Loader, builtin: &str| match t {
                Some(t) if p.loader == loader => t.clone(),
                _ => builtin.to_owned(),
            };
            let pages = [
                ("script", own(&p.script, Loader::Ipxe, DEFAULT_SCRIPT)),
                ("local", own(&p.local, Loader::Ipxe, DEFAULT_LOCAL)),
                ("grub", own(&p.script, Loader::Grub, grub::DEFAULT)),
                (
                    "grub-local",
                    own(&p.local, Loader::Grub, grub::DEFAULT_LOCAL),
                ),
            ];
            for (what, text) in pages {
                env.add_template_owned(key(&p.name, what), text)
                    .map_err(|e| fail(what, e))?;
            }
            env.add_template_owned(key(&p.name, "cmdline"), p.cmdline.clone())
                .map_err(|e| fail("cmdline", e))?;
            if let Some(config) = &p.config {
                env.add_template_owned(key(&p.name, "config"), config.clone())
                    .map_err(|e| fail("config", e))?;
            }
        }
        let machines = machines.into_iter().map(|m| (m.mac, m)).collect();
        let this = Self {
            paths,
            profiles,
            default,
            machines,
            fallback_host,
            env,
            book: Arc::new(Book::memory(
                "this server keeps no machines state file, so changes cannot be made durable",
            )),
        };
        this.dry_run()?;
        Ok(this)
    }

    /// These profiles with `book`'s machines: every API record checked
    /// against them (its pinned profile exists, every template renders for
    /// it) as the file's inventory is.
    ///
    /// # Errors
    /// A record names a profile these do not have, or a template fails for
    /// it: the text names the machine and the fix.
    pub fn with_book(&self, book: Arc<Book>) -> Result<Self, String> {
        let mut next = self.clone();
        next.book = book;
        for (mac, record) in next.book.records() {
            if let Some(overlay) = &record.machine {
                next.check_overlay(mac, overlay).map_err(|e| {
                    format!(
                        "machine {mac} (set through the admin API): {e}; change it with \
                         PATCH /api/v1/machines/{mac} or DELETE it first"
                    )
                })?;
            }
        }
        Ok(next)
    }

    /// The machines' book.
    pub fn book(&self) -> &Arc<Book> {
        &self.book
    }

    /// Whether `overlay` may be set for `mac`: its fields fit, its profile
    /// exists and every template renders for the machine it makes.
    ///
    /// # Errors
    /// What does not fit, and the fix.
    pub fn check_overlay(&self, mac: Mac, overlay: &Overlay) -> Result<(), String> {
        overlay.check()?;
        if let Some(p) = &overlay.profile {
            if !self.profiles.iter().any(|x| &x.name == p) {
                return Err(format!(
                    "`profile` is {p:?}, which no [[profile]] has: name one of {}",
                    self.profiles
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let machine = self
            .machines
            .get(&mac)
            .cloned()
            .unwrap_or(Machine {
                mac,
                ..Machine::default()
            })
            .overlaid(overlay);
        let facts = Facts {
            mac: Some(mac),
            ..dry_run_facts()
        };
        if let Some(profile) = self.choose(&facts, Some(&machine)) {
            self.render_every(profile, &facts, &machine)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `mac`'s inventory entry: the file's, with the API's changes over it.
    pub fn machine(&self, mac: &Mac) -> Option<Machine> {
        let file = self.machines.get(mac).cloned();
        match (file, self.book.overlay(mac)) {
            (Some(m), Some(o)) => Some(m.overlaid(&o)),
            (Some(m), None) => Some(m),
            (None, Some(o)) => Some(
                Machine {
                    mac: *mac,
                    ..Machine::default()
                }
                .overlaid(&o),
            ),
            (None, None) => None,
        }
    }

    /// The MACs of the configuration file's inventory.
    pub fn file_machines(&self) -> impl Iterator<Item = &Mac> {
        self.machines.keys()
    }

    /// `mac`'s entry in the configuration file's inventory.
    pub fn file_machine(&self, mac: &Mac) -> Option<&Machine> {
        self.machines.get(mac)
    }

    /// Whether `mac` is in the configuration file's inventory.
    pub fn in_file(&self, mac: &Mac) -> bool {
        self.machines.contains_key(mac)
    }

    /// What `machine`'s boot script does under `profile`.
    pub fn netboot(machine: Option<&Machine>, profile: Option<&Profile>) -> Netboot {
        machine
            .and_then(|m| m.netboot)
            .unwrap_or(if profile.is_some_and(|p| p.once) {
                Netboot::Install
            } else {
                Netboot::Always
            })
    }

    /// The done URL of `mac` for the book's current round, on `server`.
    fn done_url(&self, base_url: &str, mac: &Mac) -> String {
        let round = self.book.record(mac).map_or(0, |r| r.round);
        format!(
            "{base_url}{}/{}/{round}/{}",
            self.paths.done,
            mac.hyphens(),
            self.book.done_tag(mac, round)
        )
    }

    /// Where the pages are served.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Whether `path` is one of the pages rendered per machine.
    pub fn renders(&self, path: &str) -> bool {
        path == self.paths.script
            || path == self.paths.grub
            || path == self.paths.config
            || self.done_path(path).is_some()
    }

    /// Whether any profile's machines run grub.
    pub fn any_grub(&self) -> bool {
        self.profiles.iter().any(|p| p.loader == Loader::Grub)
    }

    /// The loader of the profile `facts` (a DHCP request's) would get.
    pub fn loader_for(&self, facts: &Facts) -> Loader {
        let machine = facts.mac.and_then(|m| self.machine(&m));
        self.choose(facts, machine.as_ref())
            .map_or(Loader::Ipxe, |p| p.loader)
    }

    /// What follows the done prefix in `path`, if it is a done URL.
    fn done_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(self.paths.done.as_str())?
            .strip_prefix('/')
    }

    /// The profiles, in match order.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The default profile's name.
    pub fn default_name(&self) -> Option<&str> {
        self.default
            .and_then(|i| self.profiles.get(i))
            .map(|p| p.name.as_str())
    }

    /// Number of machines in the configuration file's inventory.
    pub fn machines(&self) -> usize {
        self.machines.len()
    }

    /// `GET`/`POST` of a done URL (`rest` follows the prefix): flips the
    /// machine to `local`, durably, when it was installing.
    fn done(&self, rest: &str, at: u64) -> Page {
        let mut parts = rest.split('/');
        let (Some(mac), Some(round), Some(tag), None) = (
            parts.next().and_then(Mac::parse),
            parts.next().and_then(|r| r.parse::<u32>().ok()),
            parts.next(),
            parts.next(),
        ) else {
            return text(404, "not a done URL");
        };
        if !self.book.tag_fits(&mac, round, tag) {
            tracing::warn!(%mac, round, "boot: a done URL with a wrong signature");
            return text(404, "not a done URL");
        }
        let machine = self.machine(&mac);
        let facts = self.facts_seen(mac);
        let profile = self.choose(&facts, machine.as_ref());
        let before = Self::netboot(machine.as_ref(), profile);
        let changed = self.book.change(mac, |r| {
            if r.round != round {
                return Err("stale".into());
            }
            r.done_at = Some(at);
            if before == Netboot::Install {
                r.machine.get_or_insert_with(Overlay::default).netboot = Some(Netboot::Local);
            }
            Ok(())
        });
        match changed {
            Ok(_) => {
                self.book.saw_phase(&mac, Phase::Done, at);
                self.book
                    .rendered(mac, None, crate::fleet::PageKind::Done, None, None);
                let said = if before == Netboot::Install {
                    "netboot is now local: its next boot is from its disk"
                } else {
                    "netboot stays as it is"
                };
                tracing::info!(%mac, netboot = before.name(), "boot: the installer reported done; {said}");
                text(200, &format!("rackboot: {mac} done; {said}"))
            }
            Err(e) if e == "stale" => text(
                410,
                "this done URL is from an earlier install round of this machine",
            ),
            Err(e) => {
                tracing::error!(%mac, error = %e, "boot: the installer reported done, but it could not be kept");
                text(503, &format!("rackboot: cannot record done: {e}"))
            }
        }
    }

    /// `mac`'s facts as it last gave them (for choosing its profile outside a
    /// script request).
    pub fn facts_seen(&self, mac: Mac) -> Facts {
        let seen = self.book.seen(&mac).unwrap_or_default();
        Facts {
            mac: Some(mac),
            uuid: seen.uuid,
            arch: seen.arch,
            platform: seen.platform,
            hostname: seen.hostname,
        }
    }

    /// The page for `path` (decoded) and `query` (raw, without `?`), or `None`
    /// when `path` is not one of the profile pages.
    pub fn answer(&self, path: &str, query: &str, origin: Origin<'_>) -> Option<Page> {
        if !self.renders(path) {
            return None;
        }
        if let Some(rest) = self.done_path(path) {
            return Some(self.done(rest, origin.unix_secs));
        }
        let grub = path == self.paths.grub;
        let script = grub || path == self.paths.script;
        let facts = Facts::from_query(query);
        let Some(mac) = facts.mac else {
            return Some(if grub {
                text(
                    400,
                    "a grub request names its machine: ?mac=52:54:00:12:34:56 (the grub.cfg \
                     this server gives grub asks so)",
                )
            } else if script {
                self.chain()
            } else {
                text(
                    400,
                    "a config request names its machine: ?mac=52-54-00-12-34-56",
                )
            });
        };
        let merged = self.machine(&mac);
        let machine = merged.as_ref();
        let Some(profile) = self.choose(&facts, machine) else {
            tracing::info!(%mac, arch = %facts.arch, platform = %facts.platform, "boot: no profile takes this machine");
            return Some(if script {
                let page = nothing_to_boot(&facts, grub);
                let kind = crate::fleet::PageKind::Script;
                self.book
                    .rendered(mac, origin.peer, kind, Some(&page.body), None);
                page
            } else {
                text(404, "no profile takes this machine")
            });
        };
        let server = origin
            .host
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .map_or_else(
                || self.fallback_host.clone(),
                |h| with_port(h, origin.port, origin.tls),
            );
        let server = server.as_str();
        let netboot = Self::netboot(machine, Some(profile));
        let (what, phase) = match (script, grub, netboot) {
            (true, false, Netboot::Local) => ("local", Phase::Local),
            (true, true, Netboot::Local) => ("grub-local", Phase::Local),
            (true, false, _) => ("script", Phase::Script),
            (true, true, _) => ("grub", Phase::Script),
            (false, _, _) => ("config", Phase::Config),
        };
        if script {
            self.book.saw(
                mac,
                Seen {
                    uuid: facts.uuid.clone(),
                    arch: facts.arch.clone(),
                    platform: facts.platform.clone(),
                    hostname: facts.hostname.clone(),
                    ip: origin.peer,
                    profile: profile.name.clone(),
                    phase: Some(phase),
                    at: origin.unix_secs,
                },
            );
        } else {
            self.book.saw_phase(&mac, phase, origin.unix_secs);
        }
        if !script && profile.config.is_none() {
            return Some(text(404, "this machine's profile has no config template"));
        }
        let kind = match phase {
            Phase::Local => crate::fleet::PageKind::Local,
            Phase::Config => crate::fleet::PageKind::Config,
            _ => crate::fleet::PageKind::Script,
        };
        let scheme = if origin.tls { "https" } else { "http" };
        let rendered = self.render(
            profile,
            what,
            &facts,
            machine,
            (scheme, server),
            origin.peer,
        );
        match &rendered {
            Ok(body) => {
                let body = script.then_some(body.as_str());
                self.book.rendered(mac, origin.peer, kind, body, None);
            }
            Err(e) => {
                let e = describe(e);
                self.book.rendered(mac, origin.peer, kind, None, Some(&e));
            }
        }
        match rendered {
            Ok(body) => {
                tracing::info!(%mac, profile = %profile.name, page = what, netboot = netboot.name(), "boot: rendered");
                Some(Page {
                    status: 200,
                    content_type: TEXT,
                    body,
                })
            }
            Err(e) => {
                tracing::warn!(%mac, profile = %profile.name, page = what, error = %e, "boot: template failed");
                Some(if script {
                    echo_exit(
                        &format!(
                            "rackboot: profile {} failed for this machine: see the server log",
                            profile.name
                        ),
                        grub,
                    )
                } else {
                    text(
                        500,
                        "the profile's config template failed: see the server log",
                    )
                })
            }
        }
    }

    /// The profile for a machine: its inventory entry's, else the first whose
    /// `match` fits, else the default.
    pub fn choose(&self, facts: &Facts, machine: Option<&Machine>) -> Option<&Profile> {
        if let Some(name) = machine.and_then(|m| m.profile.as_deref()) {
            return self.profiles.iter().find(|p| p.name == name);
        }
        let mut facts = facts.clone();
        if let Some(h) = machine.and_then(|m| m.hostname.as_ref()) {
            facts.hostname.clone_from(h);
        }
        let labels = machine.map_or(NO_LABELS, |m| &m.labels);
        self.profiles
            .iter()
            .find(|p| p.matches.fits(&facts, labels))
            .or(self.default.and_then(|i| self.profiles.get(i)))
    }

    fn render(
        &self,
        profile: &Profile,
        what: &str,
        facts: &Facts,
        machine: Option<&Machine>,
        (scheme, server): (&str, &str),
        peer: Option<IpAddr>,
    ) -> Result<String, minijinja::Error> {
        let base_url = format!("{scheme}://{server}");
        let url = |s: &String| {
            if s.starts_with("http://") || s.starts_with("https://") {
                s.clone()
            } else {
                format!("{base_url}{s}")
            }
        };
        let mut vars: BTreeMap<&str, &str> = profile
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(m) = machine {
            vars.extend(m.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mac = facts.mac.unwrap_or_default();
        let mut ctx = Context {
            mac: mac.to_string(),
            mac_hyphens: mac.hyphens(),
            ip: peer.map(|p| p.to_string()).unwrap_or_default(),
            hostname: machine
                .and_then(|m| m.hostname.as_deref())
                .unwrap_or(&facts.hostname),
            uuid: &facts.uuid,
            arch: &facts.arch,
            platform: &facts.platform,
            labels: machine.map_or(NO_LABELS, |m| &m.labels),
            vars,
            profile: &profile.name,
            server,
            done_url: self.done_url(&base_url, &mac),
            netboot: Self::netboot(machine, Some(profile)).name(),
            config_url: format!("{base_url}{}?{}", self.paths.config, facts.to_query()),
            base_url: base_url.clone(),
            kernel_url: url(&profile.kernel),
            initrd_urls: profile.initrds.iter().map(url).collect(),
            initrd_names: profile
                .initrds
                .iter()
                .map(|s| s.rsplit('/').next().unwrap_or(s))
                .collect(),
            grub_kernel: grub::device_path(&profile.kernel),
            grub_initrds: profile
                .initrds
                .iter()
                .map(|s| grub::device_path(s))
                .collect(),
            grub_cmdline: String::new(),
            cmdline: String::new(),
        };
        let cmdline = self
            .env
            .get_template(&key(&profile.name, "cmdline"))?
            .render(&ctx)?;
        ctx.cmdline = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
        ctx.grub_cmdline = grub::quote_cmdline(&ctx.cmdline);
        self.env
            .get_template(&key(&profile.name, what))?
            .render(&ctx)
    }

    /// Renders every template for every inventory machine it would serve, and
    /// for an unknown machine.
    fn dry_run(&self) -> Result<(), Error> {
        let unknown = dry_run_facts();
        // An unknown machine reaches the profiles with a `match` and the default.
        for (i, p) in self.profiles.iter().enumerate() {
            if !p.matches.is_empty() || self.default == Some(i) {
                self.render_every(p, &unknown, None)?;
            }
        }
        for m in self.machines.values() {
            let facts = Facts {
                mac: Some(m.mac),
                ..unknown.clone()
            };
            if let Some(p) = self.choose(&facts, Some(m)) {
                self.render_every(p, &facts, Some(m))?;
            }
        }
        Ok(())
    }

    /// Renders every page of `profile` for `machine`.
    fn render_every<'m>(
        &self,
        profile: &Profile,
        facts: &Facts,
        machine: impl Into<Option<&'m Machine>>,
    ) -> Result<(), Error> {
        let machine = machine.into();
        let peer = Some(IpAddr::from([192, 0, 2, 10]));
        let pages: &[&str] = if profile.config.is_some() {
            &["script", "local", "grub", "grub-local", "config"]
        } else {
            &["script", "local", "grub", "grub-local"]
        };
        for what in pages {
            self.render(profile, what, facts, machine, ("http", "192.0.2.1"), peer)
                .map_err(|e| {
                    // The template that failed: the command line is rendered
                    // inside the script.
                    let what = e.name().and_then(|n| n.rsplit('/').next()).unwrap_or(what);
                    Error {
                        profile: profile.name.clone(),
                        what: match machine {
                            Some(m) => format!("{what} for machine {}", m.mac),
                            None => (*what).into(),
                        },
                        message: describe(&e),
                    }
                })?;
        }
        Ok(())
    }

    /// The script that asks again with iPXE's settings in the query.
    fn chain(&self) -> Page {
        Page {
            status: 200,
            content_type: TEXT,
            body: format!(
                "#!ipxe\nchain {}?mac=${{netX/mac:hexhyp}}&uuid=${{uuid}}&arch=${{buildarch}}\
                 &platform=${{platform}}&hostname=${{hostname:uristring}}\n",
                self.paths.script
            ),
        }
    }
}

/// The facts templates are dry-rendered with: a machine that said everything.
fn dry_run_facts() -> Facts {
    Facts {
        mac: Some(Mac([0x02, 0, 0, 0, 0, 1])),
        uuid: "00000000-0000-0000-0000-000000000000".into(),
        arch: "x86_64".into(),
        platform: "pcbios".into(),
        hostname: "unknown".into(),
    }
}

fn key(profile: &str, what: &str) -> String {
    format!("{profile}/{what}")
}

/// minijinja's message with the line it names.
fn describe(e: &minijinja::Error) -> String {
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    match e.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

fn text(status: u16, message: &str) -> Page {
    Page {
        status,
        content_type: TEXT,
        body: format!("{message}\n"),
    }
}

/// A page that says `message` and returns to the firmware: an iPXE script,
/// or a grub configuration.
fn echo_exit(message: &str, grub: bool) -> Page {
    let body = if grub {
        format!("echo '{}'\nsleep 5\nexit\n", message.replace('\'', ""))
    } else {
        format!("#!ipxe\necho {message}\nsleep 5\nexit 1\n")
    };
    Page {
        status: 200,
        content_type: TEXT,
        body,
    }
}

fn nothing_to_boot(f: &Facts, grub: bool) -> Page {
    let mac = f.mac.unwrap_or_default();
    echo_exit(
        &format!(
        "rackboot: no profile takes machine {mac} (arch {}, platform {}, uuid {}): add it to a \
         profile's match or to [[machine]], or set [boot] default",
        or_dash(&f.arch),
        or_dash(&f.platform),
        or_dash(&f.uuid)
    ),
        grub,
    )
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
