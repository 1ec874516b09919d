//! PXE boot menus (PXE 2.1 §2.2.5, option 43 in a PXEClient's answer): the
//! items a firmware shows for its architecture, its prompt, and the boot
//! server answer on :4011 for the item the client picked. dnsmasq's
//! `pxe-service` and `pxe-prompt`, with its answers, so a menu carried over
//! from a dnsmasq.conf behaves as it did.

use std::net::Ipv4Addr;

use super::policy::tags_fit as fits;

/// Vendor sub-options (PXE 2.1 table 2-1).
pub mod sub {
    /// Discovery control: bit 0 no broadcast, bit 1 no multicast, bit 3
    /// "use the boot file of the offer, no menu".
    pub const DISCOVERY_CONTROL: u8 = 6;
    /// Boot servers: per item type, its addresses.
    pub const BOOT_SERVERS: u8 = 8;
    /// The menu: per item, its type and text.
    pub const BOOT_MENU: u8 = 9;
    /// The prompt: a timeout in seconds and a text.
    pub const MENU_PROMPT: u8 = 10;
    /// The item a client asks a boot server for: type and layer.
    pub const BOOT_ITEM: u8 = 71;
}

/// The first boot server type a file item gets (dnsmasq numbers file items
/// from here, in file order; 1-32767 are the registered types).
pub const FIRST_FILE_TYPE: u16 = 32768;

/// The PXE names of client architectures, by option 93 number (PXE 2.1 and
/// RFC 4578; the names dnsmasq's `pxe-service` takes).
const ARCH_NAMES: &[&str] = &[
    "x86PC",
    "PC98",
    "IA64_EFI",
    "Alpha",
    "Arc_x86",
    "Intel_Lean_Client",
    "IA32_EFI",
    "x86-64_EFI",
    "Xscale_EFI",
    "BC_EFI",
    "ARM32_EFI",
    "ARM64_EFI",
];

/// The option 93 number of a PXE architecture name (any case).
pub fn arch_by_name(name: &str) -> Option<u16> {
    let at = ARCH_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name.trim()));
    at.and_then(|i| u16::try_from(i).ok())
}

/// A PXE menu: its items and its prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Menu {
    /// Items in the order shown.
    pub items: Vec<Item>,
    /// The prompt (without one, a menu of several items waits for a choice).
    pub prompt: Option<Prompt>,
}

/// One menu item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The client system architecture it is shown to (option 93).
    pub arch: u16,
    /// Its text.
    pub text: String,
    /// Its boot server type: 0 is "boot from the local disk".
    pub boot_type: u16,
    /// The file a boot server request for it gets (without a `.`, the
    /// client's layer is appended: `pxelinux` -> `pxelinux.0`).
    pub file: Option<String>,
    /// The boot server, when not this one.
    pub server: Option<Ipv4Addr>,
    /// Tags required, all of.
    pub tags: Vec<String>,
    /// Tags forbidden.
    pub not_tags: Vec<String>,
}

/// The menu prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Its text.
    pub text: String,
    /// Seconds before the first item is taken; 255 waits for a key.
    pub timeout: u8,
    /// Tags required, all of.
    pub tags: Vec<String>,
    /// Tags forbidden.
    pub not_tags: Vec<String>,
}

impl Prompt {
    /// Appends the prompt sub-option.
    pub fn write(&self, out: &mut Vec<u8>) {
        let text = &self.text.as_bytes()[..self.text.len().min(200)];
        out.push(sub::MENU_PROMPT);
        out.push(text.len() as u8 + 1);
        out.push(self.timeout);
        out.extend_from_slice(text);
    }
}

impl Item {
    fn fits(&self, arch: u16, tags: &[&str]) -> bool {
        self.arch == arch && fits(&self.tags, &self.not_tags, tags)
    }

    /// The file a boot server request of `layer` gets.
    pub fn file_for(&self, layer: u16) -> Option<String> {
        let f = self.file.as_deref()?;
        Some(if f.contains('.') {
            f.to_owned()
        } else {
            format!("{f}.{layer}")
        })
    }
}

impl Menu {
    /// UEFI firmware's menu code is often broken: where exactly one item with
    /// a file fits a UEFI client (arch 6 and up), it gets that item directly
    /// (file, server) instead of a menu.
    pub fn single_uefi_item(&self, arch: u16, tags: &[&str]) -> Option<&Item> {
        if arch < 6 {
            return None;
        }
        let mut fitting = self
            .items
            .iter()
            .filter(|i| i.file.is_some() && i.fits(arch, tags));
        let one = fitting.next()?;
        fitting.next().is_none().then_some(one)
    }

    /// The item of boot server type `t` (the first, whatever its arch).
    pub fn by_type(&self, t: u16) -> Option<&Item> {
        self.items.iter().find(|i| i.boot_type == t)
    }

