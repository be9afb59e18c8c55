//! Choosing a worker for a task and talking to workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orca_common::TaskSpec;
use orca_common::registry::WorkerInfo;
use orca_proto::transport::{LocalRoutes, Transport};
use orca_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Load-balancing policy among eligible workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Fewest tasks per slot, then lowest load average.
    #[default]
    LowestWeight,
    RoundRobin,
    Random,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lowest_weight" => Ok(Policy::LowestWeight),
            "round_robin" => Ok(Policy::RoundRobin),
            "random" => Ok(Policy::Random),
            _ => Err(format!(
                "unknown dispatch policy {s:?}; use lowest_weight, round_robin or random"
            )),
        }
    }
}

/// Picks workers; tracks how many attempts this master has placed on each.
#[derive(Debug, Default)]
pub struct WorkerSelector {
    pub policy: Policy,
    /// Attempts this master believes are on each worker (dispatched, not yet terminal).
    assigned: HashMap<String, u32>,
    /// Workers that answered "full" since their last finished task.
    full: HashMap<String, bool>,
    rr: usize,
}

impl WorkerSelector {
    pub fn new(policy: Policy) -> Self {
        WorkerSelector {
            policy,
            ..Default::default()
        }
    }

    /// Chooses a worker that fits `task` (worker group, required labels,
    /// environment) and has a free slot, or `None`.
    pub fn choose<'a>(
        &mut self,
        workers: &'a [WorkerInfo],
        task: &TaskSpec,
    ) -> Option<&'a WorkerInfo> {
        let group = task.worker_group.as_str();
        let environment = task.environment.as_deref();
        let eligible: Vec<&WorkerInfo> = workers
            .iter()
            .filter(|w| group == "default" || w.group == group)
            .filter(|w| task.worker_labels.iter().all(|l| w.labels.contains(l)))
            .filter(|w| environment.is_none_or(|e| w.environments.iter().any(|x| x == e)))
            .filter(|w| !self.full.get(&w.id).copied().unwrap_or(false))
            .filter(|w| self.assigned(&w.id) < w.slots)
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let pick = match self.policy {
            Policy::LowestWeight => eligible.iter().copied().min_by(|a, b| {
                let wa = self.assigned(&a.id) as f64 / a.slots.max(1) as f64;
                let wb = self.assigned(&b.id) as f64 / b.slots.max(1) as f64;
                wa.total_cmp(&wb)
                    .then(a.load.total_cmp(&b.load))
                    .then(a.id.cmp(&b.id))
            }),
            Policy::RoundRobin => {
                self.rr = self.rr.wrapping_add(1);
                eligible.get(self.rr % eligible.len()).copied()
            }
            Policy::Random => eligible.get(rand::random_range(0..eligible.len())).copied(),
        };
        if let Some(w) = pick {
            *self.assigned.entry(w.id.clone()).or_default() += 1;
        }
        pick
    }

    pub fn assigned(&self, worker: &str) -> u32 {
        self.assigned.get(worker).copied().unwrap_or(0)
    }

    /// Counts an attempt adopted on `worker` (recovery).
    pub fn adopt(&mut self, worker: &str) {
        *self.assigned.entry(worker.to_string()).or_default() += 1;
    }

    /// An attempt on `worker` ended (or its dispatch failed).
    pub fn release(&mut self, worker: &str) {
        if let Some(n) = self.assigned.get_mut(worker) {
            *n = n.saturating_sub(1);
        }
        self.full.remove(worker);
    }

    /// `worker` refused a dispatch because it is full.
    pub fn mark_full(&mut self, worker: &str) {
        self.full.insert(worker.to_string(), true);
    }
}

/// How long a worker may take to answer a call.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Clients of workers, keyed by address: in-process for a worker of this
/// process, else over a cached gRPC channel.
#[derive(Clone, Default)]
pub struct WorkerClients {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    local: Option<LocalRoutes>,
}

impl WorkerClients {
    pub fn new(local: Option<LocalRoutes>) -> Self {
        WorkerClients {
            channels: Arc::default(),
            local,
        }
    }

