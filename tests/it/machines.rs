//! The machines API and install-once over real HTTP: curl on the admin
//! socket and TCP, the `rackboot machines` CLI, iPXE's script requests and an
//! installer's done call, across `kill -9` and a restart.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{ask as cli, curl, Fixture, Server, TempDir};

pub(crate) const CONFIG: &str = r#"
[boot]
default = "rescue"

[[profile]]
name = "debian"
kernel = "/big.bin"
cmdline = "auto=true url={{ config_url }} netboot={{ netboot }}"
config = "preseed.j2"
once = true
[profile.match]
mac = ["52:54:00:aa:*"]

[[profile]]
name = "rescue"
kernel = "/big.bin"
cmdline = "rescue {{ labels.rack | default('no-rack') }} {{ vars.disk | default('-') }}"

[[profile]]
name = "db"
kernel = "/big.bin"
cmdline = "db={{ hostname }}"

[[machine]]
mac = "52:54:00:aa:00:02"
hostname = "web-02"
labels = { rack = "r1" }
"#;

/// The installer's answers: its late command reports done.
const PRESEED: &str =
    "d-i netcfg/get_hostname string {{ hostname }}\nd-i preseed/late_command string wget -q -O /dev/null {{ done_url }}\n";

pub(crate) fn setup(dir: &Path, config: &str) -> String {
    std::fs::write(dir.join("preseed.j2"), PRESEED).unwrap();
    let path = dir.join("rackboot.toml");
    std::fs::write(&path, config).unwrap();
    path.to_str().unwrap().to_owned()
}

pub(crate) fn get(s: &Server, target: &str) -> (u16, String) {
    let (code, _, body) = curl(&[&s.url(target)]);
    (code, String::from_utf8_lossy(&body).into_owned())
}

pub(crate) fn script(s: &Server, mac: &str) -> String {
    let (code, body) = get(
        s,
        &format!("/boot.ipxe?mac={mac}&arch=x86_64&platform=pcbios"),
    );
    assert_eq!(code, 200, "{body}");
    body
}

pub(crate) fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

