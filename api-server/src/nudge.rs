//! Waking the leader master after a command was written (cluster mode).

use std::sync::{Arc, Mutex};

use orca_common::registry::Registry;
use orca_proto::v1::NudgeRequest;
use orca_proto::v1::master_service_client::MasterServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::Nudger;

/// A nudger that calls `MasterService.Nudge` on the current leader (found in
/// the registry). Best effort: the leader also polls for commands.
pub fn leader_nudger(registry: Arc<dyn Registry>) -> Nudger {
    let leader = registry.watch_leader();
    let cached: Arc<Mutex<Option<(String, Channel)>>> = Arc::new(Mutex::new(None));
    Arc::new(move || {
        let Some(addr) = leader.borrow().as_ref().map(|l| l.master.addr.clone()) else {
            tracing::debug!("no leader to nudge; it will find the command when elected");
            return;
        };
        let channel = {
            let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
            match c.as_ref() {
                Some((a, ch)) if *a == addr => Some(ch.clone()),
                _ => match Endpoint::from_shared(addr.clone()) {
                    Ok(ep) => {
                        let ch = ep.connect_lazy();
                        *c = Some((addr.clone(), ch.clone()));
                        Some(ch)
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "bad leader address");
                        None
                    }
                },
            }
        };
        if let Some(ch) = channel {
            tokio::spawn(async move {
                if let Err(e) = MasterServiceClient::new(ch).nudge(NudgeRequest {}).await {
                    tracing::debug!(error = %e, "nudge failed; the leader's poll will pick the command up");
                }
            });
        }
    })
}
