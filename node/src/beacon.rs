//! The randomness beacon on the node's side (the verification and the plan seed are in
//! `grove_protocol::beacon`, sans-IO).
//!
//! - [`BeaconConfig`]: the chain a node follows (the `[beacon]` section of its config: scheme,
//!   public key, chain hash, genesis, period) and the relays it reads rounds from.
//! - [`Fetcher`]: the daemon asks the engine which rounds its held requests wait for
//!   (`Engine::awaited_rounds`), fetches each one once it is published, over HTTP from a relay
//!   in drand's JSON format (`GET {relay}/{chain hash}/public/{round}`), and hands it to
//!   `Engine::handle_beacon`, which verifies its BLS signature under the configured key and
//!   refuses a round with a bad signature or of another chain. A refused or failed fetch is
//!   retried from the next relay. HTTP runs on blocking threads (`ureq`, already the client
//!   of the WebDAV sync) so the event loop never waits on a relay.
//! - [`serve`]: a relay of the local test chain (`TestChain`, a known test key) in drand's
//!   format, which `grove demo` and the end-to-end tests run; with `forge_with` it signs with
//!   another key, as a lying relay would.

use anyhow::{bail, Context};
use grove_protocol::beacon::{Beacon, ChainInfo, Round, Scheme, TestChain};
use grove_protocol::ids::{hex, Micros};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A commissioner names the first round published at least this long after it signs its
/// request: time for the request to reach every node before the round's randomness is out
/// (nodes refuse a request first seen after its round, beyond the clock skew).
pub const BEACON_LEAD: Duration = Duration::from_secs(2);
/// Largest relay answer read (a drand round is about 300 bytes of JSON).
pub const MAX_ROUND_BODY_BYTES: u64 = 4096;
/// Largest number of round fetches running at once.
pub const MAX_BEACON_FETCHES: usize = 8;
/// Largest number of rounds whose retry time the fetcher remembers.
pub const MAX_BEACON_RETRIES: usize = 1024;
/// One fetch's time limit.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Gap before a round that failed (not published yet at the relay, a refused signature, an
/// unreachable relay) is asked for again, from the next relay.
pub const RETRY_GAP: Duration = Duration::from_millis(500);

/// The `[beacon]` section of the config: the drand chain this node follows and its relays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconConfig {
    /// drand's scheme id (`schemeID` of the chain's info), e.g. "bls-unchained-g1-rfc9380".
    pub scheme: String,
    /// The group public key, hex (`public_key` of the chain's info).
    pub public_key: String,
    /// The chain hash, hex (`hash` of the chain's info): requests name it.
    pub chain_hash: String,
    /// Unix time of round 1 (`genesis_time`).
    pub genesis_time_secs: u64,
    /// Seconds between rounds (`period`).
    pub period_secs: u32,
    /// Relays to read rounds from (base URLs), tried in turn.
    pub relays: Vec<String>,
}

pub(crate) fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        bail!("not hex: odd length or non-ASCII");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("not hex"))
        .collect()
}

impl BeaconConfig {
    /// The section describing `info`, read from `relays`.
    pub fn of(info: &ChainInfo, relays: Vec<String>) -> BeaconConfig {
        BeaconConfig {
            scheme: info.scheme.id().to_string(),
            public_key: hex(&info.public_key),
            chain_hash: hex(&info.chain_hash),
            genesis_time_secs: info.genesis_time_secs,
            period_secs: info.period_secs,
            relays,
        }
    }

