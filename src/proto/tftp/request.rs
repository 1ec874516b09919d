//! Accepting a read request: the filename as a path under the root, the mode, and
//! the options the server grants (RFC 2347-2349, RFC 7440).

use std::sync::Arc;
use std::time::Duration;

use super::{Error, Settings, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, HEADERS};
use crate::proto::boot::grub;
use crate::store::{BootFile, Snapshot};
use crate::wire::tftp::{Opcode, Packet, DATA_HEADER, MAX_BLKSIZE};
use crate::wire::{self, http::digits};

/// The bytes a transfer sends: a boot file as stored, or its netascii form.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The file's own mapping (octet mode): nothing is copied.
    File(Arc<BootFile>),
    /// Bytes made for this request: a page rendered for the machine (grub's
    /// configuration), or a file converted to netascii (CR LF line ends, CR
    /// NUL for a bare CR).
    Owned(Arc<[u8]>),
}

impl Payload {
    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::File(f) => f.bytes(),
            Payload::Owned(b) => b,
        }
    }
}

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Block size (512 unless negotiated).
    pub blksize: u16,
    /// Window size (1 unless negotiated).
    pub windowsize: u16,
    /// Retransmission timeout the client asked for, if valid.
    pub timeout: Option<Duration>,
    /// The OACK to send, in the client's order; empty when no option was granted.
    pub oack: Vec<(&'static str, u64)>,
    /// The client asked for `tsize` (an EDK2 size probe ends after the OACK).
    pub tsize: bool,
}

/// A request turned into what a transfer needs.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// URL-style path of the file served (`/efi/ipxe.efi`), for logs.
    pub path: Box<str>,
    /// The bytes to send.
    pub payload: Payload,
    /// The granted options.
    pub negotiated: Negotiated,
}

/// Where the request arrived: facts the backend knows and the engine needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Where<'a> {
    /// The canonical root directory, so that an absolute name inside it
    /// (`/srv/tftp/ipxe.efi`, as dnsmasq allows) is served.
    pub root: Option<&'a str>,
    /// MTU of the path to the client; blocks are clamped to fit one frame.
    pub path_mtu: Option<u32>,
    /// The URL prefix of the arrival interface's own root, when it has one.
    pub prefix: Option<&'a str>,
    /// The client's address, a fact for pages rendered per machine.
    pub peer: Option<std::net::IpAddr>,
    /// The wall time (unix seconds), for what machines were last seen doing.
    pub unix_secs: u64,
}

/// A read request, parsed once: the file it names (looked up in the snapshot
/// it arrived under) and the options the client asked for. What is granted
/// waits for the path MTU ([`Request::grant`]), which the backend learns from
/// the transfer's socket.
#[derive(Debug, Clone)]
pub struct Request {
    path: Box<str>,
    payload: Payload,
    asked: Asked,
}

impl Request {
    /// Parses a request datagram: opcode, file name (inside the root only),
    /// mode and options.
    ///
    /// # Errors
    /// The refusal, whose [`Error::reply`] is the ERROR to send.
    pub fn parse(
        datagram: &[u8],
        snapshot: &Snapshot,
        at: &Where<'_>,
        settings: &Settings,
    ) -> Result<Self, Error> {
        let packet = Packet::new_checked(datagram)?;
        match packet.opcode() {
            Opcode::Rrq => {}
            Opcode::Wrq => return Err(Error::WriteRefused),
            other => return Err(Error::Unexpected(other)),
        }
        let request = packet.request()?;
        let netascii = if request.mode.eq_ignore_ascii_case(b"octet") {
            false
        } else if request.mode.eq_ignore_ascii_case(b"netascii") {
            true
        } else {
            return Err(Error::Mode);
        };
        let mut path = resolve(request.filename, at.root)?;
        if settings.lowercase {
            path.name.make_ascii_lowercase();
        }
        // A request to an interface with a root of its own is served from it.
        if let Some(p) = at.prefix {
            path.name.insert_str(0, p);
        }
        let payload = match snapshot.get(&path.name) {
            Some(f) => Payload::File(Arc::clone(f)),
            None => match generated(snapshot, &path.name, at) {
                Some(made) => made?,
                None if path.absolute => {
                    return Err(Error::AccessViolation(
                        "absolute path outside the served root",
                    ))
                }
                None => return Err(Error::NotFound(path.name.into())),
            },
        };
        let asked = Asked::parse(request.options())?;
        let payload = if netascii {
            Payload::Owned(to_netascii(payload.bytes()).into())
        } else {
            payload
        };
        Ok(Self {
            path: path.name.into(),
            payload,
            asked,
        })
    }

