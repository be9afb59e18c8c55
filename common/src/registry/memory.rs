//! In-process registry for `orca standalone` (and tests of one process).
//!
//! Leases never expire on their own (there is no network to partition);
//! `revoke` and `resign` end them explicitly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use super::{
    LeaderInfo, Leadership, MasterInfo, MasterLease, Registry, RegistryError, WorkerInfo,
    WorkerLease,
};

#[derive(Default)]
struct Inner {
    workers: BTreeMap<String, WorkerInfo>,
    /// Worker id → (registration generation, lost sender).
    lost_tx: BTreeMap<String, (u64, watch::Sender<bool>)>,
    /// Master id → (info, registration generation, lost sender).
    masters: BTreeMap<String, (MasterInfo, u64, watch::Sender<bool>)>,
    /// Bumped on every registration, so a stale lease's revoke does not
    /// remove a newer registration of the same id.
    generation: u64,
    leader: Option<(LeaderInfo, watch::Sender<bool>)>,
    epoch: u64,
}

/// Registry living inside one process.
#[derive(Clone)]
pub struct MemoryRegistry {
    inner: Arc<Mutex<Inner>>,
    workers_tx: Arc<watch::Sender<Vec<WorkerInfo>>>,
    leader_tx: Arc<watch::Sender<Option<LeaderInfo>>>,
    vacancy: Arc<Notify>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        MemoryRegistry {
            inner: Arc::new(Mutex::new(Inner::default())),
            workers_tx: Arc::new(watch::channel(Vec::new()).0),
            leader_tx: Arc::new(watch::channel(None).0),
            vacancy: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain maps; the data is still consistent enough to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_workers(&self, inner: &Inner) {
        self.workers_tx
            .send_replace(inner.workers.values().cloned().collect());
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn register_worker(&self, info: WorkerInfo) -> Result<WorkerLease, RegistryError> {
        let id = info.id.clone();
        let (lost_tx, lost_rx) = watch::channel(false);
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            let generation = inner.generation;
            if let Some((_, old)) = inner.lost_tx.insert(id.clone(), (generation, lost_tx)) {
                let _ = old.send(true);
            }
            inner.workers.insert(id.clone(), info);
            self.publish_workers(&inner);
            generation
        };
        let me = self.clone();
        let wid = id.clone();
        let update = Box::new(move |info: WorkerInfo| {
            let mut inner = me.lock();
            if inner.lost_tx.get(&wid).is_some_and(|e| e.0 == generation) {
                inner.workers.insert(wid.clone(), info);
                me.publish_workers(&inner);
            }
        });
        let me = self.clone();
        let revoke = Box::new(move || {
            let mut inner = me.lock();
            // Only this registration: a newer one of the same id has its own lease.
            if inner.lost_tx.get(&id).is_some_and(|e| e.0 == generation) {
                inner.workers.remove(&id);
                if let Some((_, tx)) = inner.lost_tx.remove(&id) {
                    let _ = tx.send(true);
                }
                me.publish_workers(&inner);
            }
        });
        Ok(WorkerLease {
            update,
            revoke,
            lost: lost_rx,
        })
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, RegistryError> {
        Ok(self.lock().workers.values().cloned().collect())
    }

    async fn register_master(&self, info: MasterInfo) -> Result<MasterLease, RegistryError> {
        let id = info.id.clone();
        let (lost_tx, lost_rx) = watch::channel(false);
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            let generation = inner.generation;
            if let Some((_, _, old)) = inner
                .masters
                .insert(id.clone(), (info, generation, lost_tx))
            {
                let _ = old.send(true);
            }
            generation
        };
        let me = self.clone();
        let revoke = Box::new(move || {
            let mut inner = me.lock();
            // Only this registration: a newer one of the same id has its own lease.
            if inner.masters.get(&id).is_some_and(|e| e.1 == generation)
                && let Some((_, _, tx)) = inner.masters.remove(&id)
            {
                let _ = tx.send(true);
            }
        });
        Ok(MasterLease {
            revoke,
            lost: lost_rx,
        })
    }

    async fn masters(&self) -> Result<Vec<MasterInfo>, RegistryError> {
        Ok(self
            .lock()
            .masters
            .values()
            .map(|(m, _, _)| m.clone())
            .collect())
    }

    fn watch_workers(&self) -> watch::Receiver<Vec<WorkerInfo>> {
        self.workers_tx.subscribe()
    }

    async fn campaign(&self, me: MasterInfo) -> Result<Leadership, RegistryError> {
        loop {
            let vacancy = self.vacancy.notified();
            {
                let mut inner = self.lock();
                if inner.leader.is_none() {
                    inner.epoch += 1;
                    let epoch = inner.epoch;
                    let (lost_tx, lost_rx) = watch::channel(false);
                    let info = LeaderInfo {
                        master: me.clone(),
                        epoch,
                    };
                    inner.leader = Some((info.clone(), lost_tx));
                    self.leader_tx.send_replace(Some(info));
                    let reg = self.clone();
                    let resign = Box::new(move || {
                        let mut inner = reg.lock();
                        if matches!(&inner.leader, Some((l, _)) if l.epoch == epoch) {
                            if let Some((_, tx)) = inner.leader.take() {
                                let _ = tx.send(true);
                            }
                            reg.leader_tx.send_replace(None);
                            reg.vacancy.notify_waiters();
                        }
                    });
                    return Ok(Leadership {
                        epoch,
                        lost: lost_rx,
                        resign,
                    });
                }
            }
            vacancy.await;
        }
    }

    fn watch_leader(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.leader_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn worker(id: &str) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            addr: format!("http://{id}"),
            group: "default".into(),
            labels: vec![],
            slots: 4,
            running: 0,
            load: 0.0,
            environments: vec![],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn workers_register_update_and_revoke() {
        let reg = MemoryRegistry::new();
        let mut watch = reg.watch_workers();
        let lease = reg.register_worker(worker("w1")).await.unwrap();
        watch.changed().await.unwrap();
        assert_eq!(watch.borrow().len(), 1);
        let mut w = worker("w1");
        w.running = 3;
        lease.update(w);
        assert_eq!(reg.workers().await.unwrap()[0].running, 3);
        lease.revoke();
        assert!(reg.workers().await.unwrap().is_empty());
        assert!(*lease.lost.borrow());
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_epochs_increase() {
        let reg = MemoryRegistry::new();
        let m = |id: &str| MasterInfo {
            id: id.into(),
            addr: id.into(),
        };
        let first = reg.campaign(m("a")).await.unwrap();
        let reg2 = reg.clone();
        let second = tokio::spawn(async move { reg2.campaign(m("b")).await.unwrap() });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        assert_eq!(reg.watch_leader().borrow().as_ref().unwrap().master.id, "a");
        first.resign();
        assert!(*first.lost.borrow());
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .unwrap()
            .unwrap();
        assert!(second.epoch > first.epoch);
        assert_eq!(reg.watch_leader().borrow().as_ref().unwrap().master.id, "b");
    }
}
