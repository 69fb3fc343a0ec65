//! The simulation config, read from TOML. Every option is required in the file (no hidden
//! defaults), so a config under `configs/sim/` states every assumption it makes.

use grove_protocol::dp::{self, NoiseSpec, Part};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A whole simulation: the network, the protocol parameters and the models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Base seed; run `k` of `--seeds N` uses `seed + k`.
    pub seed: u64,
    pub network: NetworkConfig,
    pub protocol: ProtocolConfig,
    pub payload: PayloadConfig,
    pub latency: LatencyModel,
    pub bandwidth: BandwidthConfig,
    pub cpu: CpuConfig,
    pub gossip: GossipConfig,
    pub failures: FailureConfig,
    pub checks: ChecksConfig,
    pub run: RunConfig,
    /// Differential privacy: absent, the request asks for an exact sum; present, for the noise
    /// its `(epsilon, delta, honest_sources)` calibrate to (see [`PrivacyConfig`]).
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
    /// Byzantine aggregators (`byzantine.rs`): absent, every node is honest.
    #[serde(default)]
    pub byzantine: Option<crate::byzantine::ByzantineConfig>,
    /// Validity proofs' costs (`models::ValidityConfig`): absent, contributions are unproven.
    #[serde(default)]
    pub validity: Option<crate::models::ValidityConfig>,
}

/// A DP query, as `WITH PRIVACY EPSILON e DELTA d HONEST SOURCES h` asks for it: the request
/// carries the `NoiseSpec` that `grove_protocol::dp::calibrate` gives for the simulated vector,
/// so every contributor's engine adds its discrete Gaussian noise before sharing, as the
/// daemon's does. The sensitivity follows from the payload's clip: one owner's vector (an
/// indicator, then `vector_len - 1` integers in `[-value_max_abs, value_max_abs]`) replaced by
/// any other moves the values by at most `2 value_max_abs sqrt(vector_len - 1)` in L2 (the
/// query language's `sum_vector` under `CLIP NORM`), the indicator by 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    pub epsilon: f64,
    pub delta: f64,
    /// The guarantee holds while the root sums at least this many contributors' noise; the
    /// root releases nothing of a version summing fewer.
    pub honest_sources: u32,
    /// CPU time a contributor spends sampling one element's noise (charged per declared
    /// element in the work model, in either payload mode), in ns; `grove-sim crypto-cost`
    /// measures it.
    pub noise_ns_per_element: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Nodes in the network (the commissioner is node 0 and never contributes).
    pub nodes: u32,
    /// Fraction of the other nodes whose data matches the request and who contribute.
    pub selectivity: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Group size.
    pub g: u8,
    /// Shamir threshold.
    pub t: u8,
    /// Minimum number of contributors the result must cover.
    pub k_min: u64,
    /// Children per inner group.
    pub fan_in: u32,
    /// Expected contributors per leaf group: `leaf_groups = ceil(contributors / this)`.
    pub contributors_per_leaf: u32,
    /// Ordered backups listed per position.
    pub backups: u8,
    /// Lifetime of the computation (deadline minus creation), in seconds.
    pub lifetime_s: f64,
    /// Recovery strategy every engine plays: Grove's, or a DISSEC baseline.
    pub strategy: StrategyName,
    /// Leaf members know how many contributors their group has and stop collecting once
    /// every share is in (DISSEC's leaf aggregators know their contributor list); otherwise
    /// they wait for the share window.
    pub leaf_roster: bool,
    /// A member that holds every item of its group sends its partial sum ahead of agreement
    /// (`grove_protocol::engine::Strategy::send_ahead`): Grove's, and a variant of each
    /// baseline.
    pub send_ahead: bool,
    /// Shares to `t - 1` positions travel as 32-byte seeds (Grove's compressed sharing). Off:
    /// every share is charged as a full vector, as DISSEC's additive shares are. The receiver
    /// of a seed still pays for expanding it (`cpu.expand_ns_per_element`).
    pub seed_compression: bool,
    /// The request names a round of the run's local beacon chain and every engine plans from
    /// it, as the daemon does (`sim.rs`, `SimBeacon`); off, the plan's seed is a hash of the
    /// request id (a request that names no round). On unless a config says otherwise.
    #[serde(default = "beacon_on")]
    pub beacon: bool,
    pub timeouts: TimeoutsConfig,
}

fn beacon_on() -> bool {
    true
}

/// The engine's recovery strategy (`grove_protocol::engine::StrategyKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// Heal missing children from the child group, re-collect leaf shares, collection window.
    Grove,
    /// DISSEC's S&P: cut the failed subtree (no heal, no re-collection), full synchronisation.
    Sp,
    /// DISSEC's HighCmpl: replace failed members, children re-send to the replacement.
    Highcmpl,
}