    /// URL-style path of the file asked for.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Grants the options within one frame of a path of `path_mtu` (`None`:
    /// unknown) and one GSO send, and within `settings`.
    pub fn grant(self, settings: &Settings, path_mtu: Option<u32>) -> Accepted {
        let len = self.payload.bytes().len() as u64;
        Accepted {
            negotiated: self.asked.grant(len, settings, path_mtu),
            path: self.path,
            payload: self.payload,
        }
    }
}

/// Turns a request datagram into an accepted transfer: [`Request::parse`]
/// then [`Request::grant`] (for callers that know the path MTU up front).
///
/// # Errors
/// The refusal, whose [`Error::reply`] is the ERROR to send (or a silent drop).
pub fn accept(
    datagram: &[u8],
    snapshot: &Snapshot,
    settings: &Settings,
    at: Where<'_>,
) -> Result<Accepted, Error> {
    Ok(Request::parse(datagram, snapshot, &at, settings)?.grant(settings, at.path_mtu))
}

/// What a name the snapshot does not hold may still be, when the snapshot
/// has boot profiles: grub's configuration (the stub for any `grub.cfg`, and
/// the page rendered per machine at the grub path, its facts in the query),
/// or shim's second stage asked for beside shim instead of at the root.
fn generated(snapshot: &Snapshot, name: &str, at: &Where<'_>) -> Option<Result<Payload, Error>> {
    let profiles = snapshot.profiles()?;
    let grub_path = &profiles.paths().grub;
    if let Some(query) = name
        .strip_prefix(grub_path.as_str())
        .and_then(|q| q.strip_prefix('?'))
    {
        let origin = crate::proto::boot::Origin {
            host: None,
            peer: at.peer,
            unix_secs: at.unix_secs,
            tls: false,
            port: 0,
        };
        let page = profiles.answer(grub_path, query, origin)?;
        return Some(if page.status == 200 {
            Ok(Payload::Owned(page.body.into_bytes().into()))
        } else {
            Err(Error::NotFound(name.into()))
        });
    }
    if grub::is_config(name) {
        return Some(Ok(Payload::Owned(
            grub::stub(grub_path).into_bytes().into(),
        )));
    }
    let stage = grub::second_stage(name)?;
    let file = snapshot.get(&format!("/{stage}"))?;
    Some(Ok(Payload::File(Arc::clone(file))))
}

struct Resolved {
    name: String,
    absolute: bool,
}

/// A TFTP filename as a snapshot path. Backslashes are separators (Windows
/// deployment clients send `boot\x64\wdsnbp.com`); `..` is refused outright.
fn resolve(raw: &[u8], root: Option<&str>) -> Result<Resolved, Error> {
    let name =
        std::str::from_utf8(raw).map_err(|_| Error::AccessViolation("file name is not UTF-8"))?;
    let name = name.replace('\\', "/");
    let (rest, absolute) = match root.and_then(|r| name.strip_prefix(r.trim_end_matches('/'))) {
        Some(inside) if inside.starts_with('/') => (inside, false),
        _ => (name.as_str(), name.starts_with('/')),
    };
    let mut out = String::with_capacity(rest.len() + 1);
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Error::AccessViolation("`..` in file name")),
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::NotFound("/".into()));
    }
    Ok(Resolved {
        name: out,
        absolute,
    })
}

