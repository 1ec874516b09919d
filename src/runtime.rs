//! Thread-per-core: one pinned worker per core, each with its own SO_REUSEPORT
//! listener and poll loop. Workers share only the read-only snapshot; the first
//! worker to fail ends the server, so a supervisor can restart it whole.
#![forbid(unsafe_code)]

use std::sync::{mpsc, Arc};

use crate::config::{Backend, Config, TftpSend};
use crate::io::{self, http::Worker, socket};
use crate::store::Snapshot;

/// Binds the listeners, logs where it listens, and serves until a worker fails.
///
/// # Errors
/// A listener cannot be bound, or a worker's poller failed.
pub fn serve(config: &Config, snapshot: Arc<Snapshot>) -> Result<(), io::Error> {
    bind(config)?.run(config, snapshot)
}

/// The server's sockets, bound and not yet served: where they listen is known
/// before the files are (the storm's self mode writes it into its boot script).
#[derive(Debug)]
pub struct Bound {
    listeners: Vec<std::net::TcpListener>,
    tftp: Vec<std::net::UdpSocket>,
}

/// Binds the HTTP listeners and, when configured, the TFTP sockets.
///
/// # Errors
/// A listener cannot be bound.
pub fn bind(config: &Config) -> Result<Bound, io::Error> {
    let listeners = socket::reuseport_listeners(config.http.listen, config.workers)?;
    let tftp = match config.tftp {
        Some(t) => io::tftp::reuseport_sockets(t.listen, config.workers)?,
        None => Vec::new(),
    };
    Ok(Bound { listeners, tftp })
}

impl Bound {
    /// Where HTTP listens.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.listeners.first().and_then(|l| l.local_addr().ok())
    }

    /// Where TFTP listens, when it does.
    pub fn tftp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tftp.first().and_then(|s| s.local_addr().ok())
    }

    /// Starts the workers and serves until one fails.
    ///
    /// # Errors
    /// A worker's poller failed, or the DHCP worker could not start.
    pub fn run(self, config: &Config, snapshot: Arc<Snapshot>) -> Result<(), io::Error> {
        let addr = self.http_addr().unwrap_or(config.http.listen);
        let Bound { listeners, tftp } = self;
        run(config, snapshot, addr, listeners, tftp)
    }
}

/// Whether the workers run on io_uring, said in one log line with the reason.
fn uring_chosen(backend: Backend) -> bool {
    let (uring, why) = match backend {
        Backend::Mio => (false, "--backend mio".to_owned()),
        Backend::Uring => (true, "--backend uring".to_owned()),
        Backend::Auto => match io::uring::probe::check() {
            Ok(why) => (true, format!("auto: {why}")),
            Err(why) => (false, format!("auto: io_uring unusable: {why}")),
        },
    };
    let name = if uring { "io_uring" } else { "epoll" };
    tracing::info!(backend = name, reason = %why, "io backend");
    uring
}

