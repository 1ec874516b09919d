//! The translation's final text: dnsmasq's part with nginx's (its listen
//! address, root and locations as mounts), or nginx's alone.

use std::fmt::Write as _;

use super::*;
impl Imported {
    /// The translation with nginx's (when given): one root (dnsmasq's TFTP
    /// root, else nginx's; nginx's beside it when both), nginx's listen
    /// address and its locations as `[[mount]]`s, and its notes.
    pub fn with_nginx(mut self, nginx: crate::import::nginx::Nginx) -> Self {
        self.toml = self.render(Some(&nginx));
        self.notes.extend(nginx.notes);
        self
    }

    /// nginx's configuration alone (dnsmasq stays, or there is none).
    pub fn nginx_only(nginx: crate::import::nginx::Nginx) -> Self {
        Self::default().with_nginx(nginx)
    }

    pub(super) fn render(&self, nginx: Option<&crate::import::nginx::Nginx>) -> String {
        let mut t = String::from(
            "# rackboot configuration translated from dnsmasq's (`rackboot import`).\n",
        );
        let nginx_root = nginx
            .and_then(|n| n.root.as_ref())
            .map(|r| r.display().to_string());
        let root = self.root.clone().or_else(|| nginx_root.clone());
        if let Some(r) = &root {
            let _ = writeln!(t, "root = {}", q(r));
        }
        t.push_str(&self.body);
        let Some(n) = nginx else {
            return t;
        };
        if let (Some(r), true) = (&nginx_root, root != nginx_root) {
            let _ = write!(t, "\n# nginx's root, served beside the TFTP root\n[[mount]]\npath = \"/\"\ndir = {}\n", q(r));
        }
        for (prefix, dir) in &n.mounts {
            let _ = write!(
                t,
                "\n{}[[mount]]\npath = {}\ndir = {}\n",
                comment(&format!("nginx location {prefix}")),
                q(prefix),
                q(&dir.display().to_string())
            );
        }
        if let Some(addr) = n.listen {
            let _ = write!(
                t,
                "\n# nginx's listen\n[http]\nlisten = {}\n",
                q(&addr.to_string())
            );
        }
        t
    }
}
