//! `rackboot status`: the fleet's boots as the running server sees them,
//! through its admin socket. A table of machines by phase with the stuck
//! first and their diagnosis; `--watch` redraws it like top; a MAC shows that
//! machine's timeline; `--compare` sets a storm's report beside the server's
//! counts.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rackboot::admin::client;
use rackboot::config;
use rackboot::fleet::Phase;
use serde_json::Value;

/// Options of `rackboot status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One machine's timeline (its last boots, step by step) instead of the table.
    #[arg(value_name = "MAC")]
    mac: Option<String>,
    /// The server's admin socket [default: /run/rackboot/admin.sock].
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,
    /// Only machines in this state: stuck, booting or booted.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Only machines whose MAC, address, firmware, phase or diagnosis contains TEXT.
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// At most N machines in the table.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// Redraw every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
    /// Compare a storm's JSON report (rackboot storm --json FILE) with the
    /// server's counts, phase by phase; exit 1 when they differ.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mac", "watch"])]
    compare: Option<PathBuf>,
    /// Print the server's JSON instead.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
}

/// Runs it: 0 when shown (and, with --compare, when the counts agree), 1 when
/// the server refused or the counts differ, 2 on a bad option.
pub(crate) fn run(args: &Args) -> ExitCode {
    let socket = args
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_ADMIN_SOCKET));
    let path = match &args.mac {
        Some(mac) => match rackboot::fleet::Mac::parse(mac) {
            Some(m) => format!("/api/v1/machines/{m}/boots"),
            None => {
                eprintln!("rackboot status: {mac:?} is not a MAC: give 52:54:00:12:34:56");
                return ExitCode::from(2);
            }
        },
        None => {
            let mut q = format!("/api/v1/boots?limit={}", args.limit);
            if let Some(s) = &args.state {
                let _ = write!(q, "&state={s}");
            }
            if let Some(s) = &args.search {
                let _ = write!(q, "&q={}", encode(s));
            }
            q
        }
    };
    if let Some(every) = args.watch {
        if !(every.is_finite() && every >= 0.2) {
            eprintln!("rackboot status: --watch takes at least 0.2 seconds");
            return ExitCode::from(2);
        }
        loop {
            let shown = ask(&socket, &path, args).map(|(text, _)| text);
            // Home, clear, then the new view: as top redraws.
            print!("\x1b[H\x1b[2J{}", shown.unwrap_or_else(|e| e + "\n"));
            rackboot::io::clock::pause(Duration::from_secs_f64(every));
        }
    }
    match ask(&socket, &path, args) {
        Ok((text, agree)) => {
            print!("{text}");
            if agree {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What to print for `path` and, with --compare, whether the storm and the
/// server agree (true otherwise); or why it cannot be shown.
fn ask(socket: &std::path::Path, path: &str, args: &Args) -> Result<(String, bool), String> {
    let (status, body) = client::get(socket, path).map_err(|e| format!("rackboot status: {e}"))?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("rackboot status: the server's answer is not JSON: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "rackboot status: refused ({status}): {}",
            v["error"].as_str().unwrap_or(&body)
        ));
    }
    if args.json {
        return Ok((body, true));
    }
    if let Some(file) = &args.compare {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("rackboot status: cannot read {}: {e}", file.display()))?;
        let storm: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "rackboot status: {} is not a storm report: {e}",
                file.display()
            )
        })?;
        return Ok(compare(&storm, &v));
    }
    let text = if args.mac.is_some() {
        timeline(&v)
    } else {
        table(&v)
    };
    Ok((text, true))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// The summary: counts, machines per phase, then the rows.
