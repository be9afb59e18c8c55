//! The task graph of a workflow: index, edges, topological order, and the
//! graph checks (names, dependencies, cycles).
//!
//! Every walk here is iterative (Kahn's algorithm, explicit stacks), so
//! graphs of any depth are safe on the default thread stack.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::error::WorkflowError;
use super::validate::{Loc, graph_problems};
use crate::model::WorkflowSpec;

/// Most distinct cycles reported for one workflow.
const MAX_CYCLES: usize = 10;

/// A workflow's tasks as a graph. Indices follow `spec.tasks` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// Task names by index.
    pub names: Vec<String>,
    /// Task index by name.
    pub index: HashMap<String, usize>,
    /// Direct upstream tasks of each task (deduplicated, in `deps` order).
    pub upstream: Vec<Vec<usize>>,
    /// Direct downstream tasks of each task (ascending index).
    pub downstream: Vec<Vec<usize>>,
    /// All tasks, upstream before downstream; among tasks ready at the same
    /// time, file order.
    pub topo_order: Vec<usize>,
}

impl Dag {
    /// Builds the graph of `spec`, or reports every graph problem: empty or
    /// duplicate names, unknown dependencies, self-dependencies, cycles.
    pub fn build(spec: &WorkflowSpec) -> Result<Dag, WorkflowError> {
        let tasks: Vec<GraphTask<'_>> = spec
            .tasks
            .iter()
            .map(|t| GraphTask {
                name: Some(t.name.as_str()),
                deps: t.deps.iter().map(String::as_str).collect(),
            })
            .collect();
        let (dag, issues) = analyze(&tasks);
        if issues.is_empty() {
            Ok(dag)
        } else {
            let problems = graph_problems(&issues, &tasks, &|_: Loc| None);
            Err(WorkflowError::new(
                format!("workflow {:?}", spec.name),
                problems,
            ))
        }
    }

    /// Tasks without upstream, ascending.
    pub fn roots(&self) -> Vec<usize> {
        (0..self.names.len())
            .filter(|&i| self.upstream[i].is_empty())
            .collect()
    }

    /// Every task downstream of `i`, directly or transitively, in
    /// topological order (excluding `i`; empty if `i` is out of range).
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        if i >= self.names.len() {
            return Vec::new();
        }
        let mut seen = vec![false; self.names.len()];
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for &d in &self.downstream[n] {
                if !seen[d] {
                    seen[d] = true;
                    stack.push(d);
                }
            }
        }
        self.topo_order
            .iter()
            .copied()
            .filter(|&t| seen[t] && t != i)
            .collect()
    }
}

/// A task as the graph checks see it.
pub(crate) struct GraphTask<'a> {
    /// `None`: the name is unusable and was reported elsewhere; the task
    /// takes part in the graph without being referable.
    pub name: Option<&'a str>,
    pub deps: Vec<&'a str>,
}

/// A graph problem, by task (and dependency) index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GraphIssue {
    EmptyName {
        task: usize,
    },
    DuplicateName {
        task: usize,
        first: usize,
    },
    UnknownDep {
        task: usize,
        dep: usize,
        suggestion: Option<String>,
    },
    SelfDep {
        task: usize,
        dep: usize,
    },
    /// Tasks on one cycle, each depending on the previous one; the last is
    /// depended on by the first.
    Cycle {
        tasks: Vec<usize>,
    },
}