    /// Option 43 for a client of `arch` with `tags`, this server being
    /// `server`: discovery control, prompt, boot servers, menu, end.
    pub fn vendor_option(&self, arch: u16, tags: &[&str], server: Ipv4Addr) -> Vec<u8> {
        let mut menu = Vec::new();
        let mut servers = Vec::new();
        let mut shown = 0;
        // No broadcast or multicast discovery, unless an item's server is
        // not known (then the client broadcasts for it).
        let mut control = 3;
        for item in self.items.iter().filter(|i| i.fits(arch, tags)) {
            let text = &item.text.as_bytes()[..item.text.len().min(250)];
            if menu.len() + text.len() + 3 >= 253 {
                break;
            }
            menu.extend_from_slice(&item.boot_type.to_be_bytes());
            menu.push(text.len() as u8);
            menu.extend_from_slice(text);
            shown += 1;
            let at = if item.file.is_some() {
                Some(server)
            } else {
                item.server
            };
            match at {
                Some(ip) if servers.len() + 7 < 253 => {
                    servers.extend_from_slice(&item.boot_type.to_be_bytes());
                    servers.push(1);
                    servers.extend_from_slice(&ip.octets());
                }
                Some(_) => {}
                None if item.boot_type != 0 => control = 2,
                None => {}
            }
        }
        if shown == 0 {
            // No menu: the client boots the offer's file.
            control = 8;
        }
        let prompt = self.prompt_for(tags);
        let mut out = vec![sub::DISCOVERY_CONTROL, 1, control];
        if prompt.is_none() {
            // Without a prompt of its own: no wait for one item, a wait for
            // a choice between several.
            let wait = if shown > 1 { 255 } else { 0 };
            out.extend_from_slice(&[sub::MENU_PROMPT, 4, wait, b'P', b'X', b'E']);
        }
        if shown > 0 {
            if !servers.is_empty() {
                out.push(sub::BOOT_SERVERS);
                out.push(servers.len() as u8);
                out.extend_from_slice(&servers);
            }
            out.push(sub::BOOT_MENU);
            out.push(menu.len() as u8);
            out.extend_from_slice(&menu);
        }
        if let Some(p) = prompt {
            p.write(&mut out);
        }
        out.push(255);
        out
    }

    /// The prompt, where its tags fit.
    pub fn prompt_for(&self, tags: &[&str]) -> Option<&Prompt> {
        self.prompt
            .as_ref()
            .filter(|p| fits(&p.tags, &p.not_tags, tags))
    }
}

/// The item a boot server request names (option 43, sub-option 71): its
/// type and layer.
pub fn boot_item(vendor: &[u8]) -> Option<[u8; 4]> {
    let mut at = 0;
    while at + 1 < vendor.len() {
        let (c, n) = (vendor[at], usize::from(vendor[at + 1]));
        if c == 255 {
            return None;
        }
        if c == 0 {
            at += 1;
            continue;
        }
        let v = vendor.get(at + 2..at + 2 + n)?;
        if c == sub::BOOT_ITEM && n >= 4 {
            return Some([v[0], v[1], v[2], v[3]]);
        }
        at += 2 + n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn item(arch: u16, text: &str, boot_type: u16, file: Option<&str>) -> Item {
        Item {
            arch,
            text: text.into(),
            boot_type,
            file: file.map(str::to_owned),
            server: None,
            tags: vec![],
            not_tags: vec![],
        }
    }

    #[test]
    fn a_menu_lists_the_items_of_the_clients_arch_with_this_server() {
        let m = Menu {
            items: vec![
                item(0, "Install", 32768, Some("undionly.kpxe")),
                item(0, "Disk", 0, None),
                item(7, "EFI", 32769, Some("ipxe.efi")),
            ],
            prompt: Some(Prompt {
                text: "Boot".into(),
                timeout: 5,
                tags: vec![],
                not_tags: vec![],
            }),
        };
        let v = m.vendor_option(0, &[], ME);
        let mut want = vec![6, 1, 3];
        want.extend_from_slice(&[8, 7, 0x80, 0, 1, 10, 0, 0, 1]);
        want.extend_from_slice(&[9, 17, 0x80, 0, 7]);
        want.extend_from_slice(b"Install");
        want.extend_from_slice(&[0, 0, 4]);
        want.extend_from_slice(b"Disk");
        want.extend_from_slice(&[10, 5, 5]);
        want.extend_from_slice(b"Boot");
        want.push(255);
        assert_eq!(v, want);
        // No item for the arch: "boot the offer's file", a prompt of none.
        assert_eq!(
            Menu {
                prompt: None,
                ..m.clone()
            }
            .vendor_option(11, &[], ME),
            vec![6, 1, 8, 10, 4, 0, b'P', b'X', b'E', 255]
        );
        assert_eq!(m.single_uefi_item(7, &[]).map(|i| i.boot_type), Some(32769));
        assert!(m.single_uefi_item(0, &[]).is_none(), "BIOS gets the menu");
    }

    #[test]
    fn tags_choose_items_and_an_unknown_server_allows_broadcast_discovery() {
        let mut remote = item(0, "Remote", 5, None);
        remote.tags = vec!["lab".into()];
        let m = Menu {
            items: vec![remote, item(0, "Local", 0, None)],
            prompt: None,
        };
        let plain = m.vendor_option(0, &[], ME);
        assert_eq!(&plain[..3], &[6, 1, 3]);
        let lab = m.vendor_option(0, &["lab"], ME);
        assert_eq!(&lab[..3], &[6, 1, 2]);
        assert_eq!(&lab[3..6], &[10, 4, 255], "two items wait for a choice");
    }

    #[test]
    fn the_boot_item_is_read_from_option_43_and_layers_name_files() {
        assert_eq!(
            boot_item(&[6, 1, 3, 71, 4, 0x80, 0, 0, 0, 255]),
            Some([0x80, 0, 0, 0])
        );
        assert_eq!(boot_item(&[71, 3, 0, 0, 0]), None);
        assert_eq!(boot_item(&[71, 9, 0, 0]), None, "cut short");
        assert_eq!(boot_item(&[]), None);
        let i = item(0, "x", 32768, Some("pxelinux"));
        assert_eq!(i.file_for(0).as_deref(), Some("pxelinux.0"));
        let i = item(0, "x", 32768, Some("undionly.kpxe"));
        assert_eq!(i.file_for(3).as_deref(), Some("undionly.kpxe"));
    }
}