impl StrategyName {
    pub fn kind(self) -> grove_protocol::engine::StrategyKind {
        use grove_protocol::engine::StrategyKind;
        match self {
            StrategyName::Grove => StrategyKind::Grove,
            StrategyName::Sp => StrategyKind::SafePrecise,
            StrategyName::Highcmpl => StrategyKind::HighCompleteness,
        }
    }
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyName::Grove => "grove",
            StrategyName::Sp => "sp",
            StrategyName::Highcmpl => "highcmpl",
        })
    }
}

/// The protocol's timers, in milliseconds (see `grove_protocol::request::Timeouts`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub share_window_ms: f64,
    pub collect_window_ms: f64,
    pub level_span_ms: f64,
    pub report_window_ms: f64,
    pub manifest_timeout_ms: f64,
    pub heal_attempt_ms: f64,
    pub release_window_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadMode {
    /// The engine carries vectors of the declared length: the checkers see real sums.
    Full,
    /// The engine carries vectors of length 1; bandwidth and CPU are charged as if the
    /// declared length were carried.
    SizeOnly,
}

impl fmt::Display for PayloadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadMode::Full => "full",
            PayloadMode::SizeOnly => "size-only",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadConfig {
    pub mode: PayloadMode,
    /// Declared vector length, in field elements of 8 bytes (131,072 elements = 1,024 kB).
    pub vector_len: u32,
    /// Each contributed value is drawn uniformly from integers in `[-max_abs, max_abs]`.
    pub value_max_abs: f64,
}

/// One-way latency of a link, drawn independently per message.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LatencyModel {
    Fixed {
        ms: f64,
    },
    /// Rayleigh with the given mean: `sigma = mean / sqrt(pi / 2)`.
    Rayleigh {
        mean_ms: f64,
    },
    /// Rayleigh with the given median, capped at `max_ms`, as DISSEC's simulator draws it
    /// (`sigma = median / sqrt(2 ln 2)`, then `min(draw, average * maxToAverageRatio)`).
    RayleighMedian {
        median_ms: f64,
        max_ms: f64,
    },
    /// `exp(N(ln median, sigma^2))`.
    LogNormal {
        median_ms: f64,
        sigma: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthConfig {
    /// Per-node uplink, in kB/s (1 kB = 1,024 bytes). Messages leave one after the other.
    pub upload_kb_per_s: f64,
    /// Per-node downlink, in kB/s. Messages arrive one after the other. `inf`: not charged.
    pub download_kb_per_s: f64,
    /// Whether the downlink is charged at all. `false` is DISSEC's simulator's model: a
    /// transfer costs only the sender's uplink time, and a node receives from several senders
    /// in parallel.
    pub charge_downlink: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CryptoOn {
    /// Every message sent and received pays the crypto cost.
    All,
    /// Only messages that carry shares or sums (share, partial, heal-part, release-share).
    Payload,
}

/// What the nodes' CPUs are charged. Every message costs its sender CPU time before it leaves
/// and its receiver CPU time before the engine sees it; a node does one thing at a time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CpuConfig {
    /// Per byte on the wire: a fixed crypto cost per message and a compute cost per kB of the
    /// message's charged bytes (so a 32-byte seed share is nearly free to its receiver).
    PerKb {
        /// Cost of one cryptographic operation (seal or open), in ms, paid once per message
        /// sent and once per message received.
        crypto_ms_per_message: f64,
        /// Which messages pay the crypto cost.
        crypto_on: CryptoOn,
        /// Compute cost per kB produced or consumed (sharing, summing), in microseconds.
        compute_us_per_kb: f64,
    },
    /// Per unit of work the engine really does: sharing, expanding seeds, opening and summing
    /// vectors of the declared length, per message and per byte of transport, and a write
    /// and fsync per batch of persisted records (see [`WorkCosts`]).
    Work(WorkCosts),
}

/// The costs of the engine's work, by operation. An element is one 8-byte field element of
/// the contribution vector (`payload.vector_len` of them per vector, in either payload mode).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkCosts {
    /// Every message sent and every message received (framing, the transport's per-message
    /// work), in microseconds.
    pub message_us: f64,
    /// Every byte sent and every byte received (the transport's encryption, the codec), in ns.
    pub wire_ns_per_byte: f64,
    /// A share's envelope at each end: the X25519 agreement (its authenticated encryption is
    /// charged per byte, `wire_ns_per_byte`, on top of the transport's), in microseconds.
    pub envelope_us: f64,
    /// Every time a node shares its contribution (checks, key derivation), in microseconds.
    pub contribute_us: f64,
    /// Producing one share of one element; a contributor produces `g` shares per element.
    pub share_ns_per_element: f64,
    /// Taking one received vector into a sum (a share, a partial sum, a heal part, a release
    /// share: an addition or a Lagrange multiply-add), per element, in ns.
    pub absorb_ns_per_element: f64,
    /// Expanding a 32-byte seed into a vector (a seed share at its receiver, a heal part's
    /// mask at its sender), per element, in ns.
    pub expand_ns_per_element: f64,
    /// Writing and fsyncing one batch of records (the engine's records before a send are
    /// committed together, as the daemon does), in microseconds.
    pub persist_us: f64,
    /// Per byte persisted (the records' encoding, with vectors of the declared length), in ns.
    pub persist_ns_per_byte: f64,
}

