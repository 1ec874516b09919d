//! Thread-per-core: one pinned worker per core, each with its own SO_REUSEPORT
//! listener and poll loop, all started by one function ([`spawn`]: thread,
//! pinning, io_uring with its epoll fallback). Workers share only the
//! published snapshot (store::Published); the first worker to fail ends the
//! server, so a supervisor can restart it whole.
#![forbid(unsafe_code)]

use std::sync::{mpsc, Arc};

use crate::config::{Backend, Config, TftpSend};
use crate::control::{Control, Rebuild};
use crate::io::{self, http::Worker, socket};
use crate::machines::Book;
use crate::metrics::Metrics;
use crate::store::{Published, Snapshot};

/// Binds the listeners, logs where it listens, and serves `snapshot` (with
/// the config's boot profiles) until a worker fails. SIGHUP and the admin
/// API's reload publish what `rebuild` makes.
///
/// # Errors
/// A listener cannot be bound, or a worker's poller failed.
pub fn serve(
    config: &Config,
    snapshot: Snapshot,
    rebuild: Rebuild,
    watch: Vec<crate::watch::Watch>,
) -> Result<(), io::Error> {
    // Every connection and transfer is a descriptor: the soft limit goes up
    // to the hard one, and a hard limit below what the config allows is said.
    let want = config.workers * config.http.max_connections
        + config.tftp.as_ref().map_or(0, |t| t.max_transfers)
        + 1024;
    let (limit, short) = crate::io::fd_limit::raise(want);
    if let Some(why) = short {
        tracing::info!(
            limit,
            want,
            "http.max_connections x workers and tftp.max_transfers need {want} descriptors; \
             past {limit} new connections wait in the queue. Bound by {why}"
        );
    }
    let bound = bind(config)?;
    // Once each thread has its sockets, it keeps only what a reload needs:
    // page-locking a new generation's files.
    crate::io::caps::set_kept(if config.store.mlock {
        &[crate::io::caps::CAP_IPC_LOCK]
    } else {
        &[]
    });
    let book = open_book(config).map_err(io::Error::Admin)?;
    let published = publish(config, snapshot, &book).map_err(io::Error::Admin)?;
    let mailbox = match &config.dhcp {
        Some(_) => Some(io::dhcp::Mailbox::new().map_err(|source| io::Error::Poll {
            worker: 0,
            op: "dhcp mailbox (eventfd)",
            source,
        })?),
        None => None,
    };
    // The DHCP worker's sockets (port 67, raw frames, probes) open here, on
    // the main thread, before any thread starts.
    let dhcp = bound
        .open_dhcp(config, &published)?
        .map(|server| server.with_mailbox(mailbox.clone()))
        .transpose()
        .map_err(io::Error::Dhcp)?;
    // Every socket a capability opens is open: from here the main thread, and
    // every thread it starts (ours and the libraries'), keeps only what a
    // reload needs. (The admin API listens on a Unix socket, or TCP ports
    // that need none.)
    match crate::io::caps::settle() {
        Ok(0) => {}
        Ok(dropped) => {
            let kept = crate::io::caps::permitted().unwrap_or(0);
            tracing::info!(
                dropped = %crate::io::caps::names(dropped),
                kept = %crate::io::caps::names(kept),
                "capabilities: every socket is open; those only opening them needed are dropped"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot drop capabilities"),
    }
    let (sink, fleet) = match &config.fleet {
        Some(f) => {
            let (sink, view) =
                crate::fleet::collect::start(f.limits, f.timers, Some(Arc::clone(&published)))
                    .map_err(|source| io::Error::Poll {
                        worker: 0,
                        op: "spawn the fleet view's thread",
                        source,
                    })?;
            book.set_fleet(sink.clone());
            (sink, Some(view))
        }
        None => (crate::fleet::Sink::off(), None),
    };
    let metrics = Arc::new(bound.metrics().with_fleet(sink));
    let control = Arc::new(
        Control::new(
            config,
            Arc::clone(&published),
            rebuild,
            mailbox.clone(),
            Arc::clone(&metrics),
            book,
        )
        .with_fleet(fleet),
    );
    let admin = crate::admin::bind(&config.admin).map_err(io::Error::Admin)?;
    admin
        .serve(Arc::clone(&control))
        .map_err(|source| io::Error::Poll {
            worker: 0,
            op: "spawn the admin thread",
            source,
        })?;
    if !watch.is_empty() {
        crate::watch::spawn(watch, Arc::clone(&control)).map_err(io::Error::Admin)?;
    }
    reload_on_sighup(control)?;
    bound.run_with(config, published, metrics, dhcp)
}

/// A thread that reloads at each SIGHUP.
fn reload_on_sighup(control: Arc<Control>) -> Result<(), io::Error> {
    let spawn_failed = |source| io::Error::Poll {
        worker: 0,
        op: "handle SIGHUP",
        source,
    };
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]).map_err(spawn_failed)?;
    std::thread::Builder::new()
        .name("rackboot-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                // The outcome is logged by the reload itself.
                let _ = control.reload("SIGHUP");
            }
        })
        .map(drop)
        .map_err(spawn_failed)
}

