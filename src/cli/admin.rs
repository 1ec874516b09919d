//! The subcommands that ask a running server through its admin socket:
//! `rackboot reload`, `rackboot machines ...` and `rackboot leases ...`. Each
//! prints the server's answer (a table, or its JSON with `--json`) and exits
//! non-zero, with the server's reason, when it refuses.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use rackboot::admin::client;
use rackboot::config;
use serde_json::{json, Map, Value};

/// Where to reach the server.
#[derive(Debug, clap::Args)]
pub(crate) struct Socket {
    /// The server's admin socket [default: /run/rackboot/admin.sock].
    #[arg(long, value_name = "PATH", global = true)]
    admin_socket: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl Socket {
    /// The socket `serve`'s flag names (a table out).
    pub(crate) fn from_common(admin_socket: Option<PathBuf>) -> Self {
        Self {
            admin_socket,
            json: false,
        }
    }

    fn path(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_ADMIN_SOCKET))
    }
}

/// `rackboot machines`.
#[derive(Debug, clap::Args)]
pub(crate) struct MachinesArgs {
    #[command(flatten)]
    socket: Socket,
    #[command(subcommand)]
    action: Option<MachineAction>,
}

#[derive(Debug, Subcommand)]
enum MachineAction {
    /// Every machine the server knows (the default).
    List,
    /// One machine, whole.
    Show {
        /// Its MAC.
        mac: String,
    },
    /// Change a machine (PATCH: what is not given stays), durably.
    Set {
        /// Its MAC.
        mac: String,
        /// Its name in templates.
        #[arg(long)]
        hostname: Option<String>,
        /// Pin it to this profile ("" removes the API's pin).
        #[arg(long)]
        profile: Option<String>,
        /// install, local or always.
        #[arg(long)]
        netboot: Option<String>,
        /// A label, KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// A template variable, KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        var: Vec<String>,
        /// Remove a label the API set (repeatable).
        #[arg(long, value_name = "KEY")]
        unset_label: Vec<String>,
        /// Remove a variable the API set (repeatable).
        #[arg(long, value_name = "KEY")]
        unset_var: Vec<String>,
        /// Replace the API's whole record with what is given (PUT).
        #[arg(long)]
        replace: bool,
    },
    /// Drop the API's changes to a machine and what it was seen doing.
    Delete {
        /// Its MAC.
        mac: String,
    },
}

/// What `rackboot leases` asks the running server.
#[derive(Debug, Subcommand)]
pub(crate) enum LeaseAction {
    /// Every lease the running server holds (the default without
    /// --dhcp-lease-file or --config).
    List {
        #[command(flatten)]
        socket: Socket,
    },
    /// Free the lease on an address, durably.
    Free {
        /// The address (IPv4 or IPv6).
        ip: std::net::IpAddr,
        #[command(flatten)]
        socket: Socket,
    },
}

/// Prints a 2xx answer with `table` (or as JSON); anything else is a refusal.
fn finish(
    what: &str,
    json_out: bool,
    answer: Result<(u16, String), String>,
    table: impl FnOnce(&Value) -> String,
) -> ExitCode {
    match answer {
        Ok((status, body)) if (200..300).contains(&status) => {
            if json_out {
                print!("{body}");
            } else {
                match serde_json::from_str::<Value>(&body) {
                    Ok(v) => print!("{}", table(&v)),
                    Err(_) => print!("{body}"),
                }
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let reason = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            eprintln!("rackboot {what}: refused ({status}): {}", reason.trim_end());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rackboot {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pairs(list: &[String], unset: &[String], flag: &str) -> Result<Option<Value>, String> {
    if list.is_empty() && unset.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for item in list {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--{flag} {item:?}: write KEY=VALUE"))?;
        map.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    for k in unset {
        map.insert(k.clone(), Value::Null);
    }
    Ok(Some(Value::Object(map)))
}

/// `rackboot machines ...`.
pub(crate) fn machines(args: &MachinesArgs) -> ExitCode {
    let socket = args.socket.path();
    let json_out = args.socket.json;
    let path = |mac: &str| format!("/api/v1/machines/{mac}");
    match args.action.as_ref().unwrap_or(&MachineAction::List) {
        MachineAction::List => finish(
            "machines",
            json_out,
            client::get(&socket, "/api/v1/machines"),
            machine_table,
        ),
        MachineAction::Show { mac } => finish(
            "machines show",
            true,
            client::get(&socket, &path(mac)),
            |_| String::new(),
        ),
        MachineAction::Delete { mac } => finish(
            "machines delete",
            json_out,
            client::request(&socket, "DELETE", &path(mac), b""),
            |v| format!("deleted {}\n", v["deleted"].as_str().unwrap_or(mac)),
        ),
        MachineAction::Set {
            mac,
            hostname,
            profile,
            netboot,
            label,
            var,
            unset_label,
            unset_var,
            replace,
        } => {
            let mut body = Map::new();
            if let Some(h) = hostname {
                body.insert("hostname".into(), json!(h));
            }
            if let Some(p) = profile {
                body.insert(
                    "profile".into(),
                    if p.is_empty() { Value::Null } else { json!(p) },
                );
            }
            if let Some(n) = netboot {
                body.insert("netboot".into(), json!(n));
            }
            for (key, list, unset, flag) in [
                ("labels", label, unset_label, "label"),
                ("vars", var, unset_var, "var"),
            ] {
                match pairs(list, unset, flag) {
                    Ok(Some(v)) => {
                        body.insert(key.into(), v);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("rackboot machines set: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let body = Value::Object(body).to_string();
            let method = if *replace { "PUT" } else { "PATCH" };
            finish(
                "machines set",
                json_out,
                client::request(&socket, method, &path(mac), body.as_bytes()),
                |v| machine_table(&Value::Array(vec![v.clone()])),
            )
        }
    }
}

/// `rackboot leases list|free` through the running server.
pub(crate) fn leases(action: &LeaseAction) -> ExitCode {
    match action {
        LeaseAction::List { socket } => {
            let path = socket.path();
            finish(
                "leases",
                socket.json,
                client::get(&path, "/api/v1/leases"),
                lease_table,
            )
        }
        LeaseAction::Free { ip, socket } => {
            let path = socket.path();
            finish(
                "leases free",
                socket.json,
                client::request(&path, "DELETE", &format!("/api/v1/leases/{ip}"), b""),
                |_| format!("freed {ip}\n"),
            )
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Rows as aligned columns under `head`.
pub(crate) fn columns(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn machine_table(v: &Value) -> String {
    let now = rackboot::io::clock::unix_now();
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let seen = m["last_seen"]
                        .as_u64()
                        .map_or("-".into(), |t| format!("{}s ago", now.saturating_sub(t)));
                    vec![
                        text(&m["mac"]),
                        text(&m["ip"]),
                        text(&m["hostname"]),
                        text(&m["profile"]),
                        text(&m["netboot"]),
                        text(&m["phase"]),
                        seen,
                        text(&m["known_from"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    columns(
        &[
            "MAC",
            "IP",
            "HOSTNAME",
            "PROFILE",
            "NETBOOT",
            "PHASE",
            "LAST SEEN",
            "KNOWN FROM",
        ],
        rows,
    )
}

fn lease_table(v: &Value) -> String {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    vec![
                        text(&l["ip"]),
                        text(&l["mac"]),
                        text(&l["state"]),
                        text(&l["expires"]),
                        text(&l["hostname"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    columns(&["IP", "MAC", "STATE", "EXPIRES", "HOSTNAME"], rows)
}
