//! Many clients at once: every download completes with the right bytes.

use std::process::{Command, Stdio};

use crate::support::{sha256, Fixture, Server};

#[test]
fn two_hundred_concurrent_downloads_of_40mb_all_complete_intact() {
    let _turn = crate::support::heavy();
    let f = Fixture::new();
    let s = Server::start(&f.root(), &["--no-access-log"]);
    let want = sha256(&f.big);
    let url = s.url("/big.bin");
    // Each client is curl piped into sha256sum, so nothing touches the disk.
    let children: Vec<_> = (0..200)
        .map(|_| {
            Command::new("bash")
                .args([
                    "-c",
                    "set -o pipefail; curl -s -S --max-time 600 \"$1\" | sha256sum",
                    "bash",
                    &url,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bash (bash, curl and sha256sum must be installed)")
        })
        .collect();
    let mut failures = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !got.starts_with(&want) {
            failures.push(format!(
                "client {i}: {got} {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
