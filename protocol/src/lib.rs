//! # grove-protocol
//!
//! The sans-IO core of Grove. Nothing in this crate touches a socket, a disk, a clock or the
//! operating system's randomness: time, randomness and identity are passed in, and every
//! effect comes back out of [`engine::Engine::poll_output`] as data. The node (`grove`) and the
//! simulator (`grove-sim`) drive this very same code.
//!
//! Layers, bottom to top:
//! - [`field`]: arithmetic in Goldilocks, GF(2^64 - 2^32 + 1) (prio's `Field64`).
//! - [`encoding`]: signed fixed-point values, clipping and the overflow budget.
//! - [`dp`]: differential privacy: calibration, each contributor's discrete Gaussian noise,
//!   zCDP accounting.
//! - [`sharing`]: vector Shamir sharing, seed-compressed shares, Lagrange coefficients.
//! - [`ids`]: identifiers and domain-separated hashing.
//! - [`request`]: the signed computation request and its validation.
//! - [`query`]: the declarative query language: parser, printer, layout, local evaluation,
//!   decoding of the result.
//! - [`beacon`]: drand beacon rounds (BLS, verified with `drand-verify`) and the plan seed.
//! - [`membership`]: admission certificates, the replicated membership view, selection from a
//!   beacon seed and the candidate-set rule.
//! - [`plan`]: the deterministic tree of groups derived from a request and a peer directory.
//! - [`snapshot`]: a frozen peer directory and its digest, which the driver hands the engine
//!   with each request.
//! - [`planner`]: chooses group size, threshold, fan-in and timeouts from network conditions.
//! - [`message`], [`codec`], [`seal`]: what travels between nodes, and how it is framed and sealed.
//! - [`record`]: what a node persists so that it can resume after a crash.
//! - [`validity`]: fully linear validity proofs (prio's FLPs) checked on Shamir shares.
//! - [`engine`]: the state machine of every role (contributor, aggregator, commissioner).
//! - [`drain`]: the drain rule (persist before send), written once for every driver.
//! - [`limits`]: every named bound in one place.
//! - `check` and `harness` (feature `test-util`): the checkers of a run (privacy, agreement,
//!   exactness, liveness) and the in-process cluster the tests run on; the simulator uses both.

pub mod beacon;
pub mod codec;
pub mod dp;
pub mod drain;
pub mod encoding;
pub mod engine;
pub mod field;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod membership;
pub mod message;
pub mod plan;
pub mod planner;
pub mod query;
pub mod record;
pub mod request;
pub mod seal;
pub mod sharing;
pub mod snapshot;
pub mod validity;

#[cfg(feature = "test-util")]
pub mod check;
#[cfg(feature = "test-util")]
pub mod harness;