    pub fn client(
        &self,
        addr: &str,
    ) -> Result<WorkerServiceClient<Transport>, tonic::transport::Error> {
        if let Some(service) = self.local.as_ref().and_then(|l| l.get(addr)) {
            return Ok(WorkerServiceClient::new(Transport::Local(
                service.with_timeout(CALL_TIMEOUT),
            )));
        }
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(WorkerServiceClient::new(Transport::Remote(ch.clone())));
        }
        let ch = Endpoint::from_shared(addr.to_string())?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(WorkerServiceClient::new(Transport::Remote(ch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(group: &str, labels: &[&str], env: Option<&str>) -> TaskSpec {
        TaskSpec {
            name: "t".into(),
            task_type: orca_common::TaskType::Shell,
            description: String::new(),
            deps: vec![],
            script: "true".into(),
            retries: 0,
            retry_interval: std::time::Duration::ZERO,
            timeout: None,
            local_params: vec![],
            environment: env.map(String::from),
            worker_group: group.into(),
            priority: 0,
            on_worker_loss: Default::default(),
            worker_labels: labels.iter().map(|l| l.to_string()).collect(),
            python_process: None,
        }
    }

    fn w(id: &str, slots: u32, load: f64, group: &str) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            addr: format!("http://{id}"),
            group: group.into(),
            labels: vec![],
            slots,
            running: 0,
            load,
            environments: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn lowest_weight_prefers_idle_then_low_load() {
        let ws = vec![w("a", 2, 3.0, "default"), w("b", 2, 0.5, "default")];
        let mut s = WorkerSelector::new(Policy::LowestWeight);
        assert_eq!(s.choose(&ws, &task("default", &[], None)).unwrap().id, "b");
        assert_eq!(s.choose(&ws, &task("default", &[], None)).unwrap().id, "a");
        assert_eq!(s.choose(&ws, &task("default", &[], None)).unwrap().id, "b");
        assert_eq!(s.choose(&ws, &task("default", &[], None)).unwrap().id, "a");
        assert!(
            s.choose(&ws, &task("default", &[], None)).is_none(),
            "all slots taken"
        );
        s.release("a");
        assert_eq!(s.choose(&ws, &task("default", &[], None)).unwrap().id, "a");
    }

    #[test]
    fn groups_and_full_workers_are_respected() {
        let ws = vec![w("a", 4, 0.0, "gpu"), w("b", 4, 0.0, "cpu")];
        let mut s = WorkerSelector::new(Policy::RoundRobin);
        assert_eq!(s.choose(&ws, &task("gpu", &[], None)).unwrap().id, "a");
        s.mark_full("a");
        assert!(s.choose(&ws, &task("gpu", &[], None)).is_none());
        s.release("a");
        assert_eq!(s.choose(&ws, &task("gpu", &[], None)).unwrap().id, "a");
        assert!(s.choose(&ws, &task("tpu", &[], None)).is_none());
    }

    #[test]
    fn a_task_naming_an_environment_goes_only_where_it_is_hosted() {
        let mut ws = vec![w("a", 4, 0.0, "default"), w("b", 4, 5.0, "default")];
        ws[1].environments = vec!["torch".into()];
        let mut s = WorkerSelector::new(Policy::LowestWeight);
        assert_eq!(
            s.choose(&ws, &task("default", &[], Some("torch")))
                .unwrap()
                .id,
            "b"
        );
        assert!(s.choose(&ws, &task("default", &[], Some("jax"))).is_none());
    }

    #[test]
    fn required_labels_must_all_be_carried() {
        let mut ws = vec![w("a", 4, 0.0, "default"), w("b", 4, 9.0, "default")];
        ws[1].labels = vec!["gpu".into(), "ssd".into()];
        let mut s = WorkerSelector::new(Policy::LowestWeight);
        assert_eq!(
            s.choose(&ws, &task("default", &["gpu"], None)).unwrap().id,
            "b"
        );
        assert_eq!(
            s.choose(&ws, &task("default", &["gpu", "ssd"], None))
                .unwrap()
                .id,
            "b"
        );
        assert!(
            s.choose(&ws, &task("default", &["gpu", "tpu"], None))
                .is_none()
        );
    }
}
