//! Dev-only helpers shared by Orca's test suites.
//!
//! - [`EtcdServer`]: a real single-node etcd (Debian's `etcd` binary) on free
//!   loopback ports with a temporary data dir, which tests can SIGKILL and
//!   restart on the same data dir and ports.
//! - [`free_port`]: a currently free loopback TCP port.
//! - [`TestDb`]: a temporary SQLite database, or a fresh PostgreSQL one.

mod db;
mod etcd;

pub use db::{POSTGRES_URL_ENV, SKIP_POSTGRES_ENV, TestDb};
pub use etcd::{EtcdServer, TestkitError};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
///
/// # Panics
/// When no loopback port can be bound at all (the test cannot run).
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|e| panic!("ORCA-TESTKIT-PORT: no free loopback port: {e}"))
}

/// Fallible [`free_port`].
pub fn try_free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
