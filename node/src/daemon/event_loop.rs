//! The event loop: one `select!` over the swarm, the control queue, the engine's next deadline,
//! the periodic ticks (announce and pull, republish), the due lookups of trusted commissioners'
//! requests (`agreement::next_pass`), the shutdown signals and the results of the engine's
//! jobs (`jobs`); after each input, the loopback queue.

use super::Node;
use super::{ANNOUNCE_TICK, REPUBLISH_INTERVAL};
use crate::clock::now_micros;
use crate::control::Incoming;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Resolves when standard input reaches end of file (the parent that spawned us is gone).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The next fetched beacon round, if this node follows a chain.
async fn next_round(beacon: &mut Option<crate::beacon::Fetcher>) -> Option<crate::beacon::Fetched> {
    match beacon {
        Some(fetcher) => fetcher.next().await,
        None => std::future::pending().await,
    }
}

/// The first instant of the grid `start + k * ANNOUNCE_TICK` at or after `at`: the
/// housekeeping and the sends' deadlines are looked at on the same instants as a fixed tick
/// would, only not on those where there is nothing to do.
fn tick_at_or_after(start: Instant, at: Instant) -> Instant {
    let tick = ANNOUNCE_TICK.as_nanos();
    let since = at.saturating_duration_since(start).as_nanos();
    let ticks = since.div_ceil(tick);
    // Beyond a few centuries the sleep is as good as none.
    let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
    start + ANNOUNCE_TICK * ticks
}

impl Node {
    /// Fetches the beacon rounds held requests wait for, once published.
    fn fetch_rounds(&mut self) {
        if let Some(fetcher) = &mut self.beacon {
            let awaited = self.engine.awaited_rounds();
            fetcher.poll(now_micros(), &awaited);
            self.rounds_awaited = !awaited.is_empty();
        }
    }

    /// The housekeeping of the announce tick: announcements, directory pulls, the view's
    /// gossip, the owner's expired requests and beacon rounds.
    fn housekeeping(&mut self) -> anyhow::Result<()> {
        self.maybe_announce();
        self.maybe_sync();
        self.gossip_tick();
        self.expire_pending()?;
        self.fetch_rounds();
        Ok(())
    }