    pub fn chain_info(&self) -> anyhow::Result<ChainInfo> {
        let scheme = Scheme::from_id(&self.scheme)
            .with_context(|| format!("unknown beacon scheme {:?}", self.scheme))?;
        let chain_hash: [u8; 32] = unhex(&self.chain_hash)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("the beacon chain hash is not 32 bytes"))?;
        Ok(ChainInfo {
            chain_hash,
            public_key: unhex(&self.public_key).context("beacon public key")?,
            period_secs: self.period_secs,
            genesis_time_secs: self.genesis_time_secs,
            scheme,
        })
    }

    /// The verifier of this chain (the key parsed and checked).
    pub fn beacon(&self) -> anyhow::Result<Beacon> {
        if self.relays.is_empty() {
            bail!("the [beacon] section names no relay");
        }
        Beacon::new(self.chain_info()?).map_err(|e| anyhow::anyhow!("beacon chain: {e}"))
    }

    /// The `[beacon]` section as TOML text, to append to a config file.
    pub fn to_toml_section(&self) -> String {
        #[derive(Serialize)]
        struct Section<'a> {
            beacon: &'a BeaconConfig,
        }
        // Serialising plain strings and integers cannot fail.
        toml::to_string(&Section { beacon: self }).unwrap_or_default()
    }
}

/// One round as drand's HTTP API serves it.
#[derive(Debug, Serialize, Deserialize)]
struct RoundJson {
    round: u64,
    #[serde(default)]
    randomness: String,
    signature: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    previous_signature: String,
}

/// Parses a relay's answer for `round` (remote input: only an error, never a panic). The
/// signature is not checked here: `Engine::handle_beacon` verifies it.
pub fn parse_round(expected: u64, body: &[u8]) -> Result<Round, String> {
    let json: RoundJson =
        serde_json::from_slice(body).map_err(|e| format!("not a drand round: {e}"))?;
    if json.round != expected {
        return Err(format!("asked for round {expected}, got {}", json.round));
    }
    let signature = unhex(&json.signature).map_err(|e| format!("signature: {e}"))?;
    let previous_signature =
        unhex(&json.previous_signature).map_err(|e| format!("previous signature: {e}"))?;
    Ok(Round {
        round: json.round,
        signature,
        previous_signature,
    })
}

/// Fetches `round` of the chain `chain_hash` from `relay` (blocking).
pub fn fetch_round(relay: &str, chain_hash: &[u8; 32], round: u64) -> Result<Round, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .new_agent();
    let url = format!(
        "{}/{}/public/{round}",
        relay.trim_end_matches('/'),
        hex(chain_hash)
    );
    let mut response = agent.get(&url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ROUND_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))?;
    parse_round(round, &body).map_err(|e| format!("{url}: {e}"))
}

/// A fetch's outcome, back on the event loop.
pub struct Fetched {
    pub round: u64,
    pub relay: String,
    pub result: Result<Round, String>,
}

/// The rounds being fetched and when to retry the others; counts of what the relays gave.
pub struct Fetcher {
    beacon: Arc<Beacon>,
    relays: Vec<String>,
    next_relay: usize,
    in_flight: BTreeSet<u64>,
    retry_at: BTreeMap<u64, Instant>,
    tx: mpsc::Sender<Fetched>,
    rx: mpsc::Receiver<Fetched>,
    /// Rounds the engine verified.
    pub verified: u64,
    /// Rounds the engine refused (bad signature, another chain's).
    pub refused: u64,
    /// Fetches that brought no round (not published yet, relay unreachable, bad JSON).
    pub failed: u64,
}

impl Fetcher {
    pub fn new(beacon: Arc<Beacon>, relays: Vec<String>) -> Fetcher {
        let (tx, rx) = mpsc::channel(MAX_BEACON_FETCHES);
        Fetcher {
            beacon,
            relays,
            next_relay: 0,
            in_flight: BTreeSet::new(),
            retry_at: BTreeMap::new(),
            tx,
            rx,
            verified: 0,
            refused: 0,
            failed: 0,
        }
    }

    pub fn beacon(&self) -> &Arc<Beacon> {
        &self.beacon
    }

    /// The round a request signed at `now` names: the first published at least
    /// [`BEACON_LEAD`] later.
    pub fn round_to_name(&self, now: Micros) -> u64 {
        self.beacon
            .first_round_after(now.plus(BEACON_LEAD.as_micros() as u64))
    }

