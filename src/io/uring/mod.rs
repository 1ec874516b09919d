//! The io_uring backend: workers that drive the same sans-IO engines as the mio
//! backend, from completions instead of readiness. `probe` decides whether it
//! can run here (`--backend auto`); `ring` holds what every worker shares;
//! `http` and `tftp` are the workers.

mod bufs;
pub mod http;
pub mod probe;
mod ring;
pub mod tftp;
mod zc;
