//! `[boot]`, `[[profile]]` and `[[machine]]` (and `--kernel`/`--initrd`) into the
//! compiled [`Profiles`]: every name, MAC and template file checked here, every
//! template compiled and dry-rendered, so that a mistake stops the start (and
//! `rackboot check`) naming the key, not a machine's boot.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::{file, Error, Overrides, Validator};
use crate::machines::Netboot;
use crate::proto::boot::{Loader, Mac, Machine, Match, Paths, Profile, Profiles};

/// The profile `--kernel` makes.
pub const CLI_PROFILE: &str = "default";

/// The command line `--kernel` profiles start with: the Debian installer's
/// unattended mode, its answers from this server.
pub const CLI_CMDLINE: &str = "auto=true priority=critical url={{ config_url }}";

/// The answers `--kernel` profiles serve without `--preseed`.
pub const BUILTIN_PRESEED: &str = include_str!("preseed.cfg");

/// What the boot section configured.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The compiled profiles.
    pub profiles: Arc<Profiles>,
    /// Files `--kernel`/`--initrd` add to the served set: (URL path, file).
    pub files: Vec<(String, PathBuf)>,
    /// Serve iPXE's binaries from the machine's ipxe package where the root has
    /// none (the built-in defaults).
    pub find_ipxe: bool,
    /// The machines state file, and whether it is the default one.
    pub state_file: (PathBuf, bool),
    /// The PostgreSQL store the machines' records are kept in instead, when
    /// `[store] backend = "postgres"`.
    pub shared: Option<super::dhcp::LeaseStore>,
    /// When `/boot.iso` is served: the server (`HOST[:PORT]`) its image
    /// boots from.
    pub media: Option<String>,
}

/// Where boot media is served.
pub const MEDIA_PATH: &str = "/boot.iso";

/// Where the machines state file is unless configured.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/rackboot/machines.state";

