//! Leader election through etcd's election API.

use etcd_client::ResignOptions;
use tokio::sync::watch;

use super::lease::{self, LeaseHandle};
use super::{Ctx, REQUEST_TIMEOUT, backend, encode, timed};
use crate::registry::{LeaderInfo, Leadership, MasterInfo, RegistryError};

/// Revokes a candidacy's lease unless disarmed: a campaign that fails or is
/// cancelled (its future dropped) must not leave a candidate key behind that
/// would later make this master leader without anyone acting on it.
struct RevokeOnDrop(Option<LeaseHandle>);

impl Drop for RevokeOnDrop {
    fn drop(&mut self) {
        if let Some(lease) = self.0.take() {
            lease.revoke();
        }
    }
}

/// Campaigns until elected (see `Registry::campaign`).
pub(super) async fn campaign(ctx: &Ctx, me: MasterInfo) -> Result<Leadership, RegistryError> {
    let name = ctx.election_name();
    let value = encode(&name, &me)?;
    let (lease, _) = lease::grant(ctx, format!("candidacy of master {}", me.id), None).await?;
    let mut guard = RevokeOnDrop(Some(lease.clone()));
    let mut lost = lease.lost.clone();
    let mut election = ctx.client.election_client();
    let resp = tokio::select! {
        r = election.campaign(name, value, lease.id) => r.map_err(|e| backend("campaign", e))?,
        _ = lost.wait_for(|l| *l) => return Err(RegistryError::LeaseLost(format!("candidacy of master {}", me.id))),
    };
    let Some(key) = resp.leader().cloned() else {
        return Err(RegistryError::Unavailable(
            "campaign answered without a leader key".into(),
        ));
    };
    if *lease.lost.borrow() {
        return Err(RegistryError::LeaseLost(format!(
            "candidacy of master {}",
            me.id
        )));
    }
    let epoch = u64::try_from(key.rev()).unwrap_or(0);
    guard.0 = None;
    tracing::info!(master = %me.id, epoch, lease = lease.id, "won the election");

    tokio::spawn(watch_for_deposal(
        ctx.clone(),
        lease.clone(),
        epoch,
        me.id.clone(),
    ));
    let rt = tokio::runtime::Handle::current();
    let ctx = ctx.clone();
    let holder = lease.clone();
    let resign = Box::new(move || {
        // `lost` first, so the master stops acting before anyone else wins.
        if holder.mark_lost() {
            return; // already resigned, deposed or lost
        }
        let (ctx, holder, key) = (ctx.clone(), holder.clone(), key.clone());
        rt.spawn(async move {
            let mut election = ctx.client.election_client();
            let options = ResignOptions::new().with_leader(key);
            if let Err(e) = timed("resign", REQUEST_TIMEOUT, election.resign(Some(options))).await {
                tracing::warn!(error = %e, "resign failed; revoking the election lease");
            }
            holder.revoke();
        });
    });
    Ok(Leadership {
        epoch,
        lost: lease.lost.clone(),
        resign,
    })
}

/// Marks the leadership lost when the election shows a newer leader, or no
/// leader after it showed this one (the key was deleted).
async fn watch_for_deposal(ctx: Ctx, lease: LeaseHandle, epoch: u64, id: String) {
    let mut leader: watch::Receiver<Option<LeaderInfo>> = ctx.leader_rx.clone();
    let mut lost = lease.lost.clone();
    let mut seen_mine = false;
    loop {
        let deposed = match leader.borrow_and_update().as_ref() {
            Some(l) if l.epoch == epoch => {
                seen_mine = true;
                false
            }
            Some(l) => l.epoch > epoch,
            None => seen_mine,
        };
        if deposed {
            if !lease.mark_lost() {
                tracing::error!(master = %id, epoch, "ORCA-REGISTRY-LEASE-LOST: the election shows this master is no longer leader");
            }
            lease.revoke();
            return;
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = lost.wait_for(|l| *l) => return,
            r = leader.changed() => if r.is_err() { return },
        }
    }
}