impl CpuConfig {
    /// The compute cost per kB (1,024 bytes) of vector handled, as the planner models it.
    pub fn compute_us_per_kb(&self) -> f64 {
        match *self {
            CpuConfig::PerKb {
                compute_us_per_kb, ..
            } => compute_us_per_kb,
            CpuConfig::Work(w) => {
                (w.absorb_ns_per_element + w.expand_ns_per_element) * 128.0 / 1000.0
                    + w.wire_ns_per_byte * 1024.0 / 1000.0
            }
        }
    }

    /// The cost of one cryptographic operation, in microseconds, as the planner models it.
    pub fn crypto_us(&self) -> f64 {
        match *self {
            CpuConfig::PerKb {
                crypto_ms_per_message,
                ..
            } => crypto_ms_per_message * 1000.0,
            CpuConfig::Work(w) => w.envelope_us + w.message_us,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipConfig {
    /// Gossip fan-out: a broadcast reaches a node after `ceil(log_fanout(nodes))` hops, each
    /// with an independent latency draw. Gossip is not charged on any uplink.
    pub fanout: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    pub uniform: UniformFailures,
    pub churn: ChurnConfig,
    /// Kills of chosen roles at chosen phases.
    pub kill: Vec<KillConfig>,
    /// Failure detection is by timeout only: a receiver acknowledges a message once its engine
    /// handled it (the acknowledgement travels back one latency), and a sender that has no
    /// acknowledgement this long after the message's last byte left its uplink learns that it
    /// was not delivered (whether the receiver is dead or only slow) and fails it over. The
    /// failure oracle (below) uses the same delay.
    pub detection_delay_ms: f64,
    /// Whether the detection delay runs from the moment the engine handed the message to the
    /// transport instead of from its last byte leaving the uplink: the daemon's request
    /// timeout (`net::MESSAGE_TIMEOUT`) starts when the request is sent, so it also covers the
    /// message's wait for the uplink and its upload. Off (the last byte) unless a config says
    /// so; the comparison tables leave it off, the detection-delay check of large vectors turns
    /// it on.
    #[serde(default)]
    pub detection_counts_upload: bool,
    /// A size-aware deadline, the daemon's rule (`net::message_deadline`): the sender waits
    /// `detection_delay_ms` plus, over this rate (kB/s), the bytes the message waits behind on
    /// the sender's uplink and its own, so a large vector queued behind others gets the time
    /// their upload takes and a small message is detected after the fixed part alone (the
    /// daemon counts all its unacknowledged bytes ahead, an upper bound on that queue). 0 (the
    /// default): no size term, the same delay for every message.
    #[serde(default)]
    pub detection_min_kb_per_s: f64,
    /// The daemon's whole rule (`net::message_deadline`), with `detection_counts_upload` and a
    /// size term: the bytes ahead are the queue of a virtual uplink of the minimum rate fed
    /// with every send of the node (the daemon's count, an upper bound on the real queue of
    /// any uplink at least that fast), and the deadline also counts one
    /// vector of the computation's length at `detection_min_kb_per_s`: the receiver
    /// acknowledges after handling and persisting the message, so a message waits behind the
    /// vectors its receiver is still handling, and a fixed part short enough for 1,024 kB
    /// vectors fires on busy live receivers of 8,192 kB ones (sim/README.md, "Detection
    /// delay"). Off by default (the earlier rule).
    #[serde(default)]
    pub detection_counts_vector: bool,
    /// DISSEC's failure oracle (its model of health checks between neighbours of the tree):
    /// `oracle_delay_ms` after a node dies, the nodes that wait on it or sent to it learn it
    /// (`Engine::handle_failure_notice`). Only the DISSEC baseline configs set it; Grove's
    /// daemon has no such detector, only its acknowledgement timeouts.
    pub oracle: bool,
    /// The oracle's delay: DISSEC's `2 * maxToAverageRatio * averageLatency` = 660 ms in its
    /// own model; equal to `detection_delay_ms` where every protocol must detect failures
    /// with the same delay.
    pub oracle_delay_ms: f64,
}

/// DISSEC's model: each node dies with `probability` at a uniform time in `[0, W]` after the
/// launch, `W = 100 / rate_percent_per_s` seconds. Rate 0 disables it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniformFailures {
    pub rate_percent_per_s: f64,
    pub probability: f64,
}

/// Exponential churn: each node fails after an exponential time with mean `mean_up_s`; with
/// `rejoin` it comes back after an exponential time with mean `mean_down_s`, restored from its
/// persisted records. `mean_up_s = 0` disables churn.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnConfig {
    pub mean_up_s: f64,
    pub rejoin: bool,
    pub mean_down_s: f64,
}

/// Kill the member at `position` of group `(level, index)`: at `at_ms` after the launch if set,
/// else right after its first send of a message of kind `after_send` (for example "partial",
/// "manifest", "report", "root-ready"; `a|b` matches either, as in "partial|partial-confirm":
/// once the member handed its sum up, whether it sent it ahead of agreement or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillConfig {
    pub level: u8,
    pub index: u32,
    pub position: u8,
    pub at_ms: Option<f64>,
    pub after_send: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// Track every share each node receives (memory grows with contributors times `g`).
    pub privacy: bool,
    /// Compare the released sum with the plaintext sum over the reported set.
    pub sum: bool,
    /// Count a node's holding as an exposure from this many shares of one subject instead
    /// of `t` (a test of the checker itself sets 1; requests refuse `t = 1`).
    #[serde(default)]
    pub exposure_shares: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Stop once the commissioner released or failed (skips the finish broadcast).
    pub stop_after_result: bool,
    /// Hard limit of simulated time after the launch, in seconds.
    pub max_sim_s: f64,
    /// Hard limit of events per run (a livelock fails loudly instead of hanging).
    pub max_events: u64,
}

