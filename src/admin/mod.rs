//! The admin listener, off the boot network: a Unix socket (default
//! `/run/rackboot/admin.sock`), and TCP only when configured, then with a
//! bearer token. JSON under `/api/v1/`:
//!
//! - `GET /api/v1/status`: generation, uptime, workers, backend, files, reloads;
//! - `GET /api/v1/files`: the files new requests get;
//! - `POST /api/v1/reload`: re-read the configuration and files, publish them
//!   (200 with what was loaded; 422 with the reason when refused, nothing changed);
//! - `GET /api/v1/leases`: every lease of the DHCP worker's tables (IPv4 and
//!   IPv6), or of the shared PostgreSQL store;
//! - `DELETE /api/v1/leases/{ip}`: free one, durably before the answer;
//! - `GET /api/v1/machines`, `GET /api/v1/machines/{mac}`: every machine the
//!   server knows (inventory, API changes, seen, leased) and what it boots;
//! - `PUT`/`PATCH /api/v1/machines/{mac}` (JSON: hostname, profile, labels,
//!   vars, netboot) and `DELETE`: checked against the profiles (422), durable
//!   before the answer;
//! - `GET /api/v1/boots` (`?state=stuck&phase=nbp&q=TEXT&limit=N&history=1`):
//!   the fleet view: machines by state and phase, the stuck first with their
//!   diagnosis; `GET /api/v1/machines/{mac}/boots`: one machine's last boots,
//!   step by step;
//! - `GET /`: the fleet page (static; it asks the API itself);
//! - `GET /metrics`: Prometheus' text format (also alone, without a token, on
//!   `admin.metrics_listen`).
//!
//! Served by tiny_http on its own thread (one request at a time: it is not the
//! boot path, and a reload serialises anyway).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::Admin;
use crate::control::{Control, Refused};
use crate::machines::Mac;

pub mod client;
mod page;

/// Where the admin API listens, bound.
pub struct Listeners {
    unix: Option<(Server, PathBuf)>,
    tcp: Option<(Server, String)>,
    metrics: Option<Server>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("unix", &self.unix.as_ref().map(|u| &u.1))
            .field("tcp", &self.tcp.is_some())
            .finish()
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds the admin socket(s) `admin` names. A socket file left by a server
/// that is gone is replaced; one a live server answers on is not.
///
/// # Errors
/// The socket cannot be bound: the text says where and what to do.
pub fn bind(admin: &Admin) -> Result<Listeners, String> {
    let unix = match &admin.socket {
        Some(path) => match bind_unix(path) {
            Ok(s) => Some((s, path.clone())),
            // The default socket is a convenience: without it the server
            // still serves (SIGHUP still reloads).
            Err(e) if admin.socket_is_default => {
                tracing::warn!(
                    "{e}; the admin API is off (set admin.socket to choose where it listens)"
                );
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let tcp = match &admin.tcp {
        Some(t) => {
            let server = Server::http(t.listen)
                .map_err(|e| format!("admin: cannot listen on {} (admin.listen): {e}", t.listen))?;
            Some((server, t.token.clone()))
        }
        None => None,
    };
    let metrics =
        match admin.metrics {
            Some(addr) => Some(Server::http(addr).map_err(|e| {
                format!("admin: cannot listen on {addr} (admin.metrics_listen): {e}")
            })?),
            None => None,
        };
    Ok(Listeners { unix, tcp, metrics })
}

fn bind_unix(path: &Path) -> Result<Server, String> {
    let fail = |e: &dyn std::fmt::Display, hint: &str| {
        format!(
            "admin: cannot listen on {} (admin.socket): {e}{hint}",
            path.display()
        )
    };
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(fail(
            &"another server answers on it",
            " (stop it, or give this one its own admin.socket)",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(&e, "")),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e, " (its directory cannot be made)"))?;
    }
    let server = Server::http_unix(path).map_err(|e| {
        fail(
            &e,
            " (root or the service's user must be able to write there; or set admin.socket)",
        )
    })?;
    // Only the owner (root or the service's user) may ask a running server to
    // do anything.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(server)
}

impl Listeners {
    /// Serves each listener on its own thread, for the life of the process.
    ///
    /// # Errors
    /// A thread cannot be spawned.
    pub fn serve(mut self, control: Arc<Control>) -> io::Result<()> {
        if let Some((server, path)) = self.unix.take() {
            tracing::info!(socket = %path.display(), "admin API listening");
            let control = Arc::clone(&control);
            std::thread::Builder::new()
                .name("rackboot-admin".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(&control, request, None);
                    }
                    let _ = std::fs::remove_file(&path);
                })?;
        }
        if let Some(server) = self.metrics.take() {
            tracing::info!(addr = %server.server_addr(), "metrics listening (GET /metrics)");
            let control = Arc::clone(&control);
            std::thread::Builder::new()
                .name("rackboot-metrics".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        let response = match (request.method(), request.url()) {
                            (Method::Get, "/metrics") => metrics(&control),
                            _ => error(404, "this listener serves GET /metrics only"),
                        };
                        let _ = request.respond(response);
                    }
                })?;
        }
        if let Some((server, token)) = self.tcp.take() {
            tracing::info!(addr = %server.server_addr(), "admin API listening on TCP (bearer token required)");
            std::thread::Builder::new()
                .name("rackboot-admin-tcp".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(&control, request, Some(&token));
                    }
                })?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

