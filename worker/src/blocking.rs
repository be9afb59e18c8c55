//! Blocking file work on the path of a hop (the attempt dir, the pid
//! record, the terminal event): on a multi-thread runtime it runs in place
//! (`block_in_place` hands this thread's other tasks to another thread and
//! starts the work at once), instead of waiting for a blocking-pool thread
//! to wake up and for this task to be woken again, a round trip that costs
//! more than the few file operations themselves. On a current-thread
//! runtime (where that is not allowed) it goes to the blocking pool.

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinError;

pub(crate) async fn run<T, F>(f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        Ok(tokio::task::block_in_place(f))
    } else {
        tokio::task::spawn_blocking(f).await
    }
}