pub(crate) fn kill_9(s: &Server) {
    assert!(Command::new("kill")
        .args(["-9", &s.pid().to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn the_machines_api_changes_what_a_machine_boots_and_its_changes_survive_kill_9() {
    let f = Fixture::new();
    let dir = TempDir::new("machines");
    let config = setup(&dir.0, CONFIG);
    let state = dir.0.join("machines.state");
    let state = state.to_str().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.0.join("token"), token).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let with_tcp = format!(
        "{CONFIG}\n[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n",
        dir.0.join("token").to_str().unwrap()
    );
    std::fs::write(&config, &with_tcp).unwrap();
    let args = ["--config", &config, "--boot-state-file", state];
    let s = Server::start(&f.root(), &args);
    let mac = "52:54:00:aa:00:02";

    // The file's machine, before any change.
    assert!(script(&s, "52-54-00-aa-00-02").contains("boots profile debian"));
    let (code, body) = s.api("GET", "/api/v1/machines");
    assert_eq!(code, 200, "{body}");
    let all = json(&body);
    let m = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == mac)
        .unwrap_or_else(|| panic!("{mac} not in {body}"));
    assert_eq!(m["hostname"], "web-02");
    assert_eq!(m["profile"], "debian");
    assert_eq!(m["netboot"], "install");
    assert_eq!(m["arch"], "x86_64", "what it said when it asked: {body}");
    assert!(m["known_from"].as_array().unwrap().contains(&"file".into()));

    // PUT pins a profile: the next script request gets it, with the file's
    // labels merged under the API's vars.
    let (code, body) = s.api_json(
        "PUT",
        &format!("/api/v1/machines/{mac}"),
        r#"{"profile":"rescue","vars":{"disk":"/dev/sdb"}}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["profile"], "rescue");
    assert_eq!(json(&body)["hostname"], "web-02", "the file's name stays");
    assert!(
        script(&s, "52-54-00-aa-00-02").contains("rescue r1 /dev/sdb"),
        "{}",
        script(&s, "52-54-00-aa-00-02")
    );

    // Mistakes: the field or value is named, nothing changes.
    let path = format!("/api/v1/machines/{mac}");
    let (code, body) = s.api_json("PATCH", &path, r#"{"hostnme":"x"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("hostnme"), "{body}");
    assert_eq!(s.api_json("PATCH", &path, "{").0, 400);
    let (code, body) = s.api_json("PATCH", &path, r#"{"profile":"nope"}"#);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("\\\"nope\\\"") && body.contains("debian, rescue, db"),
        "{body}"
    );
    let (code, body) = s.api_json("PATCH", &path, r#"{"netboot":"sometimes"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.api_json("PATCH", &path, r#"{"hostname":"bad name"}"#);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("`hostname`"), "{body}");
    assert_eq!(s.api("GET", "/api/v1/machines/02:00:00:00:00:99").0, 404);
    assert_eq!(s.api("GET", "/api/v1/machines/not-a-mac").0, 400);
    assert_eq!(s.api("POST", "/api/v1/machines").0, 405);
    assert!(script(&s, "52-54-00-aa-00-02").contains("rescue r1 /dev/sdb"));

    // Over TCP: 401 without the token.
    let url = format!("http://127.0.0.1:{port}/api/v1/machines/{mac}");
    assert_eq!(curl(&[&url]).0, 401);
    let (code, _, body) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-X",
        "PATCH",
        "--data-binary",
        r#"{"labels":{"rack":"r9"}}"#,
        &url,
    ]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(script(&s, "52-54-00-aa-00-02").contains("rescue r9 /dev/sdb"));

    // The CLI, through the socket.
    let (ok, out, err) = cli(
        &[
            "machines",
            "set",
            "02:00:00:00:00:07",
            "--profile",
            "db",
            "--hostname",
            "db-07",
        ],
        &s.admin,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("02:00:00:00:00:07") && out.contains("db"),
        "{out}"
    );
    assert!(script(&s, "02-00-00-00-00-07").contains("db=db-07"));
    let (ok, _, err) = cli(
        &["machines", "set", "02:00:00:00:00:07", "--profile", "nope"],
        &s.admin,
    );
    assert!(!ok);
    assert!(err.contains("422") && err.contains("nope"), "{err}");
    let (ok, out, err) = cli(&["machines"], &s.admin);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("MAC ") && out.contains(mac) && out.contains("02:00:00:00:00:07"),
        "{out}"
    );

    // kill -9, restart on the same state file: every change is still there.
    kill_9(&s);
    drop(s);
    let s = Server::start(&f.root(), &args);
    assert!(script(&s, "52-54-00-aa-00-02").contains("rescue r9 /dev/sdb"));
    assert!(script(&s, "02-00-00-00-00-07").contains("db=db-07"));

    // A reload whose profiles no longer fit an API change is refused, naming it.
    std::fs::write(&config, with_tcp.replace("name = \"db\"", "name = \"db2\"")).unwrap();
    let (code, body) = s.api("POST", "/api/v1/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("02:00:00:00:00:07") && body.contains("admin API"),
        "{body}"
    );
    assert!(script(&s, "02-00-00-00-00-07").contains("db=db-07"));
    std::fs::write(&config, &with_tcp).unwrap();

    // DELETE drops the API's changes: the file's entry shows again.
    let (code, body) = s.api("DELETE", &path);
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.api("DELETE", &path);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("configuration"), "{body}");
    assert!(script(&s, "52-54-00-aa-00-02").contains("boots profile debian"));
    let (ok, out, err) = cli(&["machines", "delete", "02:00:00:00:00:07"], &s.admin);
    assert!(ok && out.contains("deleted"), "{out}{err}");
    assert!(script(&s, "02-00-00-00-00-07").contains("rescue no-rack"));
}

#[test]
fn install_once_boots_the_installer_until_its_done_url_then_boots_local() {
    let f = Fixture::new();
    let dir = TempDir::new("once");
    let config = setup(&dir.0, CONFIG);
    let state = dir.0.join("machines.state");
    let args = [
        "--config",
        &config,
        "--boot-state-file",
        state.to_str().unwrap(),
    ];
    let s = Server::start(&f.root(), &args);
    let mac = "52-54-00-aa-00-05";

    // Installing: the installer's script and answers, with a done URL.
    let first = script(&s, mac);
    assert!(
        first.contains("kernel http://") && first.contains("netboot=install"),
        "{first}"
    );
    let (code, answers) = get(&s, &format!("/config?mac={mac}"));
    assert_eq!(code, 200);
    let done = answers
        .split_whitespace()
        .find(|w| w.contains("/done/"))
        .unwrap_or_else(|| panic!("no done URL in {answers}"))
        .to_owned();
    assert!(
        done.starts_with(&format!("http://{}/done/{mac}/0/", s.addr)),
        "{done}"
    );

    // A forged or truncated URL does nothing.
    // (The last hex digit changed: to 1 if it is 0, else to 0.)
    let last = if done.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &done[..done.len() - 1]);
    assert_eq!(curl(&[&forged]).0, 404);
    assert_eq!(curl(&[&done[..done.len() - 4]]).0, 404);
    assert!(script(&s, mac).contains("netboot=install"));

    // The installer reports done: from now on, the local-boot script.
    let (code, _, body) = curl(&[&done]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(curl(&[&done]).0, 200, "a repeated done call is harmless");
    let local = script(&s, mac);
    assert!(
        local.starts_with("#!ipxe\n") && local.contains("\nexit\n") && !local.contains("kernel"),
        "{local}"
    );
    let (_, metrics) = s.api("GET", "/metrics");
    assert!(
        metrics.contains("rackboot_machines{netboot=\"local\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rackboot_machines_by_phase{phase=\"local\"} 1"),
        "{metrics}"
    );

    // It stays local across kill -9 and a restart.
    kill_9(&s);
    drop(s);
    let s = Server::start(&f.root(), &args);
    assert!(script(&s, mac).contains("\nexit\n"));
    let (code, body) = s.api("GET", "/api/v1/machines/52:54:00:aa:00:05");
    assert_eq!(code, 200);
    assert_eq!(json(&body)["netboot"], "local");
    assert!(json(&body)["done_at"].as_u64().is_some(), "{body}");

    // The API puts it back to installing: the old done URL is spent (410),
    // the new answers carry a new one.
    let (code, body) = s.api_json(
        "PATCH",
        "/api/v1/machines/52:54:00:aa:00:05",
        r#"{"netboot":"install"}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert!(script(&s, mac).contains("netboot=install"));
    // (The restarted server listens on another port.)
    let done = s.url(&format!("/done/{}", done.split_once("/done/").unwrap().1));
    assert_eq!(curl(&[&done]).0, 410);
    let (_, answers) = get(&s, &format!("/config?mac={mac}"));
    let again = answers
        .split_whitespace()
        .find(|w| w.contains("/done/"))
        .unwrap()
        .to_owned();
    assert!(again.contains("/1/") && again != done, "{again}");
    assert_eq!(curl(&[&again]).0, 200);
    assert!(script(&s, mac).contains("\nexit\n"));

    // `always` never flips; a profile without `once` is `always`.
    let rescue = "02-00-00-00-00-42";
    assert!(script(&s, rescue).contains("rescue"));
    let (code, body) = s.api("GET", "/api/v1/machines/02:00:00:00:00:42");
    assert_eq!(
        (code, json(&body)["netboot"].as_str()),
        (200, Some("always")),
        "{body}"
    );
}

#[test]
fn without_a_state_file_changes_are_refused_not_lost() {
    let f = Fixture::new();
    let dir = TempDir::new("nostate");
    let config = setup(&dir.0, CONFIG);
    // A state file in a directory that cannot be made: the start fails,
    // naming the key, as it was configured.
    let err = refused_start(&config, &f.root(), "/proc/rackboot/machines.state");
    assert!(
        err.contains("boot.state_file") && err.contains("/proc/rackboot"),
        "{err}"
    );
    // Two servers on one state file: the second is refused.
    let state = dir.0.join("machines.state");
    let state = state.to_str().unwrap();
    let s = Server::start(
        &f.root(),
        &["--config", &config, "--boot-state-file", state],
    );
    let err = refused_start(&config, &f.root(), state);
    assert!(err.contains("another rackboot holds it"), "{err}");
    drop(s);
}

/// `rackboot serve` with `state` as its state file, which must fail: its stderr.
fn refused_start(config: &str, root: &Path, state: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["serve", "--config", config, "--http", "127.0.0.1:0"])
        .args(["--admin-socket", "", "--boot-state-file", state, "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}
