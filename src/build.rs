//! Build script: names the git revision in `rackboot --version` (from the
//! checkout, when there is one; a source tree without git says so).

use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|r| !r.is_empty());
    let dirty = rev.is_some()
        && Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let full = match rev {
        Some(r) => format!(
            "{version} (git {r}{})",
            if dirty { ", modified" } else { "" }
        ),
        None => format!("{version} (not built from a git checkout)"),
    };
    println!("cargo:rustc-env=RACKBOOT_VERSION={full}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-changed=.git/refs");
}
