//! The simulation config, read from TOML. Every option is required in the file (no hidden
//! defaults), so a config under `configs/sim/` states every assumption it makes.

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
    pub timeouts: TimeoutsConfig,
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

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuConfig {
    /// Cost of one cryptographic operation (seal or open), in ms, paid once per message sent
    /// and once per message received.
    pub crypto_ms_per_message: f64,
    /// Which messages pay the crypto cost.
    pub crypto_on: CryptoOn,
    /// Compute cost per kB produced or consumed (sharing, summing), in microseconds.
    pub compute_us_per_kb: f64,
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
    /// Delay after which a sender would learn that a message could not be delivered.
    pub detection_delay_ms: f64,
    /// DISSEC's failure oracle: `detection_delay_ms` after a node dies, the nodes that wait on
    /// it or sent to it learn it (`Engine::handle_failure_notice`). Only the DISSEC baseline
    /// configs set it; a deployment has no such oracle.
    pub oracle: bool,
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
        if self.cpu.crypto_ms_per_message < 0.0 || self.cpu.compute_us_per_kb < 0.0 {
            return Err("cpu costs must not be negative".into());
        }
        Ok(())
    }

    /// Contributors: the selected fraction of the nodes other than the commissioner.
    pub fn contributors(&self) -> u32 {
        ((self.network.nodes - 1) as f64 * self.network.selectivity).round() as u32
    }

    /// Leaf groups of the tree for the expected number of contributors.
    pub fn leaf_groups(&self) -> u32 {
        self.contributors()
            .div_ceil(self.protocol.contributors_per_leaf)
            .max(1)
    }
}
