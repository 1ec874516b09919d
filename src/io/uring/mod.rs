//! The io_uring backend: workers that drive the same sans-IO engines as the mio
//! backend, from completions instead of readiness. `probe` decides whether it
//! can run here (`--backend auto`); `ring` is the ring with its provided
//! buffers; `driver` the slab of operations in flight, each of a kind in `op/`
//! that owns its buffers until its last completion; `http`, `tftp` and `dhcp`
//! are the workers, which keep protocol decisions only.

mod bufs;
pub mod dhcp;
mod driver;
pub mod http;
mod op;
pub mod probe;
mod ring;
pub mod tftp;
mod zc;