/// The options a client asked for (RFC 2347: unknown ones are left out), in
/// its order; the first of a repeated option counts.
#[derive(Debug, Clone, Default)]
struct Asked {
    blksize: Option<u64>,
    tsize: bool,
    /// An invalid timeout is ignored (RFC 2349), so only a valid one is kept.
    timeout: Option<u64>,
    windowsize: Option<u64>,
    /// Which options the OACK lists, in the client's order (indices into
    /// [`OPTIONS`]).
    order: [u8; 4],
    listed: u8,
}

const OPTIONS: [&str; 4] = ["blksize", "tsize", "timeout", "windowsize"];

impl Asked {
    /// Reads the options; a value the server cannot honour is refused here
    /// (ERROR 8), before any socket is opened for the transfer.
    fn parse<'a>(
        options: impl Iterator<Item = Result<(&'a [u8], &'a [u8]), wire::Error>>,
    ) -> Result<Self, Error> {
        let mut a = Asked::default();
        let mut seen = [false; 4];
        for option in options {
            let (name, value) = option?;
            let Some(slot) = OPTIONS
                .iter()
                .position(|k| name.eq_ignore_ascii_case(k.as_bytes()))
            else {
                continue;
            };
            if std::mem::replace(&mut seen[slot], true) {
                continue;
            }
            let v = digits(value);
            let listed = match slot {
                // RFC 2348: 8..65464; the server may grant less, never more.
                0 => {
                    a.blksize = Some(
                        v.filter(|&v| v >= 8)
                            .ok_or(Error::Option("blksize must be at least 8"))?,
                    );
                    true
                }
                1 => {
                    v.ok_or(Error::Option("tsize must be a number"))?;
                    a.tsize = true;
                    true
                }
                // RFC 2349: 1..255 seconds; an invalid value is ignored.
                2 => {
                    a.timeout = v.filter(|s| (1..=255).contains(s));
                    a.timeout.is_some()
                }
                _ => {
                    a.windowsize = Some(
                        v.filter(|&v| v >= 1)
                            .ok_or(Error::Option("windowsize must be at least 1"))?,
                    );
                    true
                }
            };
            if listed {
                a.order[usize::from(a.listed)] = slot as u8;
                a.listed += 1;
            }
        }
        Ok(a)
    }

    /// What the server grants for a payload of `len` bytes.
    fn grant(&self, len: u64, settings: &Settings, path_mtu: Option<u32>) -> Negotiated {
        // Largest block that fits one frame of the path (and so one GSO segment).
        let frame_max = path_mtu.map_or(MAX_BLKSIZE, |mtu| {
            mtu.saturating_sub(HEADERS).clamp(8, u32::from(MAX_BLKSIZE)) as u16
        });
        let blksize = self
            .blksize
            .filter(|_| settings.blksize)
            .map_or(512, |asked| asked.min(u64::from(frame_max)) as u16);
        let windowsize = self.windowsize.map_or(1, |asked| {
            asked.min(u64::from(settings.max_windowsize.max(1))) as u16
        });
        // A window goes out as one GSO send: cap it at what one send carries.
        let per_send =
            (GSO_MAX_BYTES / (u64::from(blksize) + DATA_HEADER as u64)).clamp(1, GSO_MAX_SEGMENTS);
        let windowsize = windowsize.min(per_send as u16).max(1);
        let oack = self.order[..usize::from(self.listed)]
            .iter()
            .filter(|&&slot| slot != 0 || settings.blksize)
            .map(|&slot| match slot {
                0 => ("blksize", u64::from(blksize)),
                1 => ("tsize", len),
                2 => ("timeout", self.timeout.unwrap_or(0)),
                _ => ("windowsize", u64::from(windowsize)),
            })
            .collect();
        Negotiated {
            blksize,
            windowsize,
            timeout: self.timeout.map(Duration::from_secs),
            oack,
            tsize: self.tsize,
        }
    }
}

/// RFC 764 netascii: CR LF for every LF, CR NUL for a bare CR.
fn to_netascii(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b => out.push(b),
        }
    }
    out
}

