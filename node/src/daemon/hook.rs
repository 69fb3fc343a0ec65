//! An observer of the daemon's effects, for end-to-end tests that must act at an exact point
//! of a computation (SIGKILL a node right after it persisted a given record, or as it is about
//! to send or handle a given message).
//!
//! The `grove` binary never installs one, and then every call here is one atomic load. The
//! end-to-end test binary (`tests/src/bin/grove-e2e-node.rs`) installs one before it runs the
//! CLI. An observer runs inside the event loop, synchronously: what it does (for example kill
//! the process) happens before the loop does anything else.

use grove_protocol::engine::Engine;
use grove_protocol::message::{Message, Slot};
use grove_protocol::record::Record;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// One effect of the daemon, as the observer sees it.
#[derive(Clone, Copy, Debug)]
pub enum Effect<'a> {
    /// The record is durable (its transaction committed); nothing that follows it in the
    /// drain has happened yet.
    Persisted(&'a Record),
    /// The engine asked to send this message; it has not left yet.
    Sending(&'a Message),
    /// This message arrived from another node; the engine has not seen it yet (and the sender
    /// has no acknowledgement).
    Received(&'a Message),
}

type Observer = Box<dyn Fn(Effect<'_>) + Send + Sync>;

static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Installs the process's observer; only the first call has an effect.
pub fn install(observer: impl Fn(Effect<'_>) + Send + Sync + 'static) {
    let _ = OBSERVER.set(Box::new(observer));
}

pub(crate) fn observe(effect: Effect<'_>) {
    if let Some(o) = OBSERVER.get() {
        o(effect);
    }
}

type EngineSetup = Box<dyn Fn(Engine) -> Engine + Send + Sync>;

static ENGINE_SETUP: OnceLock<EngineSetup> = OnceLock::new();

/// Installs a change to the daemon's engine as the daemon builds it; only the first call has
/// an effect. The `grove` binary never installs one; the end-to-end test binary makes a
/// commissioner that ignores `k_min` with it, to show that the root group withholds what it
/// must anyway.
pub fn install_engine_setup(setup: impl Fn(Engine) -> Engine + Send + Sync + 'static) {
    let _ = ENGINE_SETUP.set(Box::new(setup));
}

pub(crate) fn setup_engine(engine: Engine) -> Engine {
    match ENGINE_SETUP.get() {
        Some(setup) => setup(engine),
        None => engine,
    }
}

static WITHOUT_VALIDITY: AtomicBool = AtomicBool::new(false);

/// Turns validity proofs off in this process's daemon: its engine is built without
/// `Engine::checking_validity`, so as a contributor it sends no proof and as a leaf member it
/// admits shares unchecked. Every node of a network must agree on it (a node that checks waits
/// for proofs that never come). Call it before the daemon starts. The `grove` binary never
/// calls it and reads no switch for it; the end-to-end test binary calls it when
/// `GROVE_TEST_NO_VALIDITY` is set, so that `scripts/bench-leaf-cpu.sh` can measure what proofs
/// cost a whole daemon (networking, storage, decoding, verifying) like for like.
pub fn install_without_validity() {
    WITHOUT_VALIDITY.store(true, Ordering::Relaxed);
}

/// Whether the daemon's engine proves and checks validity (always, unless this process's
/// test binary called [`install_without_validity`]).
pub(crate) fn checking_validity() -> bool {
    !WITHOUT_VALIDITY.load(Ordering::Relaxed)
}

/// The name of a record's kind (`"ShareHeld"`, `"ManifestAdopted"`, ...).
pub fn record_kind(record: &Record) -> &'static str {
    match record {
        Record::Accepted { .. } => "Accepted",
        Record::Launched { .. } => "Launched",
        Record::Contribution { .. } => "Contribution",
        Record::ShareHeld { .. } => "ShareHeld",
        Record::ChildHeld { .. } => "ChildHeld",
        Record::ManifestPromised { .. } => "ManifestPromised",
        Record::ManifestAccepted { .. } => "ManifestAccepted",
        Record::ManifestAdopted { .. } => "ManifestAdopted",
        Record::Takeover { .. } => "Takeover",
        Record::Released { .. } => "Released",
        Record::CountsOpened { .. } => "CountsOpened",
        Record::Closed { .. } => "Closed",
        Record::Directory { .. } => "Directory",
        Record::BeaconRound { .. } => "BeaconRound",
        Record::Launching { .. } => "Launching",
        Record::HealGoAnswered { .. } => "HealGoAnswered",
        Record::RequestSeen { .. } => "RequestSeen",
    }
}

/// The position (group and position in it) a record is about, if it is about one.
pub fn record_slot(record: &Record) -> Option<Slot> {
    match record {
        Record::ShareHeld {
            group, position, ..
        }
        | Record::ChildHeld {
            group, position, ..
        }
        | Record::ManifestAdopted {
            group, position, ..
        }
        | Record::ManifestPromised {
            group, position, ..
        }
        | Record::ManifestAccepted {
            group, position, ..
        }
        | Record::Takeover {
            group, position, ..
        }
        | Record::CountsOpened {
            group, position, ..
        }
        | Record::HealGoAnswered {
            group, position, ..
        } => Some(Slot {
            group: *group,
            position: *position,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// The switch is the test binary's alone: this library, which the `grove` binary runs,
    /// reads no environment for it, so a released daemon checks validity whatever its
    /// environment holds (fails if `checking_validity` honours the variable itself).
    #[test]
    fn the_library_ignores_the_test_switch() {
        std::env::set_var("GROVE_TEST_NO_VALIDITY", "1");
        assert!(super::checking_validity());
    }
}