/// Builds the graph and lists its problems. The returned `Dag` is only
/// complete when there are no issues.
pub(crate) fn analyze(tasks: &[GraphTask<'_>]) -> (Dag, Vec<GraphIssue>) {
    let n = tasks.len();
    let mut issues = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    for (i, t) in tasks.iter().enumerate() {
        let name = t.name.map(str::trim).unwrap_or("");
        names.push(name.to_string());
        match t.name {
            None => {}
            Some(_) if name.is_empty() => issues.push(GraphIssue::EmptyName { task: i }),
            Some(_) => match index.get(name) {
                Some(&first) => issues.push(GraphIssue::DuplicateName { task: i, first }),
                None => {
                    index.insert(name.to_string(), i);
                }
            },
        }
    }

    let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in tasks.iter().enumerate() {
        for (d, dep) in t.deps.iter().enumerate() {
            match index.get(dep.trim()) {
                Some(&u) if u == i => issues.push(GraphIssue::SelfDep { task: i, dep: d }),
                Some(&u) => {
                    if !upstream[i].contains(&u) {
                        upstream[i].push(u);
                        downstream[u].push(i);
                    }
                }
                None => {
                    let suggestion = super::values::closest(
                        dep,
                        names.iter().map(String::as_str).filter(|s| !s.is_empty()),
                    )
                    .map(str::to_string);
                    issues.push(GraphIssue::UnknownDep {
                        task: i,
                        dep: d,
                        suggestion,
                    });
                }
            }
        }
    }
    for d in &mut downstream {
        d.sort_unstable();
    }

    let (topo_order, cycles) = topo_sort(&upstream, &downstream);
    issues.extend(cycles.into_iter().map(|tasks| GraphIssue::Cycle { tasks }));
    let dag = Dag {
        names,
        index,
        upstream,
        downstream,
        topo_order,
    };
    (dag, issues)
}

/// Kahn's algorithm (smallest ready index first). Returns the order of the
/// tasks not on or after a cycle, and up to `MAX_CYCLES` distinct cycles.
fn topo_sort(upstream: &[Vec<usize>], downstream: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let n = upstream.len();
    let mut pending: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut done = vec![false; n];
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        done[i] = true;
        order.push(i);
        release(i, downstream, &mut pending, &mut ready);
    }

    let mut cycles = Vec::new();
    let mut on_path = vec![usize::MAX; n];
    let mut next_start = 0;
    while cycles.len() < MAX_CYCLES {
        while next_start < n && done[next_start] {
            next_start += 1;
        }
        if next_start == n {
            break;
        }
        // Every task left has a left upstream, so walking upstream must
        // come back to a task already on the path: that closes a cycle.
        let mut path = Vec::new();
        let mut cur = next_start;
        while on_path[cur] == usize::MAX {
            on_path[cur] = path.len();
            path.push(cur);
            match upstream[cur].iter().copied().find(|&u| !done[u]) {
                Some(u) => cur = u,
                None => break,
            }
        }
        let start = on_path[cur];
        for &p in &path {
            on_path[p] = usize::MAX;
        }
        if start == usize::MAX || !path.contains(&cur) {
            // Cannot happen (see above); avoid looping forever regardless.
            done[next_start] = true;
            continue;
        }
        let mut cycle: Vec<usize> = path[start..].iter().rev().copied().collect();
        if let Some(min_pos) = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .map(|(p, _)| p)
        {
            cycle.rotate_left(min_pos);
        }
        // Drop the cycle and everything only blocked by it, then look again.
        let mut blocked: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
        for &c in &cycle {
            done[c] = true;
        }
        for &c in &cycle {
            release(c, downstream, &mut pending, &mut blocked);
        }
        while let Some(Reverse(i)) = blocked.pop() {
            if !done[i] {
                done[i] = true;
                release(i, downstream, &mut pending, &mut blocked);
            }
        }
        cycles.push(cycle);
    }
    (order, cycles)
}