    /// Starts fetching every awaited round that is published by `now` and not being fetched
    /// or waiting for its retry time.
    pub fn poll(&mut self, now: Micros, awaited: &[u64]) {
        if self.relays.is_empty() {
            return;
        }
        let wanted: BTreeSet<u64> = awaited.iter().copied().collect();
        self.retry_at.retain(|r, _| wanted.contains(r));
        let instant = Instant::now();
        for &round in awaited {
            if self.in_flight.len() >= MAX_BEACON_FETCHES {
                break;
            }
            if self.in_flight.contains(&round)
                || self.beacon.round_time(round) > now
                || self.retry_at.get(&round).is_some_and(|t| *t > instant)
            {
                continue;
            }
            let relay = self.relays[self.next_relay % self.relays.len()].clone();
            let chain_hash = self.beacon.info().chain_hash;
            let tx = self.tx.clone();
            self.in_flight.insert(round);
            tokio::task::spawn_blocking(move || {
                let result = fetch_round(&relay, &chain_hash, round);
                // The receiver lives as long as the daemon; after it, nobody cares.
                let _ = tx.blocking_send(Fetched {
                    round,
                    relay,
                    result,
                });
            });
        }
    }

    /// The next finished fetch.
    pub async fn next(&mut self) -> Option<Fetched> {
        self.rx.recv().await
    }

    /// Notes a fetch's end: `ok` if the engine took the round. A failure moves on to the
    /// next relay and waits [`RETRY_GAP`].
    pub fn finished(&mut self, round: u64, outcome: Outcome) {
        self.in_flight.remove(&round);
        match outcome {
            Outcome::Verified => {
                self.verified += 1;
                self.retry_at.remove(&round);
                return;
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Failed => self.failed += 1,
        }
        self.next_relay = self.next_relay.wrapping_add(1);
        if self.retry_at.len() < MAX_BEACON_RETRIES || self.retry_at.contains_key(&round) {
            self.retry_at.insert(round, Instant::now() + RETRY_GAP);
        }
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "chain_hash": hex(&self.beacon.info().chain_hash),
            "scheme": self.beacon.info().scheme.id(),
            "relays": self.relays,
            "rounds_verified": self.verified,
            "rounds_refused": self.refused,
            "fetches_failed": self.failed,
            "fetching": self.in_flight.len(),
        })
    }
}

/// What became of a fetched round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    Refused,
    Failed,
}

/// The local chain `grove demo` and the tests run: quicknet's scheme (unchained, signatures
/// on G1), a test key from `key_seed`, rounds every `period_secs` from `genesis_time_secs`.
pub fn local_chain(key_seed: &[u8], genesis_time_secs: u64, period_secs: u32) -> TestChain {
    TestChain::new(
        Scheme::BlsUnchainedG1Rfc9380,
        key_seed,
        genesis_time_secs,
        period_secs,
    )
}

/// A running relay task; dropping it stops the relay.
pub struct RelayTask(tokio::task::JoinHandle<()>);

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a relay of a local chain on 127.0.0.1 (test key from `key_seed`, genesis ten
/// seconds ago, one round a second) and returns it with the `[beacon]` section that follows
/// it. With `forge_with`, the relay signs rounds with that key seed's chain instead: a lying
/// relay, whose rounds every node must refuse.
pub async fn start_local_relay(
    key_seed: u64,
    forge_with: Option<u64>,
) -> anyhow::Result<(RelayTask, BeaconConfig)> {
    let genesis = crate::clock::now_micros().0 / 1_000_000 - 10;
    let chain = local_chain(&key_seed.to_be_bytes(), genesis, 1);
    let forger = forge_with.map(|k| local_chain(&k.to_be_bytes(), genesis, 1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let section = BeaconConfig::of(&chain.info(), vec![format!("http://{addr}")]);
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, chain, forger).await {
            tracing::warn!("the local beacon relay stopped: {e}");
        }
    });
    Ok((RelayTask(task), section))
}

/// What a relay of the local chain serves.
struct Relay {
    chain: TestChain,
    info: ChainInfo,
    /// Signs rounds with this chain's key instead, under `chain`'s hash: a lying relay.
    forge_with: Option<TestChain>,
}

