//! # grove-protocol
//!
//! The sans-IO core of Grove. Nothing in this crate touches a socket, a disk, a clock or the
//! operating system's randomness: time, randomness and identity are passed in, and every
//! effect comes back out of [`engine::Engine::poll_output`] as data. The node (`grove`) and the
//! simulator (`grove-sim`) drive this very same code.
//!
//! Layers, bottom to top:
//! - [`field`]: arithmetic in GF(2^61 - 1).
//! - [`encoding`]: signed fixed-point values, clipping and the overflow budget.
//! - [`dp`]: differential privacy: calibration, each contributor's discrete Gaussian noise,
//!   zCDP accounting.
//! - [`sharing`]: vector Shamir sharing, seed-compressed shares, Lagrange coefficients.
//! - [`ids`]: identifiers and domain-separated hashing.
//! - [`request`]: the signed computation request and its validation.
//! - [`query`]: the declarative query language: parser, printer, layout, local evaluation,
//!   decoding of the result.
//! - [`plan`]: the deterministic tree of groups derived from a request and a peer directory.
//! - [`snapshot`]: a frozen peer directory and its digest, which the driver hands the engine
//!   with each request.
//! - [`planner`]: chooses group size, threshold, fan-in and timeouts from network conditions.
//! - [`message`], [`codec`], [`seal`]: what travels between nodes, and how it is framed and sealed.
//! - [`record`]: what a node persists so that it can resume after a crash.
//! - [`engine`]: the state machine of every role (contributor, aggregator, commissioner).
//! - [`limits`]: every named bound in one place.

pub mod codec;
pub mod dp;
pub mod encoding;
pub mod engine;
pub mod field;
pub mod ids;
pub mod limits;
pub mod message;
pub mod plan;
pub mod planner;
pub mod query;
pub mod record;
pub mod request;
pub mod seal;
pub mod sharing;
pub mod snapshot;

#[cfg(feature = "test-util")]
pub mod harness;
