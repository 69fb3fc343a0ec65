//! Admission in the daemon: which identities may be selected, by whose word.
//!
//! A deployment names its issuers in every node's config (`[admission]`: an ed25519 key and a
//! quota each, e.g. a PDMS provider certifying its instances). An issuer admits a node by
//! signing a certificate for its node id (`grove admit`); the node puts it in its config and
//! carries it in every signed announcement, so it reaches every node with the directory (by
//! gossip, pulls and fetched snapshots). Each node checks each certificate with the sans-IO
//! admission rule of `grove_protocol::membership` (issuer named, serial within the issuer's
//! quota, signature, no serial used twice, identity age) and keeps the admitted set in a
//! `Membership` view, which is also the engine's candidate rule
//! (`grove_protocol::membership::ViewRule`): a request whose candidate set holds an identity
//! that is not admitted, omits this node while it is admitted, or omits more than the stated
//! fraction of the admitted peers this node knew before the request, is refused (audited as
//! `refused`). A commissioner freezes only admitted identities into the snapshot it names.
//!
//! The view's own gossip runs between daemons (`daemon::membership`): its pushes, forwards and
//! anti-entropy rounds travel on the message protocol, each certificate inside its node's
//! signed announcement, so that a peer learnt by gossip can also be dialed and planned over.
//! Certificates learnt otherwise (a directory pull, a fetched snapshot, the stored
//! announcements at start) enter the view without being forwarded ([`Admission::learn`]):
//! those are repairs of what every node already has.

use crate::beacon::unhex;
use anyhow::{bail, Context};
use grove_protocol::ids::{hex, Micros, NodeId};
use grove_protocol::membership::{
    AdmissionPolicy, CandidateRefusal, CandidateRule, Certificate, Checkpoint, IssuerKey,
    MemberMessage, MemberOutput, Membership, MembershipConfig, MembershipError, ViewRule,
    DEFAULT_MIN_KNOWN_PPM,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Length of a membership epoch (identity ages count in epochs), unless the config says.
pub const DEFAULT_EPOCH_SECS: u64 = 120;

/// One issuer of the `[admission]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer's ed25519 verifying key, 64 hex digits (`grove admit --new-issuer` prints it).
    pub key: String,
    /// How many identities it may admit: serials `0..quota`.
    pub quota: u32,
}

/// The `[admission]` section of the config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    pub issuers: Vec<IssuerConfig>,
    /// Epochs an admitted identity waits before it can be selected.
    #[serde(default)]
    pub min_age_epochs: u64,
    #[serde(default = "default_epoch_secs")]
    pub epoch_secs: u64,
    /// Share of the admitted peers known before a request that its candidate set must list,
    /// in parts per million.
    #[serde(default = "default_min_known_ppm")]
    pub min_known_ppm: u32,
    /// This node's certificate (hex, from `grove admit`); absent: the node is not admitted,
    /// is never selected, and its shares are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

fn default_epoch_secs() -> u64 {
    DEFAULT_EPOCH_SECS
}

fn default_min_known_ppm() -> u32 {
    DEFAULT_MIN_KNOWN_PPM
}

impl AdmissionConfig {
    pub fn to_toml_section(&self) -> String {
        #[derive(Serialize)]
        struct Section<'a> {
            admission: &'a AdmissionConfig,
        }
        // Serialising strings and integers cannot fail.
        toml::to_string(&Section { admission: self }).unwrap_or_default()
    }

    pub fn policy(&self) -> anyhow::Result<AdmissionPolicy> {
        let mut issuers = BTreeMap::new();
        for i in &self.issuers {
            issuers.insert(parse_issuer(&i.key)?, i.quota);
        }
        Ok(AdmissionPolicy::new(issuers, self.min_age_epochs)?)
    }

    fn epoch_micros(&self) -> u64 {
        self.epoch_secs.max(1).saturating_mul(1_000_000)
    }
}