/// Serves the local chain `chain` in drand's HTTP format on `listener` until the task is
/// dropped: `GET /{hash}/info`, `GET /{hash}/public/{round}` (`425 Too Early` for a round not
/// yet published by the wall clock), `GET /{hash}/public/latest`. With `forge_with`, rounds
/// are signed with that chain's key (the relay lies).
pub async fn serve(
    listener: tokio::net::TcpListener,
    chain: TestChain,
    forge_with: Option<TestChain>,
) -> anyhow::Result<()> {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;

    let info = chain.info();
    let relay = Arc::new(Relay {
        chain,
        info,
        forge_with,
    });

    fn round_json(relay: &Relay, round: u64) -> Response {
        let signed = match &relay.forge_with {
            Some(forger) => forger.round(round),
            None => relay.chain.round(round),
        };
        json_response(&RoundJson {
            round,
            randomness: hex(&drand_randomness(&signed.signature)),
            signature: hex(&signed.signature),
            previous_signature: hex(&signed.previous_signature),
        })
    }

    fn json_response(value: &impl Serialize) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(value).unwrap_or_default(),
        )
            .into_response()
    }

    fn latest(relay: &Relay) -> u64 {
        let beacon = Beacon::new(relay.info.clone());
        // The test chain's own key always parses.
        beacon.map_or(1, |b| {
            b.first_round_after(crate::clock::now_micros())
                .saturating_sub(1)
        })
    }

    async fn chain_info(State(relay): State<Arc<Relay>>, Path(hash): Path<String>) -> Response {
        if hash != hex(&relay.info.chain_hash) {
            return StatusCode::NOT_FOUND.into_response();
        }
        json_response(&serde_json::json!({
            "public_key": hex(&relay.info.public_key),
            "period": relay.info.period_secs,
            "genesis_time": relay.info.genesis_time_secs,
            "hash": hex(&relay.info.chain_hash),
            "schemeID": relay.info.scheme.id(),
        }))
    }

    async fn public(
        State(relay): State<Arc<Relay>>,
        Path((hash, round)): Path<(String, String)>,
    ) -> Response {
        if hash != hex(&relay.info.chain_hash) {
            return StatusCode::NOT_FOUND.into_response();
        }
        let last = latest(&relay);
        let round = if round == "latest" {
            last
        } else {
            match round.parse::<u64>() {
                Ok(r) if r >= 1 => r,
                _ => return StatusCode::BAD_REQUEST.into_response(),
            }
        };
        if round > last {
            return (StatusCode::from_u16(425).unwrap_or(StatusCode::NOT_FOUND)).into_response();
        }
        round_json(&relay, round)
    }

    let app = axum::Router::new()
        .route("/{hash}/info", get(chain_info))
        .route("/{hash}/public/{round}", get(public))
        .with_state(relay);
    axum::serve(listener, app).await?;
    Ok(())
}

/// drand's randomness of a signature: its SHA-256.
fn drand_randomness(signature: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(signature).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drand_round_parses_and_a_wrong_one_does_not() {
        // drand quicknet round 123 as its relays serve it.
        let body = br#"{"round":123,"randomness":"0d7e3b6d5b3b8c4b","signature":"b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"}"#;
        let round = parse_round(123, body).expect("a drand round");
        assert_eq!(round.signature.len(), 48);
        assert!(round.previous_signature.is_empty());
        assert!(parse_round(124, body).is_err(), "another round than asked");
        assert!(parse_round(123, b"{\"round\":123,\"signature\":\"zz\"}").is_err());
        assert!(parse_round(123, b"\xff\x00").is_err());
    }

    #[test]
    fn the_config_section_round_trips_to_the_chain() {
        let chain = local_chain(b"k", 1_700_000_000, 1);
        let section = BeaconConfig::of(&chain.info(), vec!["http://127.0.0.1:1".into()]);
        assert_eq!(section.chain_info().unwrap(), chain.info());
        let text = section.to_toml_section();
        #[derive(Deserialize)]
        struct Wrap {
            beacon: BeaconConfig,
        }
        let back: Wrap = toml::from_str(&text).unwrap();
        assert_eq!(back.beacon, section);
    }
}
