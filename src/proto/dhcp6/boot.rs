//! The boot answer (option 59) by the DHCPv4 engine's rules: the request's
//! option 61, vendor class (16) and user class (15) are read as options 93,
//! 60 and 77 of a DHCPv4-shaped packet, and the file the deciding rule names
//! becomes a URL on the server's bracketed address.

use std::net::Ipv6Addr;

use super::{Client, Engine};
use crate::proto::dhcp::policy::{self, Firmware};
use crate::wire::dhcp6::Message;

impl Engine {
    /// Option 59 for this client, and whether it is a UEFI HTTP boot client.
    pub(super) fn boot_url(&self, c: &Client<'_>, server: Ipv6Addr) -> Option<(String, bool)> {
        let mut packet = [0u8; 240 + 3 * 258 + 1];
        let len = firmware_options(&c.msg, &mut packet);
        let options = crate::wire::dhcp::Options::parse(&packet[..len]).ok()?;
        let mac = c.mac.unwrap_or_default();
        let mut f = Firmware::of(&options, &mac, std::net::Ipv4Addr::UNSPECIFIED);
        f.known = c.host.is_some();
        f.profiles = self.settings.profiles.as_ref().map(|p| &*p.0);
        if c.mac.is_none() {
            // Profiles and MAC rules cannot tell this client apart.
            f.profiles = None;
        }
        let (_, action) = policy::decide(&self.settings.rules, &f)?;
        if action.ignore {
            return None;
        }
        let file = action.file.as_deref()?;
        let host = format!("[{server}]");
        let url = if file.contains("://") {
            let http = if self.settings.http_port == 80 {
                host.clone()
            } else {
                format!("{host}:{}", self.settings.http_port)
            };
            file.replace("{http}", &http)
        } else {
            format!("tftp://{host}/{}", file.trim_start_matches('/'))
        };
        Some((url, f.is_http_client()))
    }
}

/// Writes a DHCPv4-shaped packet into `buf` whose options say what `msg`
/// says of its firmware (61 as 93, 16's first item as 60, 15's items as 77),
/// so that the DHCPv4 boot rules read it; returns its length.
fn firmware_options(msg: &Message<'_>, buf: &mut [u8; 240 + 3 * 258 + 1]) -> usize {
    use crate::wire::dhcp::{code as v4, MAGIC};
    buf[236..240].copy_from_slice(&MAGIC);
    let mut at = 240;
    let mut put = |c: u8, data: &[u8]| {
        let n = data.len().min(255);
        buf[at] = c;
        buf[at + 1] = n as u8;
        buf[at + 2..at + 2 + n].copy_from_slice(&data[..n]);
        at += 2 + n;
    };
    if let Some(arch) = msg.options.client_arch() {
        put(v4::CLIENT_ARCH, &arch.to_be_bytes());
    }
    if let Some((_, class)) = msg.options.vendor_class() {
        put(v4::VENDOR_CLASS, class);
    }
    let mut classes = [0u8; 255];
    let mut n = 0;
    for item in msg.options.user_classes() {
        if n + 1 + item.len() > classes.len() || item.len() > 255 {
            break;
        }
        classes[n] = item.len() as u8;
        classes[n + 1..n + 1 + item.len()].copy_from_slice(item);
        n += 1 + item.len();
    }
    if n > 0 {
        put(v4::USER_CLASS, &classes[..n]);
    }
    buf[at] = v4::END;
    at + 1
}