/// The machines' book of a server with `config`: the PostgreSQL store when
/// one is configured, else its state file when it serves profiles. A default file that cannot be opened leaves the admin
/// API's machine changes and install-once off, with a warning; a configured
/// one stops the start.
///
/// # Errors
/// `boot.state_file` (or `--boot-state-file`) cannot be opened or read.
pub fn open_book(config: &Config) -> Result<Arc<Book>, String> {
    let Some(boot) = &config.boot else {
        return Ok(Arc::new(Book::memory(
            "this server started without boot profiles, so it keeps no machines state file",
        )));
    };
    if let Some(target) = &boot.shared {
        return Book::open_shared(target);
    }
    let (path, default) = &boot.state_file;
    match Book::open(path) {
        Ok(b) => Ok(Arc::new(b)),
        Err(e) if *default => {
            tracing::warn!("{e}; machine changes through the admin API and install-once are off (set boot.state_file)");
            Ok(Arc::new(Book::memory(&format!(
                "{e}: set boot.state_file to a file this server can write, and restart"
            ))))
        }
        Err(e) => Err(format!("{e} (boot.state_file)")),
    }
}

/// The first generation: `snapshot` with the config's boot profiles and
/// the machines of `book`.
///
/// # Errors
/// A machine the admin API changed no longer fits the profiles.
pub fn publish(
    config: &Config,
    snapshot: Snapshot,
    book: &Arc<Book>,
) -> Result<Arc<Published>, String> {
    let profiles = match &config.boot {
        Some(b) => Some(Arc::new(b.profiles.with_book(Arc::clone(book))?)),
        None => None,
    };
    Ok(Published::new(Arc::new(snapshot.with_profiles(profiles))))
}

/// The server's sockets, bound and not yet served: where they listen is known
/// before the files are (the storm's self mode writes it into its boot script).
#[derive(Debug)]
pub struct Bound {
    listeners: Vec<std::net::TcpListener>,
    tftp: Vec<std::net::UdpSocket>,
    /// The HTTPS listener, when `[http] tls_cert` is set.
    https: Option<std::net::TcpListener>,
}

