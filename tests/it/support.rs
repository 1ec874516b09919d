//! Test support: a fixture root, a running server, and client helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Length of the big fixture: a 40 MB kernel+initrd-sized file.
pub(crate) const BIG_LEN: usize = 40 * 1000 * 1000;
/// Written in a file outside the served root; no response may ever contain it.
pub(crate) const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT";

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rackboot-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A served root beside a secret file:
/// `root/{big.bin, boot.ipxe, efi/ipxe.efi, inside -> big.bin, leak -> ../secret.txt}`.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) big: Vec<u8>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = TempDir::new("root");
        let root = dir.0.join("root");
        std::fs::create_dir_all(root.join("efi")).unwrap();
        let big = rackboot::store::builtin::filler(BIG_LEN, 42);
        std::fs::write(root.join("big.bin"), &big).unwrap();
        std::fs::write(root.join("boot.ipxe"), b"#!ipxe\nkernel big.bin\nboot\n").unwrap();
        std::fs::write(
            root.join("efi/ipxe.efi"),
            rackboot::store::builtin::filler(850_528, 7),
        )
        .unwrap();
        std::fs::write(dir.0.join("secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink("big.bin", root.join("inside")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("secret.txt"), root.join("leak")).unwrap();
        Self { dir, big }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.0.join("root")
    }
}