fn run(
    config: &Config,
    snapshot: Arc<Snapshot>,
    addr: std::net::SocketAddr,
    listeners: Vec<std::net::TcpListener>,
    tftp_sockets: Vec<std::net::UdpSocket>,
) -> Result<(), io::Error> {
    tracing::info!(%addr, workers = listeners.len(), files = snapshot.len(), bytes = snapshot.total_bytes(), "http listening");
    let uring = uring_chosen(config.backend);
    let cores = socket::allowed_cores();
    let (done, failed) = mpsc::channel();
    for (id, listener) in listeners.into_iter().enumerate() {
        let (snapshot, http, done) = (Arc::clone(&snapshot), config.http, done.clone());
        let boot = config.boot.as_ref().map(|b| Arc::clone(&b.profiles));
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let spawned = std::thread::Builder::new().name(format!("rackboot-w{id}")).spawn(move || {
            if let Some(core) = core {
                if let Err(e) = socket::pin_current_thread(core) {
                    tracing::warn!(worker = id, core, error = %e, "cannot pin worker to its core; running unpinned");
                }
            }
            // io_uring when asked for and its ring can be set up; epoll otherwise.
            let uring = uring.then(|| {
                listener
                    .try_clone()
                    .map_err(|source| io::Error::Poll { worker: id, op: "dup listener", source })
                    .and_then(|l| io::uring::http::Worker::new(id, l, Arc::clone(&snapshot), http, boot.clone()))
            });
            let result = match uring {
                Some(Ok(w)) => w.run(),
                tried => {
                    if let Some(Err(e)) = tried {
                        tracing::warn!(worker = id, error = %e, "io_uring unavailable; this worker uses epoll");
                    }
                    Worker::new(id, listener, snapshot, http)
                        .map(|w| w.with_boot(boot))
                        .and_then(Worker::run)
                }
            };
            let _ = done.send(result);
        });
        if let Err(source) = spawned {
            return Err(io::Error::Poll {
                worker: id,
                op: "spawn worker thread",
                source,
            });
        }
    }
    if let Some(tftp) = config.tftp {
        let tftp_addr = tftp_sockets
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or(tftp.listen);
        tracing::info!(addr = %tftp_addr, workers = tftp_sockets.len(), single_port = tftp.single_port, "tftp listening");
        if !uring && tftp.send == TftpSend::SendmsgZc {
            tracing::warn!("tftp.send = \"sendmsg-zc\" needs the io_uring backend; epoll sends windows with sendmsg");
        }
        // An absolute file name inside the root is served, as dnsmasq does.
        let root = config
            .root
            .as_ref()
            .and_then(|r| std::fs::canonicalize(r).ok())
            .and_then(|r| r.to_str().map(str::to_owned));
        for (id, socket) in tftp_sockets.into_iter().enumerate() {
            let (snapshot, root, done) = (Arc::clone(&snapshot), root.clone(), done.clone());
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("rackboot-t{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        let _ = socket::pin_current_thread(core);
                    }
                    let ring = uring
                        .then(|| {
                            socket.try_clone().map_err(|source| io::Error::Poll {
                                worker: id,
                                op: "dup tftp socket",
                                source,
                            })
                        })
                        .map(|s| {
                            s.and_then(|s| {
                                io::uring::tftp::Worker::new(id, s, Arc::clone(&snapshot), tftp, root.clone())
                            })
                        });
                    let result = match ring {
                        Some(Ok(w)) => w.run(),
                        tried => {
                            if let Some(Err(e)) = tried {
                                tracing::warn!(worker = id, error = %e, "io_uring unavailable; this tftp worker uses epoll");
                            }
                            io::tftp::Worker::new(id, socket, snapshot, tftp, root)
                                .and_then(io::tftp::Worker::run)
                        }
                    };
                    let _ = done.send(result);
                });
            if let Err(source) = spawned {
                return Err(io::Error::Poll {
                    worker: id,
                    op: "spawn tftp thread",
                    source,
                });
            }
        }
    }
    if let Some(dhcp) = &config.dhcp {
        let have = |p: &str| {
            snapshot.get(p).is_some() || config.boot.as_ref().is_some_and(|b| b.profiles.renders(p))
        };
        let mut dhcp = dhcp.clone();
        if dhcp.uefi_snponly
            && crate::proto::dhcp::policy::prefer_snponly(&mut dhcp.settings.rules, have)
        {
            tracing::info!("UEFI PXE firmware gets snponly.efi (dhcp.uefi_snponly)");
        }
        let dhcp = &dhcp;
        for (rule, path) in crate::proto::dhcp::policy::missing_files(&dhcp.settings.rules, have) {
            tracing::warn!(
                rule,
                path,
                "boot rule names a file the root does not hold: clients it matches will not boot"
            );
        }
        // One DHCP worker: the lease table has one owner. It starts before the
        // others report anything, so a bad interface fails the start at once.
        let worker = io::dhcp::Worker::new(dhcp, addr.port(), config.http.settings.access_log)
            .map_err(io::Error::Dhcp)?;
        let done = done.clone();
        let spawned = std::thread::Builder::new()
            .name("rackboot-dhcp".into())
            .spawn(move || {
                let _ = done.send(worker.run());
            });
        if let Err(source) = spawned {
            return Err(io::Error::Poll {
                worker: 0,
                op: "spawn dhcp thread",
                source,
            });
        }
    }
    drop(done);
    match failed.recv() {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