fn release(
    i: usize,
    downstream: &[Vec<usize>],
    pending: &mut [usize],
    ready: &mut BinaryHeap<Reverse<usize>>,
) {
    for &d in &downstream[i] {
        if pending[d] > 0 {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskSpec, TaskType};
    use std::time::Duration;

    fn task(name: &str, deps: &[&str]) -> TaskSpec {
        TaskSpec {
            name: name.to_string(),
            task_type: TaskType::Shell,
            description: String::new(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            script: "true".to_string(),
            retries: 0,
            retry_interval: Duration::ZERO,
            timeout: None,
            local_params: Vec::new(),
            environment: None,
            worker_group: "default".to_string(),
            priority: 0,
            on_worker_loss: Default::default(),
            worker_labels: Vec::new(),
            python_process: None,
        }
    }

    fn spec(tasks: Vec<TaskSpec>) -> WorkflowSpec {
        WorkflowSpec {
            name: "wf".to_string(),
            description: String::new(),
            project: "default".to_string(),
            schedule: None,
            params: Vec::new(),
            failure_strategy: Default::default(),
            tenant: None,
            python_process: Default::default(),
            tasks,
        }
    }

    #[test]
    fn diamond_orders_upstream_first_and_in_file_order() {
        let s = spec(vec![
            task("join", &["left", "right"]),
            task("right", &["root"]),
            task("left", &["root"]),
            task("root", &[]),
            task("lonely", &[]),
        ]);
        let dag = Dag::build(&s).unwrap();
        assert_eq!(dag.topo_order, vec![3, 1, 2, 0, 4]);
        assert_eq!(dag.roots(), vec![3, 4]);
        assert_eq!(dag.upstream[0], vec![2, 1]);
        assert_eq!(dag.downstream[3], vec![1, 2]);
        assert_eq!(dag.descendants(3), vec![1, 2, 0]);
        assert_eq!(dag.descendants(4), Vec::<usize>::new());
        assert_eq!(dag.index["left"], 2);
    }

    #[test]
    fn repeated_dependency_counts_once() {
        let dag = Dag::build(&spec(vec![task("a", &[]), task("b", &["a", "a"])])).unwrap();
        assert_eq!(dag.upstream[1], vec![0]);
        assert_eq!(dag.downstream[0], vec![1]);
    }

    #[test]
    fn chain_of_10k_tasks_sorts_without_recursion() {
        let n = 10_000;
        let tasks: Vec<TaskSpec> = (0..n)
            .map(|i| {
                let prev = format!("t{}", i.max(1) - 1);
                let deps: &[&str] = if i == 0 { &[] } else { &[prev.as_str()] };
                task(&format!("t{i}"), deps)
            })
            .collect();
        let dag = Dag::build(&spec(tasks)).unwrap();
        assert_eq!(dag.topo_order, (0..n).collect::<Vec<_>>());
        assert_eq!(dag.descendants(0).len(), n - 1);
        assert_eq!(dag.roots(), vec![0]);
    }

    #[test]
    fn cycle_of_10k_tasks_is_reported_in_order() {
        let n = 10_000;
        let tasks: Vec<TaskSpec> = (0..n)
            .map(|i| {
                let prev = format!("t{}", (i + n - 1) % n);
                task(&format!("t{i}"), &[prev.as_str()])
            })
            .collect();
        let tasks: Vec<GraphTask<'_>> = tasks
            .iter()
            .map(|t| GraphTask {
                name: Some(&t.name),
                deps: t.deps.iter().map(String::as_str).collect(),
            })
            .collect();
        let (_, issues) = analyze(&tasks);
        assert_eq!(issues.len(), 1);
        let GraphIssue::Cycle { tasks: cycle } = &issues[0] else {
            panic!("{issues:?}")
        };
        assert_eq!(cycle, &(0..n).collect::<Vec<_>>());
    }

    #[test]
    fn separate_cycles_are_each_reported_and_tasks_after_them_are_not() {
        let s = spec(vec![
            task("a", &["b"]),
            task("b", &["a"]),
            task("after", &["a"]),
            task("x", &["z"]),
            task("y", &["x"]),
            task("z", &["y"]),
            task("ok", &[]),
        ]);
        let tasks: Vec<GraphTask<'_>> = s
            .tasks
            .iter()
            .map(|t| GraphTask {
                name: Some(&t.name),
                deps: t.deps.iter().map(String::as_str).collect(),
            })
            .collect();
        let (dag, issues) = analyze(&tasks);
        assert_eq!(
            issues,
            vec![
                GraphIssue::Cycle { tasks: vec![0, 1] },
                GraphIssue::Cycle {
                    tasks: vec![3, 4, 5]
                },
            ]
        );
        assert_eq!(dag.topo_order, vec![6]);
        let err = Dag::build(&s).unwrap_err();
        assert_eq!(err.origin, "workflow \"wf\"");
        assert!(err.to_string().contains("a -> b -> a"), "{err}");
        assert!(err.to_string().contains("x -> y -> z -> x"), "{err}");
    }
}
