//! One etcd lease and the task keeping it: keepalives, rewrites of the key
//! it carries, revocation, and loss by the holder's own clock.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Ctx, REQUEST_TIMEOUT, timed};
use crate::registry::RegistryError;

/// Deadline of the best-effort revoke of a lease given up by its holder.
const GIVE_UP_REVOKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Handle on a lease kept by a background task. Cloning shares the lease.
#[derive(Clone)]
pub(crate) struct LeaseHandle {
    pub id: i64,
    /// `true` once the holder must stop acting under this lease.
    pub lost: watch::Receiver<bool>,
    lost_tx: Arc<watch::Sender<bool>>,
    revoke: CancellationToken,
}

impl LeaseHandle {
    /// Marks the lease lost (the holder must stop acting); returns whether
    /// it already was.
    pub fn mark_lost(&self) -> bool {
        self.lost_tx.send_replace(true)
    }

    /// Marks the lease lost now and asks the task to revoke it in etcd.
    pub fn revoke(&self) {
        self.lost_tx.send_replace(true);
        self.revoke.cancel();
    }
}

/// Grants a lease, writes `key` (if any) under it, and spawns its keeper.
/// Returns the handle and, with a key, the sender of its later values
/// (last value wins; written by the keeper task).
pub(crate) async fn grant(
    ctx: &Ctx,
    what: String,
    key: Option<(String, Vec<u8>)>,
) -> Result<(LeaseHandle, Option<watch::Sender<Vec<u8>>>), RegistryError> {
    let mut leases = ctx.client.lease_client();
    // The window is counted from before the grant request: conservative.
    let started = Instant::now();
    let granted = timed(
        "lease grant",
        REQUEST_TIMEOUT,
        leases.grant(ctx.cfg.ttl_secs(), None),
    )
    .await?;
    let id = granted.id();
    let mut value_chan = None;
    if let Some((key, value)) = key {
        let mut kv = ctx.client.kv_client();
        let put = timed(
            "put",
            REQUEST_TIMEOUT,
            kv.put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(id)),
            ),
        )
        .await;
        if let Err(e) = put {
            let _ = timed("lease revoke", GIVE_UP_REVOKE_TIMEOUT, leases.revoke(id)).await;
            return Err(e);
        }
        let (tx, rx) = watch::channel(value);
        value_chan = Some((key, rx, tx));
    }
    let (lost_tx, lost) = watch::channel(false);
    let handle = LeaseHandle {
        id,
        lost,
        lost_tx: Arc::new(lost_tx),
        revoke: ctx.shutdown.child_token(),
    };
    let (updates, tx) = match value_chan {
        Some((key, rx, tx)) => (Some((key, rx)), Some(tx)),
        None => (None, None),
    };
    tracing::debug!(lease = id, %what, "lease granted");
    tokio::spawn(keep(ctx.clone(), handle.clone(), what, started, updates));
    Ok((handle, tx))
}

enum KeepAlive {
    Alive,
    Expired,
    Failed(String),
}

/// One keepalive round trip, (re)opening the keepalive stream when needed.
async fn keep_alive_once(
    leases: &mut LeaseClient,
    id: i64,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> KeepAlive {
    if let Some((keeper, responses)) = stream.as_mut() {
        if let Err(e) = keeper.keep_alive().await {
            *stream = None;
            return KeepAlive::Failed(e.to_string());
        }
        return match responses.message().await {
            Ok(Some(resp)) if resp.ttl() > 0 => KeepAlive::Alive,
            Ok(Some(_)) => KeepAlive::Expired,
            Ok(None) => {
                *stream = None;
                KeepAlive::Failed("keepalive stream closed".into())
            }
            Err(e) => {
                *stream = None;
                KeepAlive::Failed(e.to_string())
            }
        };
    }
    // Opening the stream sends a first keepalive and waits for its answer.
    match leases.keep_alive(id).await {
        Ok(pair) => {
            *stream = Some(pair);
            KeepAlive::Alive
        }
        Err(etcd_client::Error::LeaseKeepAliveError(msg)) if msg.contains("not found") => {
            KeepAlive::Expired
        }
        Err(e) => KeepAlive::Failed(e.to_string()),
    }
}

/// The keeper task of one lease.
async fn keep(
    ctx: Ctx,
    handle: LeaseHandle,
    what: String,
    started: Instant,
    mut updates: Option<(String, watch::Receiver<Vec<u8>>)>,
) {
    let id = handle.id;
    let window = ctx.cfg.fence_window();
    let interval = ctx.cfg.keepalive_interval;
    let mut leases = ctx.client.lease_client();
    let mut kv = ctx.client.kv_client();
    let mut stream = None;
    let mut last_ok = started;
    let mut dirty = false;
    let mut failures = 0u32;
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let deadline = last_ok + window;
        let updates_open = updates.is_some();
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => {
                handle.lost_tx.send_replace(true);
                tracing::debug!(lease = id, %what, "registry shut down; lease left to expire");
                return;
            }
            _ = handle.revoke.cancelled() => {
                handle.lost_tx.send_replace(true);
                match timed("lease revoke", REQUEST_TIMEOUT, leases.revoke(id)).await {
                    Ok(_) => tracing::debug!(lease = id, %what, "lease revoked"),
                    Err(e) => tracing::warn!(lease = id, %what, error = %e, "cannot revoke lease; it will expire"),
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                handle.lost_tx.send_replace(true);
                tracing::error!(
                    lease = id, %what, window = ?window,
                    "ORCA-REGISTRY-LEASE-LOST: no successful keepalive within lease_ttl - fence_margin; giving the lease up"
                );
                let _ = timed("lease revoke", GIVE_UP_REVOKE_TIMEOUT, leases.revoke(id)).await;
                return;
            }
            _ = tick.tick() => {
                let sent = Instant::now();
                let budget = deadline.saturating_duration_since(sent);
                let outcome = tokio::time::timeout(budget, keep_alive_once(&mut leases, id, &mut stream))
                    .await
                    .unwrap_or_else(|_| {
                        stream = None;
                        KeepAlive::Failed("keepalive timed out".into())
                    });
                match outcome {
                    KeepAlive::Alive => {
                        if failures > 0 {
                            tracing::info!(lease = id, %what, failures, "lease keepalive recovered");
                        }
                        failures = 0;
                        last_ok = sent;
                    }
                    KeepAlive::Expired => {
                        handle.lost_tx.send_replace(true);
                        tracing::error!(lease = id, %what, "ORCA-REGISTRY-LEASE-LOST: etcd reports the lease expired");
                        return;
                    }
                    KeepAlive::Failed(e) => {
                        failures += 1;
                        tracing::warn!(lease = id, %what, error = %e, failures, "lease keepalive failed");
                    }
                }
            }
            changed = async {
                match updates.as_mut() {
                    Some((_, rx)) => rx.changed().await,
                    None => std::future::pending().await,
                }
            }, if updates_open => {
                if changed.is_err() {
                    // The lease handle is gone: no more updates.
                    updates = None;
                    continue;
                }
                dirty = true;
            }
        }
        if dirty && let Some((key, rx)) = updates.as_mut() {
            let value = rx.borrow_and_update().clone();
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .min(REQUEST_TIMEOUT);
            let put = kv.put(key.clone(), value, Some(PutOptions::new().with_lease(id)));
            match timed("put", budget, put).await {
                Ok(_) => dirty = false,
                Err(e) => {
                    tracing::debug!(lease = id, %what, error = %e, "update not written yet; retrying")
                }
            }
        }
    }
}