impl SimConfig {
    /// Parses a config from TOML text.
    pub fn from_toml(text: &str) -> Result<SimConfig, String> {
        let value: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        SimConfig::from_value(value)
    }

    /// Parses a config from a TOML value, then checks it.
    pub fn from_value(value: toml::Value) -> Result<SimConfig, String> {
        let config: SimConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Sets the option at a dotted path (for example `failures.uniform.rate_percent_per_s`)
    /// in a config's TOML value; the new value keeps the old one's type.
    pub fn set_param(value: &mut toml::Value, path: &str, raw: &str) -> Result<(), String> {
        let mut cur = value;
        for key in path.split('.') {
            cur = cur
                .get_mut(key)
                .ok_or_else(|| format!("no option {path} (missing {key})"))?;
        }
        *cur = match cur {
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.parse()
                    .map_err(|e| format!("{path} = {raw}: not an integer: {e}"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                raw.parse()
                    .map_err(|e| format!("{path} = {raw}: not a number: {e}"))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                raw.parse()
                    .map_err(|e| format!("{path} = {raw}: not a boolean: {e}"))?,
            ),
            toml::Value::String(_) => toml::Value::String(raw.to_string()),
            _ => return Err(format!("{path} is not a scalar option")),
        };
        Ok(())
    }

    /// Checks ranges the models rely on.
    pub fn check(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be positive, got {v}"))
            }
        };
        if self.network.nodes < 2 {
            return Err("network.nodes must be at least 2".into());
        }
        if let Some(b) = &self.byzantine {
            b.check()?;
        }
        if !(0.0..=1.0).contains(&self.network.selectivity) {
            return Err("network.selectivity must be in [0, 1]".into());
        }
        if self.protocol.contributors_per_leaf == 0 {
            return Err("protocol.contributors_per_leaf must be positive".into());
        }
        if self.payload.vector_len == 0 {
            return Err("payload.vector_len must be positive".into());
        }
        positive("bandwidth.upload_kb_per_s", self.bandwidth.upload_kb_per_s)?;
        // `inf` leaves downlinks uncharged (DISSEC's simulator charges only the sender).
        if self.bandwidth.download_kb_per_s != f64::INFINITY {
            positive(
                "bandwidth.download_kb_per_s",
                self.bandwidth.download_kb_per_s,
            )?;
        }
        positive("protocol.lifetime_s", self.protocol.lifetime_s)?;
        positive("run.max_sim_s", self.run.max_sim_s)?;
        match self.latency {
            LatencyModel::Fixed { ms } if ms >= 0.0 => {}
            LatencyModel::Rayleigh { mean_ms } if mean_ms >= 0.0 => {}
            LatencyModel::RayleighMedian { median_ms, max_ms }
                if median_ms >= 0.0 && max_ms >= 0.0 => {}
            LatencyModel::LogNormal { median_ms, sigma } if median_ms > 0.0 && sigma >= 0.0 => {}
            other => return Err(format!("latency parameters out of range: {other:?}")),
        }
        if self.gossip.fanout < 2 {
            return Err("gossip.fanout must be at least 2".into());
        }
        let u = &self.failures.uniform;
        if u.rate_percent_per_s < 0.0 || !(0.0..=1.0).contains(&u.probability) {
            return Err("failures.uniform out of range".into());
        }
        let c = &self.failures.churn;
        if c.mean_up_s < 0.0 || (c.rejoin && c.mean_down_s <= 0.0) {
            return Err("failures.churn out of range".into());
        }
        for k in &self.failures.kill {
            if k.at_ms.is_none() == k.after_send.is_none() {
                return Err("failures.kill: set exactly one of at_ms and after_send".into());
            }
        }
        let costs: Vec<f64> = match self.cpu {
            CpuConfig::PerKb {
                crypto_ms_per_message,
                compute_us_per_kb,
                ..
            } => vec![crypto_ms_per_message, compute_us_per_kb],
            CpuConfig::Work(w) => vec![
                w.message_us,
                w.wire_ns_per_byte,
                w.envelope_us,
                w.contribute_us,
                w.share_ns_per_element,
                w.absorb_ns_per_element,
                w.expand_ns_per_element,
                w.persist_us,
                w.persist_ns_per_byte,
            ],
        };
        if costs.iter().any(|c| !(c.is_finite() && *c >= 0.0)) {
            return Err("cpu costs must be finite and not negative".into());
        }
        if let Some(p) = &self.privacy {
            if !(p.noise_ns_per_element.is_finite() && p.noise_ns_per_element >= 0.0) {
                return Err("privacy.noise_ns_per_element must be finite and not negative".into());
            }
            self.noise_spec(self.payload.vector_len)?;
        }
        if self.failures.detection_delay_ms <= 0.0 {
            return Err("failures.detection_delay_ms must be positive".into());
        }
        if self.failures.detection_min_kb_per_s.is_nan()
            || self.failures.detection_min_kb_per_s < 0.0
        {
            return Err("failures.detection_min_kb_per_s must be 0 (off) or positive".into());
        }
        if self.failures.detection_counts_vector && self.failures.detection_min_kb_per_s <= 0.0 {
            return Err(
                "failures.detection_counts_vector needs a positive detection_min_kb_per_s".into(),
            );
        }
        Ok(())
    }