impl Validator<'_> {
    pub(super) fn boot(
        &self,
        raw: &file::File,
        cli: &Overrides,
        listen: SocketAddr,
    ) -> Result<Option<Boot>, Error> {
        if raw.profile.is_empty() && raw.machine.is_empty() && cli.kernel.is_none() {
            if cli.loader.is_some() {
                return Err(self.invalid(
                    None,
                    "--loader",
                    "is given without --kernel".into(),
                    "add --kernel PATH, which makes the default profile it belongs to",
                ));
            }
            if let Some(p) = cli.initrd.first().or(cli.preseed.as_ref()) {
                return Err(self.invalid(
                    None,
                    "--initrd/--preseed",
                    format!("is {} without --kernel", p.display()),
                    "add --kernel PATH, which makes the default profile they belong to",
                ));
            }
            let media = raw.boot.media.as_ref().filter(|m| *m.get_ref());
            if cli.media || media.is_some() {
                return Err(self.invalid(
                    media.map(|m| m.span().start),
                    if cli.media { "--media" } else { "boot.media" },
                    "is on, but no [[profile]] renders the pages the image chains to (the boot script and grub's page)".into(),
                    "add a [[profile]] (or --kernel PATH)",
                ));
            }
            return Ok(None);
        }
        let b = &raw.boot;
        let paths = Paths {
            script: self.url_path(b.script_path.as_ref(), "boot.script_path", "/boot.ipxe")?,
            grub: self.url_path(b.grub_path.as_ref(), "boot.grub_path", "/boot.grub")?,
            config: self.url_path(b.config_path.as_ref(), "boot.config_path", "/config")?,
            done: self.url_path(b.done_path.as_ref(), "boot.done_path", "/done")?,
        };
        if paths.grub == paths.script || paths.grub == paths.config {
            return Err(self.invalid(
                b.grub_path.as_ref().map(|s| s.span().start),
                "boot.grub_path",
                format!("is {:?}, another page's path", paths.grub),
                "give grub's page its own path, e.g. \"/boot.grub\"",
            ));
        }
        if paths.done == paths.script || paths.done == paths.config || paths.done == paths.grub {
            return Err(self.invalid(
                b.done_path.as_ref().map(|s| s.span().start),
                "boot.done_path",
                format!("is {:?}, a page's own path", paths.done),
                "give done URLs their own prefix, e.g. \"/done\"",
            ));
        }
        let state_file = match (&cli.boot_state_file, &b.state_file) {
            (Some(p), _) => (p.clone(), false),
            (None, Some(p)) if p.get_ref().is_empty() => {
                return Err(self.invalid(
                    Some(p.span().start),
                    "boot.state_file",
                    "is empty".into(),
                    format!("name a file (default {DEFAULT_STATE_FILE:?})"),
                ))
            }
            (None, Some(p)) => (PathBuf::from(p.get_ref()), false),
            (None, None) => (PathBuf::from(DEFAULT_STATE_FILE), true),
        };
        let mut profiles = Vec::new();
        let mut names = HashSet::new();
        for p in &raw.profile {
            let profile = self.profile(p)?;
            if !names.insert(profile.name.clone()) {
                return Err(self.invalid(
                    Some(p.name.span().start),
                    "profile.name",
                    format!("{:?} is used twice", profile.name),
                    "give each [[profile]] its own name",
                ));
            }
            profiles.push(profile);
        }
        let mut files = Vec::new();
        let mut default = match &b.default {
            Some(d) => Some(
                profiles
                    .iter()
                    .position(|p| &p.name == d.get_ref())
                    .ok_or_else(|| {
                        self.invalid(
                            Some(d.span().start),
                            "boot.default",
                            format!("names {:?}, which no [[profile]] has", d.get_ref()),
                            format!("name one of: {}", names_of(&profiles)),
                        )
                    })?,
            ),
            None => None,
        };
        if let Some(kernel) = &cli.kernel {
            let (profile, served) = self.cli_profile(kernel, cli)?;
            files = served;
            profiles.retain(|p| p.name != CLI_PROFILE);
            profiles.push(profile);
            default = Some(profiles.len() - 1);
        }
        let machines = self.machines(&raw.machine, &profiles)?;
        let server = match &b.server {
            Some(s) => s.get_ref().clone(),
            None if listen.port() == 80 => listen.ip().to_string(),
            None => listen.to_string(),
        };
        let media_on = b.media.as_ref().filter(|m| *m.get_ref());
        let media = if cli.media || media_on.is_some() {
            if b.server.is_none() && (listen.ip().is_unspecified() || listen.port() == 0) {
                return Err(self.invalid(
                    media_on.map(|m| m.span().start),
                    if cli.media { "--media" } else { "boot.media" },
                    format!(
                        "needs the address machines reach this server at, and HTTP listens on {listen}"
                    ),
                    "set [boot] server = \"10.0.0.1\" (with :PORT unless 80), or --http ADDR:PORT on that address",
                ));
            }
            if let Some(s) = b
                .server
                .as_ref()
                .filter(|s| !crate::store::media::is_authority(s.get_ref()))
            {
                return Err(self.invalid(
                    Some(s.span().start),
                    "boot.server",
                    format!("is {:?}, which boot media cannot name", s.get_ref()),
                    "write HOST[:PORT] with no scheme or path, e.g. \"10.0.0.1\" or \"[fd00::1]:8080\"",
                ));
            }
            Some(server.clone())
        } else {
            None
        };
        let compiled = Profiles::new(paths, profiles, default, machines, server).map_err(|e| {
            let at = raw
                .profile
                .iter()
                .find(|p| p.name.get_ref() == &e.profile)
                .map(|p| p.name.span().start);
            self.invalid(
                at,
                "profile",
                format!("{e}"),
                "fix the template (Jinja syntax; every name it uses must be defined: \
                 use `x | default(\"\")` for one a machine may lack)",
            )
        })?;
        Ok(Some(Boot {
            profiles: Arc::new(compiled),
            files,
            find_ipxe: cli.kernel.is_some(),
            state_file,
            shared: None,
            media,
        }))
    }

    fn profile(&self, p: &file::Profile) -> Result<Profile, Error> {
        let name = p.name.get_ref().trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(self.invalid(
                Some(p.name.span().start),
                "profile.name",
                format!("is {:?}", p.name.get_ref()),
                "use letters, digits, `-`, `_` or `.`",
            ));
        }
        let target = |s: &Spanned<String>, key| {
            let v = s.get_ref();
            if v.starts_with('/') || v.starts_with("http://") || v.starts_with("https://") {
                Ok(v.clone())
            } else {
                Err(self.invalid(
                    Some(s.span().start),
                    key,
                    format!("is {v:?} in profile {name:?}"),
                    "give a path served here (\"/d-i/linux\") or an http:// URL",
                ))
            }
        };
        let kernel = target(&p.kernel, "profile.kernel")?;
        let initrds = p
            .initrd
            .iter()
            .map(|i| target(i, "profile.initrd"))
            .collect::<Result<_, _>>()?;
        let mut mac = Vec::new();
        for m in &p.matches.mac {
            let v = m.get_ref().to_ascii_lowercase().replace('-', ":");
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":*?".contains(c))
            {
                return Err(self.invalid(
                    Some(m.span().start),
                    "profile.match.mac",
                    format!("is {:?}", m.get_ref()),
                    "write a MAC or a pattern: \"52:54:00:12:34:56\", \"52:54:00:*\"",
                ));
            }
            mac.push(v);
        }
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        let loader = match &p.loader {
            None => Loader::Ipxe,
            Some(l) => self.loader(l.get_ref(), Some(l.span().start), "profile.loader")?,
        };
        Ok(Profile {
            loader,
            kernel,
            initrds,
            cmdline: p.cmdline.clone(),
            script: self.template(p.script.as_ref(), "profile.script")?,
            config: self.template(p.config.as_ref(), "profile.config")?,
            matches: Match {
                mac,
                uuid: lower(&p.matches.uuid),
                arch: lower(&p.matches.arch),
                platform: lower(&p.matches.platform),
                hostname: p.matches.hostname.clone(),
                labels: p.matches.labels.clone(),
            },
            vars: p.vars.clone(),
            once: p.once,
            local: self.template(p.local.as_ref(), "profile.local")?,
            name,
        })
    }

    /// The default profile of `--kernel`, `--initrd`, `--cmdline`, `--preseed`,
    /// and the files it serves.
    fn cli_profile(
        &self,
        kernel: &Path,
        cli: &Overrides,
    ) -> Result<(Profile, Vec<(String, PathBuf)>), Error> {
        let mut files = Vec::new();
        let mut serve = |p: &Path, key: &'static str| -> Result<String, Error> {
            let meta = std::fs::metadata(p).map_err(|e| {
                self.invalid(
                    None,
                    key,
                    format!("is {}: {e}", p.display()),
                    "give a readable file",
                )
            })?;
            if !meta.is_file() {
                return Err(self.invalid(
                    None,
                    key,
                    format!("is {}, not a file", p.display()),
                    "give a file",
                ));
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let url = format!("/boot/{name}");
            if files.iter().any(|(u, _)| u == &url) {
                return Err(self.invalid(
                    None,
                    key,
                    format!(
                        "{} has the same file name as another boot file",
                        p.display()
                    ),
                    "give the kernel and each initrd a different file name",
                ));
            }
            files.push((url.clone(), p.to_path_buf()));
            Ok(url)
        };
        let kernel = serve(kernel, "--kernel")?;
        let initrds = cli
            .initrd
            .iter()
            .map(|i| serve(i, "--initrd"))
            .collect::<Result<_, _>>()?;
        let config = match &cli.preseed {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                self.invalid(
                    None,
                    "--preseed",
                    format!("is {}: {e}", p.display()),
                    "give a readable template file",
                )
            })?,
            None => BUILTIN_PRESEED.to_owned(),
        };
        let cmdline = match &cli.cmdline {
            Some(extra) => format!("{CLI_CMDLINE} {extra}"),
            None => CLI_CMDLINE.to_owned(),
        };
        let loader = match cli.loader.as_deref() {
            None => Loader::Ipxe,
            Some(l) => self.loader(l, None, "--loader")?,
        };
        let profile = Profile {
            loader,
            name: CLI_PROFILE.into(),
            kernel,
            initrds,
            cmdline,
            script: None,
            config: Some(config),
            matches: Match::default(),
            vars: BTreeMap::new(),
            once: cli.once,
            local: None,
        };
        Ok((profile, files))
    }

    /// The loader named `value` at `at` (`key` names it in the message).
    pub(super) fn loader(
        &self,
        value: &str,
        at: Option<usize>,
        key: &'static str,
    ) -> Result<Loader, Error> {
        Loader::parse(value).ok_or_else(|| {
            self.invalid(
                at,
                key,
                format!("is {value:?}"),
                "write \"ipxe\" (the default) or \"grub\" (shim and grub, signed, for Secure Boot)",
            )
        })
    }

    fn machines(&self, raw: &[file::Machine], profiles: &[Profile]) -> Result<Vec<Machine>, Error> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for m in raw {
            let mac = Mac::parse(m.mac.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(m.mac.span().start),
                    "machine.mac",
                    format!("is {:?}", m.mac.get_ref()),
                    "write a MAC: \"52:54:00:12:34:56\"",
                )
            })?;
            if !seen.insert(mac) {
                return Err(self.invalid(
                    Some(m.mac.span().start),
                    "machine.mac",
                    format!("{mac} is listed twice"),
                    "keep one [[machine]] per MAC",
                ));
            }
            if let Some(p) = &m.profile {
                if !profiles.iter().any(|q| &q.name == p.get_ref()) {
                    return Err(self.invalid(
                        Some(p.span().start),
                        "machine.profile",
                        format!("names {:?}, which no [[profile]] has", p.get_ref()),
                        format!("name one of: {}", names_of(profiles)),
                    ));
                }
            }
            let netboot = match &m.netboot {
                Some(n) => Some(Netboot::parse(n.get_ref()).ok_or_else(|| {
                    self.invalid(
                        Some(n.span().start),
                        "machine.netboot",
                        format!("is {:?}", n.get_ref()),
                        "write \"install\", \"local\" or \"always\"",
                    )
                })?),
                None => None,
            };
            out.push(Machine {
                netboot,
                mac,
                hostname: m.hostname.clone(),
                profile: m.profile.as_ref().map(|p| p.get_ref().clone()),
                labels: m.labels.clone(),
                vars: m.vars.clone(),
            });
        }
        Ok(out)
    }

    /// A template file's text; a relative path is from the config file's directory.
    fn template(
        &self,
        s: Option<&Spanned<String>>,
        key: &'static str,
    ) -> Result<Option<String>, Error> {
        let Some(s) = s else { return Ok(None) };
        let path = self
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(s.get_ref());
        std::fs::read_to_string(&path).map(Some).map_err(|e| {
            self.invalid(
                Some(s.span().start),
                key,
                format!("is {}: {e}", path.display()),
                "give a readable template file (relative paths start at the config file's directory)",
            )
        })
    }

    fn url_path(
        &self,
        s: Option<&Spanned<String>>,
        key: &'static str,
        default: &str,
    ) -> Result<String, Error> {
        let Some(s) = s else {
            return Ok(default.into());
        };
        let v = s.get_ref();
        if v.starts_with('/')
            && v.len() > 1
            && !v.contains(['?', '#', ' '])
            && !v.split('/').any(|seg| seg == "..")
        {
            Ok(v.clone())
        } else {
            Err(self.invalid(
                Some(s.span().start),
                key,
                format!("is {v:?}"),
                format!("write a URL path such as {default:?}"),
            ))
        }
    }
}

fn names_of(profiles: &[Profile]) -> String {
    if profiles.is_empty() {
        return "(none: add a [[profile]])".into();
    }
    profiles
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
