//! Computations launched from the console's commissioner page: each runs as a `compute`
//! control request whose answer a background task waits for, and the run page shows what it
//! has so far (the plan, the commissioner's progress, the result).

use super::{lock, Shared, MAX_RUNS};
use crate::control::{ComputeParams, ControlReply, ControlRequest, Incoming, REPLY_QUEUE};
use grove_protocol::query::CompiledQuery;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a launch may take before the daemon's plan arrives.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Run {
    pub(super) computation: String,
    pub(super) compiled: CompiledQuery,
    pub(super) params: ComputeParams,
    pub(super) launched_at_micros: u64,
    /// What the daemon said of the plan at launch (groups, levels, members).
    pub(super) plan: Value,
    /// What the planner chose and why, and its exposure (`owner::query::Planned::report`).
    pub(super) planner: Vec<String>,
    /// The released result (the `compute` answer), or why there is none.
    pub(super) outcome: Option<Result<Value, String>>,
}

/// The runs the console keeps, oldest first.
#[derive(Default)]
pub(super) struct Runs {
    runs: BTreeMap<String, Run>,
    order: VecDeque<String>,
}

impl Runs {
    fn insert(&mut self, run: Run) {
        while self.order.len() >= MAX_RUNS {
            // The oldest finished run goes first; if none finished, the oldest.
            let at = self
                .order
                .iter()
                .position(|id| self.runs.get(id).is_some_and(|r| r.outcome.is_some()))
                .unwrap_or(0);
            if let Some(id) = self.order.remove(at) {
                self.runs.remove(&id);
            }
        }
        self.order.push_back(run.computation.clone());
        self.runs.insert(run.computation.clone(), run);
    }

    fn finish(&mut self, id: &str, outcome: Result<Value, String>) {
        if let Some(run) = self.runs.get_mut(id) {
            run.outcome = Some(outcome);
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<&Run> {
        self.runs.get(id)
    }

    /// Every run, newest first.
    pub(super) fn newest_first(&self) -> impl Iterator<Item = &Run> {
        self.order.iter().rev().filter_map(|id| self.runs.get(id))
    }
}

/// Launches `params` through the daemon; returns the computation's id once the daemon
/// planned and broadcast it, or the daemon's error. A task keeps waiting for the result.
pub(super) async fn launch(
    shared: &Arc<Shared>,
    params: ComputeParams,
    compiled: CompiledQuery,
    planner: Vec<String>,
) -> Result<String, String> {
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    shared
        .to_loop
        .send(Incoming {
            request: ControlRequest::Compute(params.clone()),
            reply: tx,
        })
        .await
        .map_err(|_| "the daemon is shutting down".to_string())?;
    let plan = match tokio::time::timeout(LAUNCH_TIMEOUT, rx.recv()).await {
        Ok(Some(ControlReply::Progress {
            data: Some(plan), ..
        })) => plan,
        Ok(Some(ControlReply::Error { message })) => return Err(message),
        Ok(Some(other)) => return Err(format!("unexpected answer from the daemon: {other:?}")),
        Ok(None) => return Err("the daemon closed the request".into()),
        Err(_) => return Err("the daemon did not launch the computation in time".into()),
    };
    let id = plan["computation"].as_str().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err("the daemon's plan names no computation".into());
    }
    lock(&shared.runs).insert(Run {
        computation: id.clone(),
        compiled,
        params,
        launched_at_micros: crate::clock::now_micros().0,
        plan,
        planner,
        outcome: None,
    });
    let shared = shared.clone();
    let run = id.clone();
    tokio::spawn(async move {
        let outcome = loop {
            match rx.recv().await {
                Some(ControlReply::Progress { .. }) => continue,
                Some(ControlReply::Ok { data }) => break Ok(data),
                Some(ControlReply::Error { message }) => break Err(message),
                None => break Err("the daemon stopped before the result".into()),
            }
        };
        lock(&shared.runs).finish(&run, outcome);
    });
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, finished: bool) -> Run {
        Run {
            computation: id.into(),
            compiled: crate::owner::query::compile("SELECT count(*) FROM c").unwrap(),
            params: ComputeParams::default(),
            launched_at_micros: 0,
            plan: Value::Null,
            planner: Vec::new(),
            outcome: finished.then_some(Ok(Value::Null)),
        }
    }

    #[test]
    fn the_oldest_finished_run_goes_first() {
        let mut runs = Runs::default();
        runs.insert(run("running", false));
        for i in 0..MAX_RUNS {
            runs.insert(run(&format!("done-{i}"), true));
        }
        assert_eq!(runs.order.len(), MAX_RUNS);
        assert!(
            runs.get("running").is_some(),
            "a running run was dropped first"
        );
        assert!(runs.get("done-0").is_none());
        assert_eq!(
            runs.newest_first().next().map(|r| r.computation.as_str()),
            Some(format!("done-{}", MAX_RUNS - 1).as_str())
        );
    }
}