fn table(v: &Value) -> String {
    let mut out = String::new();
    let states = &v["states"];
    let _ = writeln!(
        out,
        "{} machines: {} stuck, {} booting, {} booted (at most {} tracked; {} forgotten, {} transfers unjoined)",
        n(&v["tracked"]),
        n(&states["stuck"]),
        n(&states["booting"]),
        n(&states["booted"]),
        n(&v["max_machines"]),
        n(&v["forgotten"]),
        n(&v["unjoined"]),
    );
    let at: Vec<String> = Phase::ALL
        .iter()
        .map(|p| format!("{} {}", p.name(), n(&v["at"][p.name()])))
        .collect();
    let _ = writeln!(out, "at: {}", at.join(", "));
    let _ = writeln!(out);
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for m in v["machines"].as_array().into_iter().flatten() {
        let d = &m["diagnosis"];
        rows.push(vec![
            s(&m["state"]).to_owned(),
            s(&m["mac"]).to_owned(),
            s(&m["ip"]).to_owned(),
            s(&m["phase"]).to_owned(),
            s(&m["firmware"]).to_owned(),
            format!("{:.1}", m["seconds"].as_f64().unwrap_or(0.0)),
            if d.is_null() {
                "-".into()
            } else {
                s(&d["code"]).to_owned()
            },
        ]);
        if !d.is_null() {
            details.push((s(&m["mac"]).to_owned(), d.clone()));
        }
    }
    out.push_str(&super::admin::columns(
        &[
            "STATE",
            "MAC",
            "ADDRESS",
            "PHASE",
            "FIRMWARE",
            "SECONDS",
            "DIAGNOSIS",
        ],
        rows,
    ));
    if n(&v["more"]) > 0 {
        let _ = writeln!(
            out,
            "... and {} more (--limit, --state, --search)",
            n(&v["more"])
        );
    }
    for (mac, d) in details {
        let _ = writeln!(out, "\n{mac}: {}: {}", s(&d["code"]), s(&d["summary"]));
        for e in d["evidence"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  {}", s(e));
        }
    }
    out
}

/// One machine's boots, latest first, step by step.
fn timeline(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", s(&v["mac"]), s(&v["ip"]));
    for b in v["boots"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "\nboot: {} at {}, {}",
            s(&b["state"]),
            s(&b["phase"]),
            s(&b["firmware"])
        );
        for st in b["steps"].as_array().into_iter().flatten() {
            let end = if st["end_ms"].is_null() {
                "running".to_owned()
            } else {
                format!("{:.2} s", st["duration_s"].as_f64().unwrap_or(0.0))
            };
            let mut line = format!(
                "  +{:>7.1} s  {:<14} {:<4} {}  {end}",
                st["offset_s"].as_f64().unwrap_or(0.0),
                s(&st["phase"]),
                s(&st["proto"]),
                s(&st["what"]),
            );
            if n(&st["bytes"]) > 0 {
                let _ = write!(line, ", {} bytes", n(&st["bytes"]));
            }
            if n(&st["resends"]) > 0 {
                let _ = write!(line, ", {} resent", n(&st["resends"]));
            }
            if !st["ok"].as_bool().unwrap_or(false) && !st["end_ms"].is_null() {
                let _ = write!(line, ", FAILED");
            }
            if let Some(note) = st["note"].as_str() {
                let _ = write!(line, " ({note})");
            }
            let _ = writeln!(out, "{line}");
        }
        let d = &b["diagnosis"];
        if !d.is_null() {
            let _ = writeln!(out, "  diagnosis: {}: {}", s(&d["code"]), s(&d["summary"]));
            for e in d["evidence"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "    {}", s(e));
            }
        }
    }
    out
}

/// The storm's machines per phase beside the server's, phase by phase: how
/// many machines finished each (a chained script is one machine's, twice);
/// and whether they agree on every phase.
fn compare(storm: &Value, server: &Value) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "{:<16} {:>8} {:>8}", "PHASE", "STORM", "SERVER");
    let mut differ = Vec::new();
    for p in Phase::ALL {
        let theirs = storm["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["phase"] == p.name())
            .map(|x| n(&x["machines"]));
        let ours = n(&server["completed"][p.name()]);
        let Some(theirs) = theirs else {
            if ours > 0 {
                let _ = writeln!(out, "{:<16} {:>8} {:>8}", p.name(), "-", ours);
            }
            continue;
        };
        let mark = if theirs == ours { "" } else { "  <- differ" };
        if theirs != ours {
            differ.push(p.name());
        }
        let _ = writeln!(out, "{:<16} {theirs:>8} {ours:>8}{mark}", p.name());
    }
    let _ = writeln!(
        out,
        "storm: {} booted, {} failed; server: {} booted, {} stuck, {} booting",
        n(&storm["booted"]),
        n(&storm["failed"]),
        n(&server["states"]["booted"]),
        n(&server["states"]["stuck"]),
        n(&server["states"]["booting"]),
    );
    if differ.is_empty() {
        let _ = writeln!(out, "the storm and the server agree on every phase");
    } else {
        let _ = writeln!(out, "they differ at: {}", differ.join(", "));
    }
    (out, differ.is_empty())
}
