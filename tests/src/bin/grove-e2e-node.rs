//! The `grove` CLI, built inside this package for the end-to-end tests (see Cargo.toml), with
//! one addition: kill points.
//!
//! If `GROVE_E2E_TRIGGERS` names a directory, the daemon watches its effects
//! (`grove_node::daemon::hook`) and, at each one, looks in that directory for armed triggers: files
//! `kill-NAME` holding one line `WHEN KIND LEVEL [POSITION [PID]]`, where `WHEN` is `persist` (right after the
//! record is durable), `send` (as the engine asks to send; the message never leaves) or
//! `recv` (as a message arrives, before the engine sees it and before it is acknowledged),
//! `KIND` is a record kind (`ShareHeld`, `ManifestAdopted`, ...) or a message kind
//! (`partial`, `heal-go`, ...), and `LEVEL` and `POSITION` are the tree level and the
//! position in its group of the slot the record is about or the message is addressed to
//! (`*`, or no position: any), and `PID` restricts the trigger to one daemon. The first daemon to match claims the
//! trigger by renaming it to `fired-NAME` (a rename succeeds for one process only), writes
//! `fired-NAME.who` (`pid`, then the effect), and SIGKILLs itself. Triggers are read at each
//! effect, so a test arms them while the network runs.
//!
//! If `GROVE_E2E_SKIP_K_MIN` is set, the daemon's engine, as commissioner, ignores `k_min`
//! (`Engine::skipping_k_min_check`): it shows whatever it can reconstruct, so a test sees
//! exactly what the root group released to it.
//!
//! If `GROVE_E2E_INFLATE` holds a number `n`, the daemon lies as a contributor: every element of
//! its encoded vector is `n` times its honest value (`ValidityLie::Inflate`), indicators
//! included, and it proves that inflated vector. Only this test binary reads it; the `grove`
//! binary has no such switch.
//!
//! If `GROVE_TEST_NO_VALIDITY` is set, the daemon neither proves nor checks validity
//! (`hook::install_without_validity`): set on every node of a network, it runs the protocol as
//! before issue 17, so that `scripts/bench-leaf-cpu.sh` can compare whole daemons with proofs
//! and without. The `grove` binary has no such switch.

use grove_e2e::grove_node::daemon::hook::{self, Effect};
use grove_e2e::{TriggerSpec, INFLATE_ENV, SKIP_K_MIN_ENV, TRIGGERS_ENV};
use grove_protocol::engine::ValidityLie;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::ExitCode;

/// Set on every node: no validity proofs (see the crate docs).
const NO_VALIDITY_ENV: &str = "GROVE_TEST_NO_VALIDITY";

fn main() -> ExitCode {
    if std::env::var_os(NO_VALIDITY_ENV).is_some() {
        hook::install_without_validity();
    }
    if let Some(dir) = std::env::var_os(TRIGGERS_ENV) {
        let dir = PathBuf::from(dir);
        hook::install(move |effect| check(&dir, effect));
    }
    let skip_k_min = std::env::var_os(SKIP_K_MIN_ENV).is_some();
    let inflate: Option<u32> = std::env::var(INFLATE_ENV).ok().and_then(|n| n.parse().ok());
    if skip_k_min || inflate.is_some() {
        hook::install_engine_setup(move |engine| {
            let mut engine = if skip_k_min {
                engine.skipping_k_min_check()
            } else {
                engine
            };
            if let Some(n) = inflate {
                engine.lie_in_contribution(ValidityLie::Inflate(n));
            }
            engine
        });
    }
    match grove_e2e::grove_node::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(dir: &std::path::Path, effect: Effect<'_>) {
    let (when, kind, slot) = match effect {
        Effect::Persisted(r) => ("persist", hook::record_kind(r), hook::record_slot(r)),
        Effect::Sending(m) => ("send", m.kind(), m.to),
        Effect::Received(m) => ("recv", m.kind(), m.to),
    };
    let slot = slot.map(|s| (s.group.level, s.position));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_prefix("kill-")) else {
            continue;
        };
        let Some(spec) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| TriggerSpec::parse(&t))
        else {
            continue;
        };
        if !spec.matches(std::process::id(), when, kind, slot) {
            continue;
        }
        let fired = dir.join(format!("fired-{name}"));
        if std::fs::rename(entry.path(), &fired).is_err() {
            continue; // another daemon claimed it first
        }
        let at = slot.map_or("*".to_string(), |(l, p)| format!("{l} {p}"));
        let who = format!("{}\n{when} {kind} {at}\n", std::process::id());
        let _ = std::fs::write(dir.join(format!("fired-{name}.who")), who);
        let _ = kill(Pid::this(), Signal::SIGKILL);
    }
}
