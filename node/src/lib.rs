//! # grove-node
//!
//! The `grove` binary's library: the daemon's event loop (one tokio loop that owns the engine,
//! the libp2p swarm and the redb store), its adapters, the local control socket and the CLI.
//! The adapters only move bytes and store them; every protocol decision is the engine's
//! (`grove_protocol`). The node adds the owner's policy: consent to trusted commissioners.
//!
//! - [`cli`]: the command line (thin `main.rs` calls [`cli::main`]).
//! - [`config`]: the data dir, `grove init`, keys.
//! - [`store`]: redb tables.
//! - [`net`]: the libp2p behaviour and byte codec.
//! - [`directory`]: signed peer announcements and the plan provider.
//! - [`daemon`]: the event loop and the drain rule.
//! - [`hook`]: an observer of the daemon's effects, for end-to-end tests.
//! - [`control`]: newline-delimited JSON over a Unix socket.
//! - [`import`]: CSV / JSON / NDJSON record files.
//! - [`query`]: declarative queries on the node: the request a query becomes, records as the
//!   evaluator reads them.
//! - [`consent`]: the owner's policy: which rule accepts or declines a request.
//! - [`trust`]: the validation of a trust entry, shared by the CLI and the console.
//! - [`console`]: the owner's console, a local web page served by the daemon.
//! - [`cozy`], [`webdav`], [`ical`], [`vcard`], [`ingest`]: personal-cloud connectors (a Cozy
//!   export, a Nextcloud account over WebDAV, the local ingest endpoint).
//! - [`procs`], [`demo`]: local clusters of real processes.

pub mod budget;
pub mod cli;
pub mod config;
pub mod consent;
pub mod console;
pub mod control;
pub mod cozy;
pub mod daemon;
pub mod demo;
pub mod directory;
pub mod hook;
pub mod ical;
pub mod import;
pub mod ingest;
pub mod net;
pub mod procs;
pub mod query;
pub mod store;
pub mod trust;
pub mod vcard;
pub mod webdav;
