//! # grove-node
//!
//! The `grove` binary's library: the daemon's event loop (one tokio loop that owns the engine,
//! the libp2p swarm and the redb store), its adapters, the local control socket and the CLI.
//! The adapters only move bytes and store them; every protocol decision is the engine's
//! (`grove_protocol`). The node adds the owner's policy: consent to trusted commissioners.
//!
//! The folders, from the top of the import graph down (no module imports one above it):
//! - [`cli`]: the command line (thin `main.rs` calls [`cli::main`]); [`demo`] and [`procs`]:
//!   local clusters of real processes.
//! - [`console`]: the owner's console, a local web page served by the daemon.
//! - [`daemon`]: the event loop and the drain rule, with the libp2p behaviour
//!   ([`daemon::net`]), signed peer announcements and the plan provider
//!   ([`daemon::directory`]) and an observer of its effects for end-to-end tests
//!   ([`daemon::hook`]).
//! - [`sources`]: where records come from (files, a Cozy export, Nextcloud over WebDAV with
//!   iCalendar and vCard, the local ingest endpoint).
//! - [`owner`]: the owner's policy: trust, consent rules, defaults, queries on stored records.
//! - [`control`]: newline-delimited JSON over a Unix socket, the local commands' wire.
//! - [`config`]: the data dir, `grove init`, keys, the config file.
//! - [`admission`]: the `[admission]` section, `grove admit`, and the admitted set the engine
//!   checks candidate sets against.
//! - [`beacon`]: the drand chain of the config, rounds fetched from relays, and the local test
//!   chain's relay.
//! - [`store`]: redb tables.
//! - [`clock`]: the wall clock.

pub mod admission;
pub mod beacon;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod latency;
pub mod owner;
pub mod procs;
pub mod sources;
pub mod store;
