//! Network namespaces for tests that need several hosts: made per test,
//! removed on drop, with the processes started in them killed on drop.

use std::process::{Child, Command, Stdio};

use crate::support::run;

/// Namespaces made for one test, removed on drop.
pub(crate) struct Net {
    tag: String,
    spaces: Vec<String>,
}

impl Net {
    pub(crate) fn new(tag: &str) -> Self {
        assert!(
            run("id", &["-u"]).stdout.starts_with(b"0\n"),
            "network namespace tests need root: run tests/run as root (CI does)"
        );
        Self {
            tag: format!("rbd{tag}{}", std::process::id()),
            spaces: Vec::new(),
        }
    }

    /// A namespace with loopback up.
    pub(crate) fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.tag);
        let _ = run("ip", &["netns", "del", &ns]);
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        self.spaces.push(ns.clone());
        ns
    }

    /// A veth pair between `a` and `b` (made inside `a`, so no name ever meets
    /// another test's in the root namespace), with optional addresses.
    pub(crate) fn veth(
        a: &str,
        a_if: &str,
        a_ip: Option<&str>,
        b: &str,
        b_if: &str,
        b_ip: Option<&str>,
    ) {
        sh(&format!(
            "ip -n {a} link add {a_if} type veth peer name {b_if} netns {b}"
        ));
        for (ns, ifname, ip) in [(a, a_if, a_ip), (b, b_if, b_ip)] {
            if let Some(ip) = ip {
                sh(&format!("ip -n {ns} addr add {ip} dev {ifname}"));
            }
            sh(&format!("ip -n {ns} link set {ifname} up"));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.spaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

pub(crate) fn sh(cmd: &str) -> String {
    let o = run("sh", &["-c", cmd]);
    assert!(
        o.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn in_ns(ns: &str, cmd: &str) -> std::process::Output {
    run("ip", &["netns", "exec", ns, "sh", "-c", cmd])
}

/// The scripted client's JSON lines, as one string (it prints offers and the ACK).
pub(crate) fn spawn_in(ns: &str, cmd: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A process stopped on drop: SIGTERM first (nginx's master then stops its
/// workers; SIGKILL would orphan them), SIGKILL after 2 s.
pub(crate) struct Kill(pub(crate) Child);

impl Kill {
    /// Waits for the process to exit by itself, at most `limit`; whether it did.
    pub(crate) fn wait_at_most(&mut self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