#[cfg(test)]
pub(super) mod unit {
    use super::*;

    #[test]
    fn names_resolve_inside_the_root_only() {
        let ok = |raw: &str, root| resolve(raw.as_bytes(), root).map(|r| (r.name, r.absolute));
        assert_eq!(ok("ipxe.efi", None), Ok(("/ipxe.efi".into(), false)));
        assert_eq!(ok("/ipxe.efi", None), Ok(("/ipxe.efi".into(), true)));
        assert_eq!(
            ok("efi\\boot\\bootx64.efi", None),
            Ok(("/efi/boot/bootx64.efi".into(), false))
        );
        assert_eq!(
            ok("/srv/tftp/efi/ipxe.efi", Some("/srv/tftp")),
            Ok(("/efi/ipxe.efi".into(), false))
        );
        assert_eq!(
            ok("/srv/tftpx/a", Some("/srv/tftp")),
            Ok(("/srv/tftpx/a".into(), true))
        );
        for bad in ["../etc/passwd", "a/../../b", "..\\..\\x", "/.."] {
            assert!(
                matches!(
                    resolve(bad.as_bytes(), None),
                    Err(Error::AccessViolation(_))
                ),
                "{bad}"
            );
        }
        assert!(resolve(b"\xff\xfe", None).is_err());
    }

    #[test]
    fn without_blksize_blocks_are_512_and_the_oack_leaves_it_out() {
        let pairs = [Ok((&b"blksize"[..], &b"1468"[..])), Ok((b"tsize", b"0"))];
        let settings = Settings {
            blksize: false,
            ..Settings::default()
        };
        let n = Asked::parse(pairs.into_iter())
            .unwrap()
            .grant(850_528, &settings, None);
        assert_eq!(n.blksize, 512);
        assert_eq!(n.oack, [("tsize", 850_528)]);
    }

    fn grant(opts: &[(&str, &str)], mtu: Option<u32>) -> Result<Negotiated, Error> {
        let pairs: Vec<_> = opts
            .iter()
            .map(|(k, v)| Ok((k.as_bytes(), v.as_bytes())))
            .collect();
        Ok(Asked::parse(pairs.into_iter())?.grant(850_528, &Settings::default(), mtu))
    }

    #[test]
    fn edk2s_options_are_granted_within_one_frame_and_one_gso_send() {
        let n = grant(
            &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
            Some(1500),
        )
        .unwrap();
        assert_eq!((n.blksize, n.windowsize, n.tsize), (1468, 4, true));
        assert_eq!(
            n.oack,
            [("tsize", 850_528), ("blksize", 1468), ("windowsize", 4)]
        );
        // A block is clamped to the frame; a window to one GSO send (44 x 1472 bytes).
        let n = grant(&[("blksize", "9000"), ("windowsize", "64")], Some(1500)).unwrap();
        assert_eq!((n.blksize, n.windowsize), (1468, 44));
        let n = grant(&[("windowsize", "1000")], None).unwrap();
        assert_eq!(n.windowsize, 64);
        let n = grant(&[("blksize", "70000")], None).unwrap();
        assert_eq!(n.blksize, MAX_BLKSIZE);
    }

    #[test]
    fn invalid_values_are_refused_or_ignored_as_the_rfcs_say() {
        assert!(matches!(
            grant(&[("blksize", "0")], None),
            Err(Error::Option(_))
        ));
        assert!(matches!(
            grant(&[("windowsize", "0")], None),
            Err(Error::Option(_))
        ));
        assert!(matches!(
            grant(&[("tsize", "x")], None),
            Err(Error::Option(_))
        ));
        let n = grant(
            &[
                ("timeout", "0"),
                ("multicast", ""),
                ("BLKSIZE", "1024"),
                ("blksize", "8"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(n.oack, [("blksize", 1024)]);
    }

    #[test]
    fn netascii_converts_line_ends() {
        assert_eq!(to_netascii(b"a\nb\rc"), b"a\r\nb\r\0c");
    }
}