#[derive(Serialize)]
struct Freed {
    freed: std::net::IpAddr,
}

fn json<T: Serialize>(status: u16, body: &T) -> Response<io::Cursor<Vec<u8>>> {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    let mut response = Response::from_data(bytes).with_status_code(status);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        response.add_header(h);
    }
    response
}

/// `GET /metrics`: Prometheus' text format.
fn metrics(control: &Control) -> Response<io::Cursor<Vec<u8>>> {
    let mut response = Response::from_data(control.metrics().into_bytes());
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..]) {
        response.add_header(h);
    }
    response
}

fn error(status: u16, message: &str) -> Response<io::Cursor<Vec<u8>>> {
    json(status, &ErrorBody { error: message })
}

/// Whether `request` carries `Authorization: Bearer <token>` (compared in
/// constant time; the token is never logged).
fn authorized(request: &Request, token: &str) -> bool {
    request.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value
                .as_str()
                .strip_prefix("Bearer ")
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The largest request body read (a machine's JSON).
const MAX_BODY: u64 = 1 << 20;

/// What a fleet view that is off answers.
const FLEET_OFF: &str = "the fleet view is off ([fleet] enabled = false)";

fn answer(control: &Control, mut request: Request, token: Option<&str>) {
    // The page holds no data (it asks the API, with the token), so it is
    // served without one.
    if *request.method() == Method::Get {
        if let Some(response) = page::static_file(request.url()) {
            let _ = request.respond(response);
            return;
        }
    }
    let response = if token.is_some_and(|t| !authorized(&request, t)) {
        error(
            401,
            "this listener needs `Authorization: Bearer <token>` (admin.token_file)",
        )
    } else if request.body_length().is_some_and(|n| n as u64 > MAX_BODY) {
        error(413, "the body is larger than 1 MiB")
    } else {
        let mut body = Vec::new();
        match io::Read::read_to_end(
            &mut io::Read::take(request.as_reader(), MAX_BODY + 1),
            &mut body,
        ) {
            Ok(_) if body.len() as u64 > MAX_BODY => error(413, "the body is larger than 1 MiB"),
            Ok(_) => route(control, request.method(), request.url(), &body),
            Err(e) => error(400, &format!("cannot read the body: {e}")),
        }
    };
    let _ = request.respond(response);
}

fn refused(r: Refused) -> Response<io::Cursor<Vec<u8>>> {
    match r {
        Refused::Bad(e) => error(400, &e),
        Refused::Missing(e) => error(404, &e),
        Refused::Conflict(e) => error(409, &e),
        Refused::Unfit(e) => error(422, &e),
    }
}

fn machines(
    control: &Control,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Response<io::Cursor<Vec<u8>>> {
    if rest.is_empty() {
        return match method {
            Method::Get => match control.machines() {
                Ok(m) => json(200, &m),
                Err(e) => refused(e),
            },
            _ => error(
                405,
                "use GET (a machine's own path takes PUT, PATCH, DELETE)",
            ),
        };
    }
    if let Some(mac) = rest.strip_suffix("/boots") {
        return match (method, Mac::parse(mac)) {
            (Method::Get, Some(mac)) => match control.fleet() {
                None => error(409, FLEET_OFF),
                Some(f) => match f.machine(&mac) {
                    Some(m) => json(200, &m),
                    None => error(404, &format!("no boot of {mac} has been seen (since the start, or since it was forgotten)")),
                },
            },
            (Method::Get, None) => error(400, "the path names no MAC: /api/v1/machines/52:54:00:12:34:56/boots"),
            _ => error(405, "use GET"),
        };
    }
    let Some(mac) = Mac::parse(rest) else {
        return error(
            400,
            "the path names no MAC: /api/v1/machines/52:54:00:12:34:56",
        );
    };
    let done = match method {
        Method::Get => control.machine(mac).map(|m| json(200, &m)),
        Method::Put => control.set_machine(mac, body, true).map(|m| json(200, &m)),
        Method::Patch => control.set_machine(mac, body, false).map(|m| json(200, &m)),
        Method::Delete => control.delete_machine(mac).map(|()| {
            json(
                200,
                &Deleted {
                    deleted: mac.to_string(),
                },
            )
        }),
        _ => return error(405, "use GET, PUT, PATCH or DELETE"),
    };
    done.unwrap_or_else(refused)
}

#[derive(Serialize)]
struct Deleted {
    deleted: String,
}

fn route(
    control: &Control,
    method: &Method,
    url: &str,
    body: &[u8],
) -> Response<io::Cursor<Vec<u8>>> {
    let path = url.split('?').next().unwrap_or(url);
    if let Some(rest) = path.strip_prefix("/api/v1/machines") {
        if rest.is_empty() || rest.starts_with('/') {
            return machines(control, method, rest.trim_start_matches('/'), body);
        }
    }
    match (method, path) {
        (Method::Get, "/api/v1/status") => json(200, &control.status()),
        (Method::Get, "/api/v1/boots") => match control.fleet() {
            None => error(409, FLEET_OFF),
            Some(f) => match page::query(url.split_once('?').map_or("", |q| q.1)) {
                Ok(q) => json(200, &f.summary(&q)),
                Err(e) => error(400, &e),
            },
        },
        (Method::Get, "/api/v1/files") => json(200, &control.files()),
        (Method::Post, "/api/v1/reload") => match control.reload("admin API") {
            Ok(r) => json(200, &r),
            Err(e) => error(
                422,
                &format!("reload refused, still serving the old generation: {e}"),
            ),
        },
        (Method::Get, "/metrics") => metrics(control),
        (Method::Get, "/api/v1/leases") => match control.leases() {
            Ok(l) => json(200, &l),
            Err(e) => error(409, &e),
        },
        (Method::Delete, p) if p.starts_with("/api/v1/leases/") => {
            match p["/api/v1/leases/".len()..].parse() {
                Ok(ip) => match control.free_lease(ip) {
                    Ok(()) => json(200, &Freed { freed: ip }),
                    Err(e) if e.starts_with("no lease") => error(404, &e),
                    Err(e) => error(409, &e),
                },
                Err(_) => error(
                    400,
                    "the path names no address: DELETE /api/v1/leases/10.0.0.5 (or an IPv6 address)",
                ),
            }
        }
        (_, "/api/v1/status" | "/api/v1/files" | "/api/v1/leases" | "/api/v1/boots") => {
            error(405, "use GET")
        }
        (_, "/api/v1/reload") => error(405, "use POST"),
        _ => error(
            404,
            "no such endpoint: GET /api/v1/status, /api/v1/files, /api/v1/leases, /api/v1/machines, \
             /api/v1/boots, /api/v1/machines/{mac}/boots; POST /api/v1/reload; \
             DELETE /api/v1/leases/{ip}; GET/PUT/PATCH/DELETE /api/v1/machines/{mac}; the fleet page at /",
        ),
    }
}