    /// When [`housekeeping`](Self::housekeeping) next has something to do, as things stand
    /// (`None`: nothing until an event changes it). Each part's own condition: membership
    /// (`membership_due`), the end of the earliest share window the owner has not answered,
    /// and every tick while a beacon round is awaited (and the tick after, which lets the
    /// fetcher forget its retries). The gossip budgets' clean-up (`GossipPeers::forget`) waits
    /// for the next run: an ended window's budget is renewed on use anyway.
    fn housekeeping_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let pending = self
            .pending
            .values()
            .min()
            .map(|end| now + Duration::from_micros(end.0.saturating_sub(now_micros().0)));
        let rounds = (self.beacon.is_some()
            && (self.rounds_awaited || !self.engine.awaited_rounds().is_empty()))
        .then_some(now);
        [self.membership_due(), pending, rounds]
            .into_iter()
            .flatten()
            .min()
    }

    /// A fetched round: to the engine, which verifies it and plans the requests that wait for
    /// it; a refused round is logged and fetched again from the next relay.
    fn on_round(&mut self, fetched: crate::beacon::Fetched) -> anyhow::Result<()> {
        use crate::beacon::Outcome;
        let outcome = match fetched.result {
            Ok(round) => match self.engine.handle_beacon(now_micros(), round) {
                Ok(()) => {
                    tracing::info!(
                        "beacon round {} verified (from {})",
                        fetched.round,
                        fetched.relay
                    );
                    Outcome::Verified
                }
                Err(e) => {
                    tracing::warn!(
                        "beacon round {} from {} refused: {e}",
                        fetched.round,
                        fetched.relay
                    );
                    Outcome::Refused
                }
            },
            Err(e) => {
                tracing::debug!("beacon round {}: {e}", fetched.round);
                Outcome::Failed
            }
        };
        if let Some(fetcher) = &mut self.beacon {
            fetcher.finished(fetched.round, outcome);
        }
        self.drain()
    }

    pub(super) async fn run(
        &mut self,
        mut ctl_rx: mpsc::Receiver<Incoming>,
        exit_on_stdin_eof: bool,
    ) -> anyhow::Result<()> {
        // The housekeeping's grid (it runs at once, then on the tick after each run whose
        // work is due) and the last instant it ran.
        let start = Instant::now();
        let mut housekept: Option<Instant> = None;
        let mut republish_tick = tokio::time::interval(REPUBLISH_INTERVAL);
        // The last pass over the trusted commissioners' lookups (`agreement::next_pass`).
        let mut requests_polled = start;
        let mut prune_tick = tokio::time::interval(super::connections::PRUNE_TICK);
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Made once: `tokio::signal::ctrl_c()` registered a new listener at every pass.
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let stdin_eof = async {
            if exit_on_stdin_eof {
                stdin_closed().await
            } else {
                std::future::pending().await
            }
        };
        tokio::pin!(stdin_eof);
        while !self.control.shutdown {
            let sleep = match self.next_deadline {
                Some(d) => {
                    let wait = d.0.saturating_sub(now_micros().0);
                    tokio::time::sleep(Duration::from_micros(wait))
                }
                None => tokio::time::sleep(Duration::from_secs(3600)),
            };
            // No polling: the loop wakes at the first send deadline (`sends`) and at the
            // housekeeping's next due tick, or for an event.
            let far = Instant::now() + Duration::from_secs(3600);
            // On the grid too: a send fails on the first tick at or after its deadline, as
            // with the fixed tick before (the same slack for a late ack, no earlier failover).
            let send_deadline = self
                .transport
                .pending_sends
                .next_deadline()
                .map_or(far, |d| tick_at_or_after(start, d));
            let housekeeping_at = match housekept {
                None => start,
                Some(last) => {
                    let due = self.housekeeping_due().unwrap_or(far);
                    tick_at_or_after(start, due.max(last + ANNOUNCE_TICK))
                }
            };
            let requests_at = self.requests_due(requests_polled).unwrap_or(far);
            tokio::select! {
                event = self.transport.swarm.select_next_some() => {
                    // Membership gossip shares the message protocol (`membership`).
                    if let Some(event) = self.intercept_gossip(event) {
                        self.on_swarm_event(event)?;
                    }
                }
                Some(incoming) = ctl_rx.recv() => self.on_control(incoming)?,
                Some(fetched) = next_round(&mut self.beacon) => self.on_round(fetched)?,
                done = self.jobs.next_done() => self.on_job_done(done)?,
                _ = sleep => {
                    if self.next_deadline.is_some() {
                        self.engine.handle_timeout(now_micros());
                        self.drain()?;
                    }
                }
                _ = tokio::time::sleep_until(housekeeping_at.into()) => {
                    housekept = Some(housekeeping_at);
                    self.housekeeping()?;
                }
                _ = tokio::time::sleep_until(send_deadline.into()) => self.expire_sends()?,
                _ = republish_tick.tick() => self.republish_requests(),
                _ = tokio::time::sleep_until(requests_at.into()) => {
                    requests_polled = Instant::now();
                    self.poll_requests(false);
                }
                _ = prune_tick.tick() => self.prune_connections(),
                _ = sigint.recv() => {
                    tracing::info!("interrupted; shutting down");
                    break;
                }
                _ = sigterm.recv() => {
                    tracing::info!("terminated; shutting down");
                    break;
                }
                _ = &mut stdin_eof => {
                    tracing::info!("standard input closed; shutting down");
                    break;
                }
            }
            self.run_loopback()?;
        }
        if self.control.shutdown {
            // Let the control connection that asked for the stop write its answer.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
