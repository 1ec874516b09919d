//! `Content-Type` by file extension, for the files a boot server holds. Anything
//! unknown is `application/octet-stream`, which every boot client accepts.

/// The media type for a URL path.
pub fn for_path(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return OCTET,
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    match ext.to_ascii_lowercase().as_str() {
        // iPXE scripts, preseeds, kickstarts, GRUB and PXELINUX configs are read by
        // programs but also by people with a browser: text/plain shows them.
        "ipxe" | "txt" | "cfg" | "conf" | "ks" | "preseed" | "seed" | "cmdline" => TEXT,
        "sh" => "text/x-shellscript; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" | "ign" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "xml" => "application/xml",
        "iso" => "application/x-iso9660-image",
        "gz" | "tgz" => "application/gzip",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "tar" => "application/x-tar",
        _ => OCTET,
    }
}

const OCTET: &str = "application/octet-stream";

#[cfg(test)]
mod tests {
    use super::for_path;

    #[test]
    fn boot_files_get_their_types() {
        assert_eq!(for_path("/boot.ipxe"), "text/plain; charset=utf-8");
        assert_eq!(for_path("/d-i/preseed.CFG"), "text/plain; charset=utf-8");
        assert_eq!(for_path("/ipxe.efi"), "application/octet-stream");
        assert_eq!(for_path("/initrd.gz"), "application/gzip");
        assert_eq!(for_path("/linux"), "application/octet-stream");
        assert_eq!(for_path("/.hidden"), "application/octet-stream");
    }
}