/// A running `rackboot serve` on 127.0.0.1 and a free port; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The TFTP address, when started with `--tftp`.
    pub(crate) tftp: Option<SocketAddr>,
    /// The HTTPS address, when started with `--tls-cert`.
    pub(crate) https: Option<SocketAddr>,
    /// Its admin API socket (each server its own).
    pub(crate) admin: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub(crate) fn start(root: &Path, extra: &[&str]) -> Self {
        Self::start_in(None, "127.0.0.1", root, extra)
    }

    /// Starts the server inside network namespace `netns` (when given), with HTTP
    /// on `ip` and a free port.
    pub(crate) fn start_in(netns: Option<&str>, ip: &str, root: &Path, extra: &[&str]) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let admin =
            std::env::temp_dir().join(format!("rackboot-it-admin-{}-{n}.sock", std::process::id()));
        // Each server its own machines state file, never the system's
        // (unless its configuration keeps machines in a PostgreSQL store).
        let state = admin.with_extension("machines");
        let shared = extra
            .iter()
            .position(|a| *a == "--config")
            .and_then(|i| extra.get(i + 1))
            .and_then(|c| std::fs::read_to_string(c).ok())
            .is_some_and(|t| t.contains("backend = \"postgres\""));
        let own_state = !shared && !extra.contains(&"--boot-state-file");
        if own_state {
            let _ = std::fs::remove_file(&state);
        }
        let mut child = rackboot_in(netns)
            .args(["serve", "--http", &format!("{ip}:0"), "--root"])
            .arg(root)
            .args(extra)
            .args(if extra.contains(&"--admin-socket") {
                &[][..]
            } else {
                &["--admin-socket"][..]
            })
            .args(if extra.contains(&"--admin-socket") {
                None
            } else {
                Some(&admin)
            })
            .args(if own_state {
                &["--boot-state-file"][..]
            } else {
                &[][..]
            })
            .args(if own_state { Some(&state) } else { None })
            .args(if extra.contains(&"--workers") {
                &[][..]
            } else {
                &["--workers", "2"][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rackboot");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        // Keep draining the log for the server's whole life, so it never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dhcp listening") {
                    let _ = tx.send(("dhcp", SocketAddr::from(([0, 0, 0, 0], 67))));
                }
                for kind in ["http", "tftp", "https"] {
                    if let Some(addr) = listening_addr(&line, kind) {
                        let _ = tx.send((kind, addr));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let wants_tftp = extra.contains(&"--tftp");
        let wants_dhcp = extra.contains(&"--interface");
        let wants_https = extra.contains(&"--tls-cert");
        let (mut addr, mut tftp, mut dhcp, mut https) = (None, None, false, None);
        while addr.is_none()
            || (wants_tftp && tftp.is_none())
            || (wants_dhcp && !dhcp)
            || (wants_https && https.is_none())
        {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(("http", a)) => addr = Some(a),
                Ok(("dhcp", _)) => dhcp = true,
                Ok(("https", a)) => https = Some(a),
                Ok((_, a)) => tftp = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "rackboot did not start listening:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        Self {
            child,
            addr: addr.unwrap(),
            tftp,
            https,
            admin,
            log,
        }
    }

    /// `method path` on its admin socket: (status, body).
    pub(crate) fn api(&self, method: &str, path: &str) -> (u16, String) {
        let (code, _, body) = curl(&[
            "--unix-socket",
            self.admin.to_str().unwrap(),
            "-X",
            method,
            &format!("http://rackboot{path}"),
        ]);
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// `method path` with a JSON `body` on its admin socket: (status, body).
    pub(crate) fn api_json(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (code, _, body) = curl(&[
            "--unix-socket",
            self.admin.to_str().unwrap(),
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &format!("http://rackboot{path}"),
        ]);
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// The value of the first metric line starting with `name` (labels
    /// included), from the admin socket's /metrics.
    pub(crate) fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.api("GET", "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    /// The sum of the metric `name` over its labelled lines (workers,
    /// reasons) whose labels pass `keep`.
    pub(crate) fn metric_sum(&self, name: &str, keep: impl Fn(&str) -> bool) -> u64 {
        let (_, text) = self.api("GET", "/metrics");
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
            .filter(|l| keep(l))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Its process id (for signals).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.admin);
        let _ = std::fs::remove_file(self.admin.with_extension("machines"));
    }
}

/// The address in a `KIND listening addr=...` line (text or JSON log).
fn listening_addr(line: &str, kind: &str) -> Option<SocketAddr> {
    if !line.contains(&format!("{kind} listening")) {
        return None;
    }
    let at = line
        .find("addr=")
        .map(|i| i + 5)
        .or_else(|| line.find("\"addr\":\"").map(|i| i + 8))?;
    line[at..].split([' ', '"']).next()?.parse().ok()
}

/// Runs `tool` with `args`; a missing tool fails with what to install.
pub(crate) fn run(tool: &str, args: &[&str]) -> Output {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "`{tool}` is not installed: run `apt-get install {tool}` (tests/run installs it)"
            )
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

/// curl with `args`; returns (status code, headers text, body bytes).
pub(crate) fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = TempDir::new("curl");
    let head = dir.0.join("head");
    let mut all = vec![
        "-s",
        "-S",
        "-D",
        head.to_str().unwrap(),
        "-w",
        "%{http_code}",
    ];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    let code_at = out.stdout.len().saturating_sub(3);
    let code = std::str::from_utf8(&out.stdout[code_at..])
        .unwrap()
        .parse()
        .unwrap_or(0);
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    (code, headers, out.stdout[..code_at].to_vec())
}

/// The value of header `name` in the last response of a curl `-D` dump.
pub(crate) fn header(headers: &str, name: &str) -> Option<String> {
    let last = headers.rsplit("HTTP/").next().unwrap_or(headers);
    last.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

pub(crate) fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Sends raw bytes, then reads until the server closes or `wait` passes.
/// Returns what was read and whether the server closed the connection.
pub(crate) fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// The status code of the first response in `bytes`.
pub(crate) fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(line.get(..3)?).ok()?.parse().ok()
}

/// `rackboot reload` against the server whose admin socket is `admin`:
/// (success, stdout, stderr).
pub(crate) fn reload(admin: &Path) -> (bool, String, String) {
    ask(&["reload"], admin)
}

/// `rackboot ARGS --admin-socket ADMIN` (a subcommand that asks a running
/// server): (success, stdout, stderr).
pub(crate) fn ask(args: &[&str], admin: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(args)
        .arg("--admin-socket")
        .arg(admin)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rackboot binary as a command, inside network namespace `netns` when given.
pub(crate) fn rackboot_in(netns: Option<&str>) -> Command {
    let bin = env!("CARGO_BIN_EXE_rackboot");
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    }
}

/// Tests that load the whole machine (a storm of downloads, perfdhcp at a
/// fixed rate) take turns: run together on two cores, one's load makes the
/// other's load generator drop packets, and the test would blame the server.
pub(crate) fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
