//! `rackboot media`: boot media for machines without PXE (see
//! `store::media`).

use std::path::PathBuf;
use std::process::ExitCode;

use rackboot::store::media;

/// `rackboot media`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The rackboot server the media boots from: http://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    server: String,
    /// Where to write the image.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// iso (CD-ROM, BMC virtual media) or img (USB stick, `dd` it whole):
    /// the same hybrid bytes boot either way.
    #[arg(long, value_name = "FORMAT", default_value = "iso", value_parser = ["iso", "img"])]
    format: String,
    /// The server's boot script path (`[boot] script_path`).
    #[arg(long, value_name = "PATH", default_value = "/boot.ipxe")]
    script_path: String,
    /// The server's grub page path (`[boot] grub_path`).
    #[arg(long, value_name = "PATH", default_value = "/boot.grub")]
    grub_path: String,
}

/// Runs `rackboot media`.
pub(crate) fn run(args: &Args) -> ExitCode {
    let made = media::Server::parse(&args.server)
        .and_then(|s| media::build(&s, &args.script_path, &args.grub_path))
        .and_then(|bytes| {
            std::fs::write(&args.out, &bytes)
                .map(|()| bytes.len())
                .map_err(|e| format!("cannot write {}: {e}", args.out.display()))
        });
    match made {
        Ok(len) => {
            println!(
                "wrote {} ({len} bytes, {}): BIOS and UEFI machines booting it run DHCP, then {}{}",
                args.out.display(),
                if args.format == "img" {
                    "write it whole to a USB stick: dd if=IMAGE of=/dev/sdX bs=4M"
                } else {
                    "a CD-ROM or BMC virtual media image"
                },
                args.server.trim_end_matches('/'),
                args.script_path
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rackboot media: {e}");
            ExitCode::FAILURE
        }
    }
}