    /// Contributors: the selected fraction of the nodes other than the commissioner.
    pub fn contributors(&self) -> u32 {
        ((self.network.nodes - 1) as f64 * self.network.selectivity).round() as u32
    }

    /// The noise of the `[privacy]` section for a simulated vector of `length` elements (the
    /// engine's length: the declared one, or 1 in size-only mode), calibrated by the protocol's
    /// `dp::calibrate`; `None` without the section.
    pub fn noise_spec(&self, length: u32) -> Result<Option<NoiseSpec>, String> {
        let Some(p) = &self.privacy else {
            return Ok(None);
        };
        let length = length.max(1) as usize;
        dp::calibrate(
            &self.dp_parts(length as u32),
            length,
            1,
            p.epsilon,
            p.delta,
            p.honest_sources,
        )
        .map(Some)
        .map_err(|e| format!("privacy: {e}"))
    }

    /// The parts of a simulated vector of `length` elements with their L2 sensitivity (see
    /// [`PrivacyConfig`]): the indicator, then the values.
    pub fn dp_parts(&self, length: u32) -> Vec<Part> {
        let length = length.max(1) as usize;
        let mut parts = vec![Part {
            columns: 0..1,
            l2: 1.0,
        }];
        if length > 1 {
            // The request's clip (`sim::declared_spec`).
            let bound = self.payload.value_max_abs.max(1.0);
            parts.push(Part {
                columns: 1..length,
                l2: 2.0 * bound * ((length - 1) as f64).sqrt(),
            });
        }
        parts
    }

    /// Leaf groups of the tree for the expected number of contributors.
    pub fn leaf_groups(&self) -> u32 {
        self.contributors()
            .div_ceil(self.protocol.contributors_per_leaf)
            .max(1)
    }
}