/// Binds the HTTP listeners and, when configured, the TFTP sockets.
///
/// # Errors
/// A listener cannot be bound.
pub fn bind(config: &Config) -> Result<Bound, io::Error> {
    let listeners = socket::reuseport_listeners(config.http.listen, config.workers)?;
    let tftp = match &config.tftp {
        Some(t) => io::tftp::reuseport_sockets(t.listen, config.workers)?,
        None => Vec::new(),
    };
    let https = match &config.https {
        Some(h) => socket::reuseport_listeners(h.listen, 1)?.pop(),
        None => None,
    };
    Ok(Bound {
        listeners,
        tftp,
        https,
    })
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

    /// Starts the workers and serves until one fails. New requests are
    /// served from what `published` holds when they arrive.
    ///
    /// # Errors
    /// A worker's poller failed, or the DHCP worker could not start.
    pub fn run(self, config: &Config, published: Arc<Published>) -> Result<(), io::Error> {
        let metrics = Arc::new(self.metrics());
        let dhcp = match self.open_dhcp(config, &published)? {
            // The lease store's thread posts to a mailbox.
            Some(s) if s.needs_mailbox() => {
                let m = io::dhcp::Mailbox::new().map_err(|source| io::Error::Poll {
                    worker: 0,
                    op: "dhcp mailbox (eventfd)",
                    source,
                })?;
                Some(s.with_mailbox(Some(m)).map_err(io::Error::Dhcp)?)
            }
            other => other,
        };
        self.run_with(config, published, metrics, dhcp)
    }

    /// The DHCP worker's server (port 67, raw frames, probes), when
    /// `[dhcp]` is on: its sockets open on the calling thread.
    ///
    /// # Errors
    /// A socket or the lease journal cannot be opened.
    fn open_dhcp(
        &self,
        config: &Config,
        published: &Published,
    ) -> Result<Option<io::dhcp::Server>, io::Error> {
        let Some(d) = &config.dhcp else {
            return Ok(None);
        };
        let d = io::dhcp::prepare(d, &published.current());
        if d.v6.is_some() {
            // DHCPv6 names [server6] in boot URLs: a listener on one IPv4
            // address cannot answer them.
            let v4_only = |a: std::net::SocketAddr| a.is_ipv4();
            let http = self.http_addr().unwrap_or(config.http.listen);
            let tftp = self.tftp_addr().or(config.tftp.as_ref().map(|t| t.listen));
            for (key, addr) in [("http.listen", Some(http)), ("tftp.listen", tftp)] {
                if let Some(a) = addr.filter(|a| v4_only(*a)) {
                    tracing::warn!(
                        key,
                        addr = %a,
                        "dhcp6: this listener is IPv4 only, but IPv6 machines are given boot URLs on the \
                         interface's IPv6 address: listen on [::] (both families), or leave the key out"
                    );
                }
            }
        }
        let port = self.http_addr().unwrap_or(config.http.listen).port();
        io::dhcp::Server::open(&d, port, config.http.settings.access_log)
            .map(Some)
            .map_err(io::Error::Dhcp)
    }

    /// Counters for the workers these sockets get.
    fn metrics(&self) -> Metrics {
        // The HTTPS worker's block follows the HTTP workers'.
        Metrics::new(
            self.listeners.len() + usize::from(self.https.is_some()),
            self.tftp.len(),
        )
    }

    /// As [`Self::run`], with the DHCP worker's server already open.
    fn run_with(
        self,
        config: &Config,
        published: Arc<Published>,
        metrics: Arc<Metrics>,
        dhcp: Option<io::dhcp::Server>,
    ) -> Result<(), io::Error> {
        let addr = self.http_addr().unwrap_or(config.http.listen);
        let Bound {
            listeners,
            tftp,
            https,
        } = self;
        let sockets = Sockets {
            listeners,
            tftp,
            https,
        };
        run(config, published, metrics, dhcp, addr, sockets)
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

/// A worker's body, moved to its own thread.
type Run = Box<dyn FnOnce() -> Result<(), io::Error> + Send>;
/// A body built on the thread that runs it (an io_uring worker's ring
/// belongs to its thread and never moves).
type Local = Box<dyn FnOnce() -> Result<(), io::Error>>;
/// Builds an io_uring worker's body on its thread; an `Err` falls back to
/// the epoll body.
type Ring = Box<dyn FnOnce() -> Result<Local, io::Error> + Send>;

/// The one way a worker starts: its own thread, pinned to `core`, on
/// io_uring when `uring` is given and its ring can be set up, else on epoll;
/// its end (only a failure) goes to `done`, which ends the server.
fn spawn(
    name: String,
    worker: usize,
    core: Option<usize>,
    done: &mpsc::Sender<Result<(), io::Error>>,
    uring: Option<Ring>,
    epoll: Run,
) -> Result<(), io::Error> {
    let done = done.clone();
    let what = name.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Some(core) = core {
                if let Err(e) = socket::pin_current_thread(core) {
                    tracing::warn!(thread = %what, core, error = %e, "cannot pin worker to its core; running unpinned");
                }
            }
            let run: Local = match uring.map(|make| make()) {
                Some(Ok(run)) => run,
                Some(Err(e)) => {
                    tracing::warn!(thread = %what, error = %e, "io_uring unavailable; this worker uses epoll");
                    epoll
                }
                None => epoll,
            };
            let _ = done.send(run());
        })
        .map(drop)
        .map_err(|source| io::Error::Poll {
            worker,
            op: "spawn worker thread",
            source,
        })
}

/// The io_uring body of a worker whose socket `dup` is (a duplicate of the
/// epoll body's), when `uring` is chosen.
fn ring<S: Send + 'static>(
    uring: bool,
    worker: usize,
    op: &'static str,
    dup: std::io::Result<S>,
    make: impl FnOnce(S) -> Result<Local, io::Error> + Send + 'static,
) -> Option<Ring> {
    if !uring {
        return None;
    }
    Some(match dup {
        Ok(s) => Box::new(move || make(s)),
        Err(source) => Box::new(move || Err(io::Error::Poll { worker, op, source })),
    })
}

/// The bound sockets, as the workers take them.
struct Sockets {
    listeners: Vec<std::net::TcpListener>,
    tftp: Vec<std::net::UdpSocket>,
    https: Option<std::net::TcpListener>,
}

