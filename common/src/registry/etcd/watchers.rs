//! Background tasks keeping `watch_workers` and `watch_leader` current.
//!
//! Both re-establish themselves after any error (etcd restart, compaction,
//! broken stream): the workers watch re-lists and re-watches from the
//! listed revision, so no update is lost; the leader observer re-observes.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream};
use tokio::sync::watch;

use super::{Ctx, list, timed};
use crate::registry::{LeaderInfo, MasterInfo, RegistryError, WorkerInfo};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Live workers keyed by their etcd key, and the revision of the listing.
pub(super) async fn list_workers(
    ctx: &Ctx,
) -> Result<(BTreeMap<Vec<u8>, WorkerInfo>, i64), RegistryError> {
    list(ctx, ctx.workers_prefix()).await
}

/// Waits `backoff` (or until shutdown; then `false`) and doubles it.
async fn back_off(ctx: &Ctx, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = ctx.shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

fn publish(tx: &watch::Sender<Vec<WorkerInfo>>, state: &BTreeMap<Vec<u8>, WorkerInfo>) {
    let now: Vec<WorkerInfo> = state.values().cloned().collect();
    tx.send_if_modified(|cur| {
        if *cur == now {
            false
        } else {
            *cur = now;
            true
        }
    });
}

async fn open_watch(
    ctx: &Ctx,
    key: String,
    options: WatchOptions,
) -> Result<WatchStream, RegistryError> {
    let mut client = ctx.client.watch_client();
    timed(
        "watch",
        super::REQUEST_TIMEOUT,
        client.watch(key, Some(options)),
    )
    .await
}

/// Keeps `tx` equal to the workers under the prefix.
pub(super) async fn run_workers_watch(
    ctx: Ctx,
    mut state: BTreeMap<Vec<u8>, WorkerInfo>,
    mut revision: i64,
    tx: watch::Sender<Vec<WorkerInfo>>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut listed = true;
    loop {
        if !listed {
            match list_workers(&ctx).await {
                Ok((s, r)) => {
                    state = s;
                    revision = r;
                    publish(&tx, &state);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list workers; retrying");
                    if !back_off(&ctx, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = match open_watch(&ctx, ctx.workers_prefix(), options).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch workers; retrying");
                listed = false;
                if !back_off(&ctx, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                m = stream.message() => m,
            };
            let resp = match msg {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    tracing::debug!("worker watch ended; re-listing");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker watch broken; re-listing");
                    break;
                }
            };
            if resp.canceled() || resp.compact_revision() > 0 {
                tracing::warn!(
                    compact_revision = resp.compact_revision(),
                    reason = resp.cancel_reason(),
                    "worker watch cancelled; re-listing"
                );
                break;
            }
            backoff = BACKOFF_MIN;
            // The first response only confirms creation (no events).
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                revision = revision.max(kv.mod_revision());
                match ev.event_type() {
                    EventType::Put => match serde_json::from_slice::<WorkerInfo>(kv.value()) {
                        Ok(info) => {
                            state.insert(kv.key().to_vec(), info);
                        }
                        Err(e) => tracing::warn!(
                            key = %String::from_utf8_lossy(kv.key()), error = %e,
                            "ORCA-REGISTRY-CODEC: ignoring undecodable worker info"
                        ),
                    },
                    EventType::Delete => {
                        state.remove(kv.key());
                    }
                }
            }
            if let Some(h) = resp.header() {
                revision = revision.max(h.revision());
            }
            publish(&tx, &state);
        }
        listed = false;
        if !back_off(&ctx, &mut backoff).await {
            return;
        }
    }
}

fn leader_from(kv: &etcd_client::KeyValue) -> Option<LeaderInfo> {
    match serde_json::from_slice::<MasterInfo>(kv.value()) {
        Ok(master) => Some(LeaderInfo {
            master,
            epoch: u64::try_from(kv.create_revision()).unwrap_or(0),
        }),
        Err(e) => {
            tracing::warn!(
                key = %String::from_utf8_lossy(kv.key()), error = %e,
                "ORCA-REGISTRY-CODEC: ignoring undecodable leader value"
            );
            None
        }
    }
}

/// The current leader, `None` when there is none (or etcd cannot tell).
pub(super) async fn current_leader(ctx: &Ctx) -> Option<LeaderInfo> {
    let mut election = ctx.client.election_client();
    let resp = timed(
        "leader",
        super::REQUEST_TIMEOUT,
        election.leader(ctx.election_name()),
    )
    .await
    .ok()?;
    resp.kv().and_then(leader_from)
}

/// Keeps `tx` equal to the current leader: etcd's `observe` reports each new
/// leader; a watch on the current leader's key reports its deletion (resign,
/// expiry), after which `tx` holds `None` until the next leader.
pub(super) async fn run_leader_observe(ctx: Ctx, tx: watch::Sender<Option<LeaderInfo>>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut election = ctx.client.election_client();
        // `observe` answers only once a leader exists; it waits here.
        let observed = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            o = election.observe(ctx.election_name()) => o,
        };
        let mut observe = match observed {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot observe the election; retrying");
                if !back_off(&ctx, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        // Watch on the key of the leader currently published.
        let mut key_watch: Option<(Vec<u8>, WatchStream)> = None;
        loop {
            let deleted = async {
                match key_watch.as_mut() {
                    Some((_, w)) => w.message().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                m = observe.message() => match m {
                    Ok(Some(resp)) => {
                        backoff = BACKOFF_MIN;
                        let Some(kv) = resp.kv() else { continue };
                        let Some(info) = leader_from(kv) else { continue };
                        let options = WatchOptions::new().with_start_revision(kv.mod_revision() + 1);
                        match open_watch(&ctx, String::from_utf8_lossy(kv.key()).into_owned(), options).await {
                            Ok(w) => key_watch = Some((kv.key().to_vec(), w)),
                            Err(e) => {
                                tracing::debug!(error = %e, "cannot watch the leader key");
                                key_watch = None;
                            }
                        }
                        tx.send_if_modified(|cur| {
                            if cur.as_ref() == Some(&info) { false } else { *cur = Some(info); true }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "election observation broken; re-observing");
                        break;
                    }
                },
                m = deleted => match m {
                    Ok(Some(resp)) => {
                        let gone = resp.events().iter().any(|e| e.event_type() == EventType::Delete);
                        if gone {
                            key_watch = None;
                            tx.send_replace(None);
                        } else if resp.canceled() {
                            key_watch = None;
                        }
                    }
                    // A broken key watch: the observation breaks too, or
                    // reports the next leader; keep following it.
                    Ok(None) | Err(_) => key_watch = None,
                },
            }
        }
        if !back_off(&ctx, &mut backoff).await {
            return;
        }
    }
}