fn parse_issuer(key: &str) -> anyhow::Result<IssuerKey> {
    let bytes: [u8; 32] = unhex(key)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("issuer key {key:?} is not 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .with_context(|| format!("issuer key {key:?} is not an ed25519 key"))?;
    Ok(IssuerKey(bytes))
}

/// A certificate as the config and `grove admit` write it: hex of its postcard encoding.
pub fn encode_certificate(cert: &Certificate) -> String {
    // A struct of byte arrays and integers always encodes.
    hex(&postcard::to_allocvec(cert).unwrap_or_default())
}

pub fn decode_certificate(text: &str) -> anyhow::Result<Certificate> {
    postcard::from_bytes(&unhex(text.trim())?).context("not a Grove admission certificate")
}

/// A node named on the command line: its peer id (as `grove init` and `grove status` print it)
/// or its node id (64 hex digits).
pub fn parse_node(text: &str) -> anyhow::Result<NodeId> {
    if let Ok(peer) = text.parse::<libp2p::PeerId>() {
        return Ok(crate::daemon::directory::node_id_of(&peer));
    }
    let bytes: [u8; 32] = unhex(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{text:?} is neither a peer id nor a node id"))?;
    Ok(NodeId(bytes))
}

/// Writes a new issuer secret key to `path` (mode 0600, refusing to overwrite one); returns
/// its verifying key in hex, which every node of the deployment names in `[admission]`.
pub fn new_issuer(path: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&crate::config::random_id());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    writeln!(file, "{}", hex(&key.to_bytes()))?;
    Ok(hex(&key.verifying_key().to_bytes()))
}

pub fn load_issuer(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes: [u8; 32] = unhex(text.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} holds no 32-byte issuer key", path.display()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// The epoch of `time` for a deployment whose epochs last `epoch_secs`.
pub fn epoch_at(time: Micros, epoch_secs: u64) -> u64 {
    time.0 / epoch_secs.max(1).saturating_mul(1_000_000)
}

/// The issuer's act: a certificate for `node` under `serial`, from the current epoch on.
pub fn admit(
    issuer: &ed25519_dalek::SigningKey,
    node: NodeId,
    serial: u32,
    epoch_secs: u64,
) -> Certificate {
    Certificate::issue(
        issuer,
        node,
        serial,
        epoch_at(crate::clock::now_micros(), epoch_secs),
    )
}

/// Appends an `[admission]` section to the config file in `dir` (the demo and the tests).
pub fn append_admission(dir: &Path, section: &AdmissionConfig) -> anyhow::Result<()> {
    crate::config::append_section(dir, &section.to_toml_section())
}

/// The node id of the node in `dir` (its daemon must not be running: the store is opened).
pub fn node_id_in(dir: &Path) -> anyhow::Result<NodeId> {
    let store = crate::store::Store::open(&crate::config::store_path(dir))?;
    let keys = crate::config::load_keys(&store)?;
    Ok(crate::daemon::directory::node_id_of(
        &keys.libp2p.public().to_peer_id(),
    ))
}

/// A local network's single issuer, as `grove demo` and the tests run it: writes to the config
/// of the node in `dir` an `[admission]` section naming `issuer` with `quota`, with the node's
/// certificate under `serial` if one is given (`None`: the node is not admitted).
pub fn configure_local(
    dir: &Path,
    issuer: &ed25519_dalek::SigningKey,
    quota: u32,
    serial: Option<u32>,
) -> anyhow::Result<()> {
    let certificate = match serial {
        Some(s) => Some(encode_certificate(&admit(
            issuer,
            node_id_in(dir)?,
            s,
            DEFAULT_EPOCH_SECS,
        ))),
        None => None,
    };
    append_admission(
        dir,
        &AdmissionConfig {
            issuers: vec![IssuerConfig {
                key: hex(&issuer.verifying_key().to_bytes()),
                quota,
            }],
            min_age_epochs: 0,
            epoch_secs: DEFAULT_EPOCH_SECS,
            min_known_ppm: DEFAULT_MIN_KNOWN_PPM,
            certificate,
        },
    )
}

/// The candidate rule of a node that runs without `[admission]`: no identity can be checked
/// for admission, but a candidate set that omits this node itself is refused at intake. Its
/// shares would be refused by every leaf member (`Rejection::NotACandidate`), so consenting
/// would spend its owner's limits (rate, differencing window, privacy budget) for nothing.
pub struct SelfRule {
    pub node: NodeId,
}

impl CandidateRule for SelfRule {
    fn check(&self, candidates: &[NodeId], _created_at: Micros) -> Result<(), CandidateRefusal> {
        if candidates.contains(&self.node) {
            Ok(())
        } else {
            Err(CandidateRefusal::OmitsSelf)
        }
    }
    fn verifies(&self, _node: &NodeId, _created_at: Micros) -> bool {
        // Without issuers there is nothing to verify a leaf member against.
        true
    }
}

/// The daemon's admission state: the admitted set, as the engine's candidate rule sees it.
pub struct Admission {
    view: Arc<Mutex<Membership>>,
    min_known_ppm: u32,
    /// This node's certificate, when the config holds one that this node's policy admits.
    own: Option<Certificate>,
    /// Why the configured certificate does not admit this node, if it does not.
    own_problem: Option<String>,
    /// Certificates from announcements that the policy refused.
    refused: u64,
    /// The view's gossip sends, for the daemon to carry ([`Admission::take_outputs`]).
    outputs: VecDeque<MemberOutput>,
    /// Gossip messages the view refused (oversized, wrong bucket counts, windows out of
    /// range).
    refused_messages: u64,
}

impl Admission {
    pub fn new(config: &AdmissionConfig, me: NodeId, now: Micros) -> anyhow::Result<Admission> {
        let policy = config.policy()?;
        let membership = MembershipConfig {
            epoch_micros: config.epoch_micros(),
            ..MembershipConfig::default()
        };
        let mut view = Membership::new(
            me,
            policy,
            membership,
            Arc::new(Checkpoint::default()),
            crate::config::random_id(),
            now,
        );
        let (mut own, mut own_problem) = (None, None);
        match config.certificate.as_deref().map(decode_certificate) {
            None => own_problem = Some("no certificate in [admission]".to_string()),
            Some(Err(e)) => bail!("[admission] certificate: {e:#}"),
            Some(Ok(cert)) if cert.node != me => {
                bail!(
                    "[admission] certificate admits another node ({})",
                    cert.node
                )
            }
            Some(Ok(cert)) => match view.announce(cert.clone(), now) {
                Ok(()) => own = Some(cert),
                Err(e) => own_problem = Some(e.to_string()),
            },
        }
        while view.poll_output().is_some() {}
        Ok(Admission {
            view: Arc::new(Mutex::new(view)),
            min_known_ppm: config.min_known_ppm,
            own,
            own_problem,
            refused: 0,
            outputs: VecDeque::new(),
            refused_messages: 0,
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, Membership> {
        // A poisoned lock only means a thread panicked holding it; the view's updates are
        // whole-entry inserts, so it is still consistent.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine's candidate rule over this view.
    pub fn rule(&self) -> Arc<dyn CandidateRule> {
        Arc::new(ViewRule {
            view: self.view.clone(),
            min_known_ppm: self.min_known_ppm,
        })
    }

    /// This node's certificate, to carry in its announcements.
    pub fn own(&self) -> Option<&Certificate> {
        self.own.as_ref()
    }

    /// One gossip message from `from`: to the view, whose sends (forwards of new
    /// certificates, anti-entropy answers) wait in [`Admission::take_outputs`]. A message the
    /// view refuses is counted and changes nothing.
    pub fn handle(
        &mut self,
        from: NodeId,
        message: MemberMessage,
        now: Micros,
    ) -> Result<(), MembershipError> {
        let outputs = &mut self.outputs;
        let result = counting_refusals(&self.view, &mut self.refused, |view| {
            let result = view.handle_message(from, message, now);
            while let Some(o) = view.poll_output() {
                outputs.push_back(o);
            }
            result
        });
        if result.is_err() {
            self.refused_messages += 1;
        }
        result
    }

    /// The view's timer (anti-entropy rounds, the routing set's draw), when due.
    pub fn tick(&mut self, now: Micros) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if now >= view.poll_timeout() {
            view.handle_timeout(now);
        }
        while let Some(o) = view.poll_output() {
            self.outputs.push_back(o);
        }
    }

    /// When [`tick`](Self::tick) next has something to do: at once if sends wait, else at the
    /// view's timer. The daemon sleeps until then instead of ticking.
    pub fn next_due(&self) -> Micros {
        let view = self.view();
        if !self.outputs.is_empty() || view.has_output() {
            return Micros(0);
        }
        view.poll_timeout()
    }

    /// The gossip sends waiting for the daemon.
    pub fn take_outputs(&mut self) -> Vec<MemberOutput> {
        self.outputs.drain(..).collect()
    }

    /// This node's routing peers at `now` (it pushes its own announcement to them).
    pub fn routing_peers(&mut self, now: Micros) -> Vec<NodeId> {
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .routing_at(now)
            .to_vec()
    }

    /// A certificate carried by `from`'s announcement, learnt from a directory pull, a fetched
    /// snapshot or the store: checked and, if the policy admits it, added to the view, not
    /// forwarded (see the module doc). True if it was new and admitted.
    pub fn learn(&mut self, from: NodeId, cert: Certificate, now: Micros) -> bool {
        if cert.node != from {
            return false;
        }
        // Asked for by this node: not charged to the newcomers' push budget, not forwarded.
        counting_refusals(&self.view, &mut self.refused, |view| {
            let admitted = view.learn(cert, now);
            while view.poll_output().is_some() {}
            admitted
        })
    }

    /// A push of `cert` by `from`, a peer the view does not admit, screened before any
    /// signature is checked (`Membership::screen_newcomer`: its own certificate, passing every
    /// check but the signatures, within the newcomers' push budget).
    pub fn screen_newcomer(
        &mut self,
        from: NodeId,
        cert: &Certificate,
        now: Micros,
    ) -> Result<(), MembershipError> {
        let result = counting_refusals(&self.view, &mut self.refused, |view| {
            view.screen_newcomer(from, cert, now)
        });
        if result.is_err() {
            self.refused_messages += 1;
        }
        result
    }

    /// How many times this node pushed its own certificate to its routing set, and whether an
    /// admitted peer has shown that it holds it (`Membership::own_confirmed`).
    pub fn own_push_state(&self) -> (u32, bool) {
        let view = self.view();
        (view.own_pushes(), view.own_confirmed())
    }

    /// Whether `node` is admitted (its certificate is in the view, not equivocated).
    pub fn admits(&self, node: &NodeId) -> bool {
        self.view().certificate(node).is_some()
    }

    /// Whether `node` is admitted and old enough to be selected at `time`.
    pub fn eligible(&self, node: &NodeId, time: Micros) -> bool {
        let view = self.view();
        let epoch = view.epoch_of(time);
        view.is_eligible(node, epoch)
    }

    /// `grove status`'s `admission` object.
    pub fn status(&self, now: Micros) -> serde_json::Value {
        let view = self.view();
        let epoch = view.epoch_of(now);
        let eligible = view
            .admitted()
            .filter(|m| view.policy().eligible_from(m.epoch, epoch))
            .count();
        serde_json::json!({
            "admitted": self.own.is_some(),
            "problem": self.own_problem,
            "certificate_issuer": self.own.as_ref().map(|c| hex(&c.issuer.0)),
            "known_admitted": view.len(),
            "known_eligible": eligible,
            "certificates_refused": self.refused,
            "gossip_messages_refused": self.refused_messages,
            "routing_peers": view.routing_peers().len(),
            "equivocations": view.stats().equivocations,
            "min_known_ppm": self.min_known_ppm,
        })
    }
}

/// Runs `f` on the shared view and adds the certificates it refused meanwhile to `refused`.
fn counting_refusals<R>(
    view: &Mutex<Membership>,
    refused: &mut u64,
    f: impl FnOnce(&mut Membership) -> R,
) -> R {
    let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
    let before = view.stats().refused_certificates;
    let result = f(&mut view);
    *refused += view.stats().refused_certificates - before;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &ed25519_dalek::SigningKey, quota: u32) -> AdmissionConfig {
        AdmissionConfig {
            issuers: vec![IssuerConfig {
                key: hex(&issuer.verifying_key().to_bytes()),
                quota,
            }],
            min_age_epochs: 0,
            epoch_secs: DEFAULT_EPOCH_SECS,
            min_known_ppm: DEFAULT_MIN_KNOWN_PPM,
            certificate: None,
        }
    }

    #[test]
    fn the_section_round_trips_and_a_certificate_admits_its_node_only() {
        let issuer = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let me = NodeId([1; 32]);
        let cert = admit(&issuer, me, 0, DEFAULT_EPOCH_SECS);
        let mut section = config(&issuer, 2);
        section.certificate = Some(encode_certificate(&cert));
        let text = section.to_toml_section();
        #[derive(Deserialize)]
        struct Wrapper {
            admission: AdmissionConfig,
        }
        let back: Wrapper = toml::from_str(&text).unwrap();
        assert_eq!(back.admission, section);
        let now = crate::clock::now_micros();
        let a = Admission::new(&section, me, now).unwrap();
        assert!(a.own().is_some());
        assert!(a.eligible(&me, now));
        // Another node cannot run on this node's certificate.
        assert!(Admission::new(&section, NodeId([2; 32]), now).is_err());
    }

    #[test]
    fn certificates_of_unknown_issuers_or_over_quota_admit_no_one() {
        let issuer = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let now = crate::clock::now_micros();
        let mut a = Admission::new(&config(&issuer, 2), NodeId([1; 32]), now).unwrap();
        assert!(a.own().is_none());
        let peer = |i: u8| NodeId([10 + i; 32]);
        assert!(a.learn(peer(0), admit(&issuer, peer(0), 0, DEFAULT_EPOCH_SECS), now));
        // Serial 2 is over the quota of 2; a stranger's word counts for nothing.
        assert!(!a.learn(peer(1), admit(&issuer, peer(1), 2, DEFAULT_EPOCH_SECS), now));
        assert!(!a.learn(
            peer(2),
            admit(&stranger, peer(2), 0, DEFAULT_EPOCH_SECS),
            now
        ));
        assert!(a.eligible(&peer(0), now));
        assert!(!a.eligible(&peer(1), now) && !a.eligible(&peer(2), now));
        assert_eq!(a.status(now)["certificates_refused"], 2);
        // One serial for two identities: neither counts.
        assert!(!a.learn(peer(3), admit(&issuer, peer(3), 0, DEFAULT_EPOCH_SECS), now));
        assert!(!a.eligible(&peer(0), now) && !a.eligible(&peer(3), now));
    }

    #[test]
    fn nodes_parse_from_peer_ids_and_node_ids() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let node = crate::daemon::directory::node_id_of(&peer);
        assert_eq!(parse_node(&peer.to_base58()).unwrap(), node);
        assert_eq!(parse_node(&hex(&node.0)).unwrap(), node);
        assert!(parse_node("nonsense").is_err());
    }
}
