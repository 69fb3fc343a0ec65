//! The end-to-end tests, one test binary: each module was a binary of its own, and each linked
//! libp2p, redb and the node; as modules of one target they link once. What each test shows is
//! listed in the crate docs of `grove_e2e` (`tests/src/lib.rs`).
//!
//! Every test holds [`grove_e2e::serial`] while it runs, so one network runs at a time, as when
//! cargo ran the binaries one after another. Run one test with its module path, e.g.
//! `cargo test -p grove-e2e --test e2e compute_sum::`.

mod pdms_support;

mod admission;
mod beacon;
mod cleanup;
mod compute_sum;
mod connection_target;
mod consent;
mod console;
mod cozy_import;
mod directory_agreement;
mod forged_copy;
mod hostile_flood;
mod hostile_requests;
mod import_crash;
mod inflate;
mod kill_restart;
mod late_eligible;
mod late_join;
mod lookups_at_rest;
mod membership_gossip;
mod oracle;
mod oracle_processes;
mod parity;
mod pdms_e2e;
mod peer_limits;
mod phase_kill_inner;
mod phase_kill_leaf;
mod phase_kill_root;
mod privacy_budget;
mod release_rules;
mod replay_after_close;
mod scale60;
mod silent_member;
mod untrusted;
mod webdav_sync;