fn run(
    config: &Config,
    published: Arc<Published>,
    metrics: Arc<Metrics>,
    dhcp: Option<io::dhcp::Server>,
    addr: std::net::SocketAddr,
    sockets: Sockets,
) -> Result<(), io::Error> {
    let Sockets {
        listeners,
        tftp: tftp_sockets,
        https,
    } = sockets;
    // Held only while starting: this function lives as long as the server,
    // and an Arc kept here would keep the first generation in memory.
    let snapshot = published.current();
    tracing::info!(%addr, workers = listeners.len(), files = snapshot.len(), bytes = snapshot.total_bytes(), "http listening");
    drop(snapshot);
    let uring = uring_chosen(config.backend);
    let cores = socket::allowed_cores();
    let core = |id: usize| (!cores.is_empty()).then(|| cores[id % cores.len()]);
    let (done, failed) = mpsc::channel();
    let workers = listeners.len();
    for (id, listener) in listeners.into_iter().enumerate() {
        let http = config.http;
        let (p, m) = (Arc::clone(&published), Arc::clone(&metrics));
        let ring = ring(uring, id, "dup listener", listener.try_clone(), move |l| {
            let w = io::uring::http::Worker::new(id, l, p, http, m)?;
            Ok(Box::new(move || w.run()) as Local)
        });
        let (published, metrics) = (Arc::clone(&published), Arc::clone(&metrics));
        let epoll: Run = Box::new(move || {
            Worker::new(id, listener, published, http, metrics).and_then(Worker::run)
        });
        spawn(format!("rackboot-w{id}"), id, core(id), &done, ring, epoll)?;
    }
    if let (Some(listener), Some(h)) = (https, &config.https) {
        // One epoll worker: TLS costs a copy and the cipher per byte, and is
        // for the clients that ask for it; plain HTTP keeps its paths.
        let id = workers;
        let https_addr = listener.local_addr().unwrap_or(h.listen);
        tracing::info!(addr = %https_addr, cert = %h.cert.display(), "https listening");
        let (http, server) = (config.http, Arc::clone(&h.server));
        let (published, metrics) = (Arc::clone(&published), Arc::clone(&metrics));
        let epoll: Run = Box::new(move || {
            Worker::new(id, listener, published, http, metrics)
                .map(|w| w.with_tls(server))
                .and_then(Worker::run)
        });
        spawn("rackboot-tls".into(), id, core(id), &done, None, epoll)?;
    }
    if let Some(tftp) = &config.tftp {
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
            let (p, r, m) = (Arc::clone(&published), root.clone(), Arc::clone(&metrics));
            let on_ring = tftp.clone();
            let ring = ring(uring, id, "dup tftp socket", socket.try_clone(), move |s| {
                let w = io::uring::tftp::Worker::new(id, s, p, on_ring, r, m)?;
                Ok(Box::new(move || w.run()) as Local)
            });
            let (published, root, metrics) =
                (Arc::clone(&published), root.clone(), Arc::clone(&metrics));
            let on_epoll = tftp.clone();
            let epoll: Run = Box::new(move || {
                io::tftp::Worker::new(id, socket, published, on_epoll, root, metrics)
                    .and_then(io::tftp::Worker::run)
            });
            spawn(format!("rackboot-t{id}"), id, core(id), &done, ring, epoll)?;
        }
    }
    if let Some(server) = dhcp {
        // One DHCP worker: the lease table has one owner. Its sockets and
        // journal opened before the others, so a bad interface failed the
        // start at once; its thread runs it on io_uring or, failing that, on
        // epoll.
        let server = server.with_fleet(metrics.fleet().clone());
        let server = Arc::new(std::sync::Mutex::new(Some(server)));
        let take = |s: &Arc<std::sync::Mutex<Option<io::dhcp::Server>>>| {
            s.lock()
                .ok()
                .and_then(|mut s| s.take())
                .ok_or_else(|| io::Error::Dhcp("dhcp: the server was started twice".into()))
        };
        let on_ring = Arc::clone(&server);
        let ring = uring.then(|| -> Ring {
            Box::new(
                move || match io::uring::dhcp::Worker::new(take(&on_ring)?) {
                    Ok(w) => Ok(Box::new(move || w.run()) as Local),
                    Err(failed) => {
                        let (e, back) = *failed;
                        if let Ok(mut s) = on_ring.lock() {
                            *s = Some(back);
                        }
                        Err(e)
                    }
                },
            )
        });
        let epoll: Run = Box::new(move || io::dhcp::epoll::Worker::new(take(&server)?)?.run());
        spawn("rackboot-dhcp".into(), 0, None, &done, ring, epoll)?;
    }
    drop(done);
    match failed.recv() {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
