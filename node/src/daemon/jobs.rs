//! The engine's CPU work off the event loop: a contributor's validity proof and a leaf
//! member's verification of one contributor (`Output::Work`) run on tokio's blocking pool, and its result comes back to the loop as an input
//! (`Engine::handle_job_done`, then the drain). Meanwhile the loop handles and acknowledges
//! other messages: on one thread (the daemon's runtime is single-threaded) a proof of 76 ms
//! at `sum_vector` 131,072 held back every ack behind it, and at 200 daemons on 2 cores the
//! sends to busy receivers missed their deadlines and were failed over.
//!
//! - **Bounded.** At most [`running_limit`] jobs run at once; the others wait here in order.
//!   The engine bounds how many it emits (one proof per contribution it holds, one
//!   verification per contributor of each leaf role it holds, a job asked for again only once
//!   it is done), so the queue is bounded by the computations and roles the engine holds.
//! - **Panics.** A proof or verification job that panics reports it as its result (the engine
//!   then clears that job's entry and asks again on the next re-send); see `Jobs::start`.
//! - **Nothing persisted.** A job is a function of persisted state; a restart loses the jobs
//!   and the restored engine asks for them again. A result whose computation ended meanwhile
//!   is dropped by the engine.

use grove_protocol::engine::{Job, JobDone};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// How many jobs run at once: the machine's cores, at most 4 (one daemon per machine may
/// prove on several; many daemons sharing a machine each take one core at most per job).
pub(super) fn running_limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// Work that runs on the blocking pool: the engine's [`Job`] (a test's own, in tests).
pub(super) trait Work: Send + 'static {
    type Done: Send + 'static;
    fn run(self) -> Self::Done;
}

impl Work for Job {
    type Done = JobDone;
    fn run(self) -> JobDone {
        Job::run(self)
    }
}

/// The jobs running and waiting, and the channel their results come back on.
pub(super) struct Jobs<W: Work = Job> {
    limit: usize,
    running: usize,
    waiting: VecDeque<W>,
    tx: mpsc::UnboundedSender<Option<W::Done>>,
    rx: mpsc::UnboundedReceiver<Option<W::Done>>,
}

impl<W: Work> Default for Jobs<W> {
    fn default() -> Jobs<W> {
        Jobs::with_limit(running_limit())
    }
}

impl<W: Work> Jobs<W> {
    pub(super) fn with_limit(limit: usize) -> Jobs<W> {
        let (tx, rx) = mpsc::unbounded_channel();
        Jobs {
            limit: limit.max(1),
            running: 0,
            waiting: VecDeque::new(),
            tx,
            rx,
        }
    }

    /// Runs `job` on the blocking pool if fewer than the limit run, else queues it.
    pub(super) fn submit(&mut self, job: W) {
        if self.running < self.limit {
            self.start(job);
        } else {
            self.waiting.push_back(job);
        }
    }

    fn start(&mut self, job: W) {
        self.running += 1;
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            // The engine's jobs catch their own panics and report them as failures that clear
            // the engine's bookkeeping (`engine/validity.rs`, `Panicked`; before, a panicking
            // proof or verification left its entry set and that contribution out at this node
            // for the computation's life). This is the last resort for anything else: nothing
            // comes back, but the place is freed.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
            if done.is_err() {
                tracing::error!("an engine job panicked");
            }
            let _ = tx.send(done.ok());
        });
    }

    /// The next result (`None`: a job that panicked); pending while none is done. The caller
    /// hands it to the engine and calls [`finished`](Self::finished).
    pub(super) async fn next_done(&mut self) -> Option<W::Done> {
        // The sender half lives in `self`: the channel never closes.
        self.rx.recv().await.flatten()
    }

    /// A job ended: the next waiting one starts.
    pub(super) fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
        if let Some(job) = self.waiting.pop_front() {
            self.start(job);
        }
    }

    /// Jobs running and waiting.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        (self.running, self.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    /// A job that runs until the test lets it go (or 10 s pass: a failsafe, not a measure).
    struct Held {
        n: u32,
        go: std_mpsc::Receiver<()>,
    }

    impl Work for Held {
        type Done = u32;
        fn run(self) -> u32 {
            let _ = self.go.recv_timeout(Duration::from_secs(10));
            self.n
        }
    }

    /// The daemon's kind of runtime: single-threaded, with timers and I/O.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    fn held(n: u32) -> (Held, std_mpsc::Sender<()>) {
        let (tx, go) = std_mpsc::channel();
        (Held { n, go }, tx)
    }

    /// On the daemon's single-threaded runtime, while a job runs, the loop goes on: another
    /// input (here a message on a channel, as an ack or a peer's message would come) is
    /// handled before the job is let go, and the job's result comes back afterwards. Were the
    /// job run on the loop (as the proof was, inside the engine's input handling), the input
    /// would wait for the whole job: the job would end first.
    #[test]
    fn while_a_job_runs_the_loop_handles_other_inputs() {
        runtime().block_on(async {
            let mut jobs: Jobs<Held> = Jobs::with_limit(1);
            let (job, go) = held(7);
            let (input_tx, mut input_rx) = mpsc::unbounded_channel::<&str>();
            jobs.submit(job);
            input_tx.send("an ack").expect("open");
            let mut order = Vec::new();
            tokio::select! {
                done = jobs.next_done() => order.push(format!("job {done:?}")),
                Some(input) = input_rx.recv() => order.push(input.to_string()),
            }
            go.send(()).expect("the job waits");
            let done = jobs.next_done().await;
            jobs.finished();
            order.push(format!("job {done:?}"));
            assert_eq!(order, ["an ack", "job Some(7)"]);
        });
    }

    /// At most `limit` jobs run; the others wait, in order, and start as each ends.
    #[test]
    fn jobs_beyond_the_limit_wait_their_turn() {
        runtime().block_on(async {
            let mut jobs: Jobs<Held> = Jobs::with_limit(2);
            let mut gos = Vec::new();
            for n in 0..5 {
                let (job, go) = held(n);
                jobs.submit(job);
                gos.push(go);
            }
            assert_eq!(jobs.counts(), (2, 3));
            let mut done = Vec::new();
            for go in &gos {
                go.send(()).expect("the job waits or is queued");
            }
            for _ in 0..5 {
                done.push(jobs.next_done().await.expect("no panic"));
                jobs.finished();
                assert!(jobs.counts().0 <= 2, "{:?}", jobs.counts());
            }
            done.sort_unstable();
            assert_eq!(done, [0, 1, 2, 3, 4]);
            assert_eq!(jobs.counts(), (0, 0));
        });
    }
}
