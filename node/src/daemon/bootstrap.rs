//! Start-up: open the store and the keys, load the stored directory, restore the engine from
//! its records, build the swarm (listen, subscribe, seed the stored peers' addresses, dial the
//! bootstrap peers), start the control socket and its other clients (ingest, WebDAV sync, the
//! console), then run the loop; and decide on consent again for open computations a crash left
//! without a contribution.

use super::directory::{self, node_id_of, Directory, Peer, Snapshots};
use super::net::{self, Behaviour};
use super::{agreement, hook, Control, DaemonArgs, Membership, Node, SyncState, Transport};
use crate::clock::now_micros;
use crate::config::{self, Keys};
use crate::control::{self, Incoming};
use crate::store::Store;
use anyhow::Context;
use grove_protocol::engine::{Engine, Identity};
use grove_protocol::ids::ComputationId;
use grove_protocol::plan::PlanCache;
use grove_protocol::record::Record;
use grove_protocol::seal;
use libp2p::gossipsub::IdentTopic;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Runs the daemon until it is stopped (a signal, `grove stop`, or standard input closed when
/// asked for).
pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.clone();
    let config = config::load_config(&dir)?;
    let store = Arc::new(
        Store::open(&config::store_path(&dir))
            .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    );
    let keys = config::load_keys(&store)?;
    let peer_id = keys.libp2p.public().to_peer_id();
    let me = node_id_of(&peer_id);
    let x25519_public = seal::x25519_public(&keys.x25519_secret);
    let ed25519_secret = super::directory::ed25519_secret(&keys.libp2p)
        .context("the libp2p key is not an Ed25519 key, which the engine signs with")?;
    let directory = load_directory(&store, peer_id, x25519_public, &keys.libp2p)?;
    let records = store.engine_records()?;
    let contributed: BTreeSet<ComputationId> = records
        .iter()
        .filter_map(|r| match r {
            Record::Contribution { computation, .. } => Some(*computation),
            _ => None,
        })
        .collect();
    let restored = records.len();
    let beacon = match &config.beacon {
        Some(section) => Some(Arc::new(section.beacon()?)),
        None => None,
    };
    // Validity proofs on (issue 17): every query is compiled with its validity circuit and a
    // contribution counts only once its leaf accepts its proof. Set before the replay, so a
    // restarted node checks the computations it resumes as its peers do. Off only in the
    // end-to-end test binary's cost benchmark (`hook::install_without_validity`).
    let engine = Engine::new(
        Identity {
            node: me,
            x25519_secret: keys.x25519_secret,
            ed25519_secret,
        },
        config::engine_seed(),
        Arc::new(PlanCache::default()),
    );
    let engine = if hook::checking_validity() {
        engine.checking_validity()
    } else {
        engine
    };
    let engine = hook::setup_engine(engine.replay(records, now_micros()));
    let (engine, fetcher) = match (beacon, &config.beacon) {
        (Some(beacon), Some(section)) => (
            engine.with_beacon(beacon.clone()),
            Some(crate::beacon::Fetcher::new(beacon, section.relays.clone())),
        ),
        _ => (engine, None),
    };
    // Admission: the engine refuses candidate sets that break the rule over this node's view
    // of the admitted set, which the announcements' certificates fill. Without it, only a set
    // that omits this node is refused (`SelfRule`).
    let admission = match &config.admission {
        Some(section) => Some(crate::admission::Admission::new(section, me, now_micros())?),
        None => None,
    };
    let engine = match &admission {
        Some(a) => engine.with_candidate_rule(a.rule()),
        None => {
            engine.with_candidate_rule(std::sync::Arc::new(crate::admission::SelfRule { node: me }))
        }
    };
    let inbound = super::budget::NodeBudget::new(super::budget::MAX_INBOUND_BYTES);
    let swarm = build_swarm(&keys, &config, &args, &directory, inbound.clone())?;
    let (ctl_rx, console) = start_control(&dir, &config, &args).await?;
    tracing::info!(
        "grove daemon {peer_id} (node {me}) started; {restored} engine records restored"
    );
    let mut node = Node::new(
        dir,
        &config,
        engine,
        (swarm, inbound),
        store,
        directory,
        keys,
        console,
    );
    node.beacon = fetcher;
    if let Some(mut admission) = admission {
        if let Some(problem) = admission.status(now_micros())["problem"].as_str() {
            tracing::warn!("this node is not admitted ({problem}): it is never selected");
        }
        // The stored announcements' certificates: the peers known before this start.
        let now = now_micros();
        for peer in node.membership.directory.peers() {
            if let Some(cert) = &peer.certificate {
                admission.learn(peer.node, cert.clone(), now);
            }
        }
        node.admission = Some(admission);
    }
    node.load_pending()?;
    node.refresh_trusted();
    node.drain()?;
    node.resume_consent(&contributed)?;
    let result = node.run(ctl_rx, args.exit_on_stdin_eof).await;
    let _ = std::fs::remove_file(control::socket_path(&node.data_dir));
    result
}

/// The stored peers' signed announcements, and this node (without addresses until it
/// announces itself).
fn load_directory(
    store: &Store,
    peer_id: PeerId,
    x25519_public: [u8; 32],
    libp2p: &libp2p::identity::Keypair,
) -> anyhow::Result<Directory> {
    let mut directory = Directory::default();
    for bytes in store.announcements()? {
        if let Ok(peer) = directory::verify_announcement(&bytes) {
            directory.insert_signed(peer, bytes);
        }
    }
    directory.insert(Peer {
        peer_id,
        node: node_id_of(&peer_id),
        x25519_public,
        ed25519_public: super::directory::ed25519_public(&libp2p.public())
            .context("the libp2p key is not an Ed25519 key")?,
        addrs: Vec::new(),
        issued_at_micros: now_micros().0,
        certificate: None,
    });
    Ok(directory)
}

/// The swarm: listening, subscribed to the broadcast and directory topics, with the stored
/// peers' addresses, and dialing the bootstrap peers.
fn build_swarm(
    keys: &Keys,
    config: &config::Config,
    args: &DaemonArgs,
    directory: &Directory,
    inbound: std::sync::Arc<super::budget::NodeBudget>,
) -> anyhow::Result<Swarm<Behaviour>> {
    let mut swarm =
        net::build_swarm_with(keys.libp2p.clone(), inbound).map_err(|e| anyhow::anyhow!(e))?;
    let listen = if args.listen.is_empty() {
        &config.listen
    } else {
        &args.listen
    };
    for a in listen {
        let addr: Multiaddr = a
            .parse()
            .with_context(|| format!("bad listen address {a}"))?;
        swarm.listen_on(addr)?;
    }
    for topic in [net::TOPIC_BROADCAST, net::TOPIC_DIRECTORY] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))?;
    }
    seed_addresses(&mut swarm, directory);
    let bootstrap = config.bootstrap.iter().chain(&args.bootstrap);
    for b in bootstrap {
        let addr: Multiaddr = b
            .parse()
            .with_context(|| format!("bad bootstrap address {b}"))?;
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
            net::add_routing_address(&mut swarm.behaviour_mut().kad, &peer, addr.clone());
            swarm.add_peer_address(peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr) {
            tracing::warn!("cannot dial bootstrap peer {b}: {e}");
        }
    }
    Ok(swarm)
}

/// A restarted node knows its peers from the stored directory: give the swarm their
/// addresses before the restored roles send anything, or the first sends fail to dial and
/// fail over away from live members.
fn seed_addresses(swarm: &mut Swarm<Behaviour>, directory: &Directory) {
    let own = *swarm.local_peer_id();
    for peer in directory.peers().filter(|p| p.peer_id != own) {
        for addr in &peer.addrs {
            net::add_routing_address(&mut swarm.behaviour_mut().kad, &peer.peer_id, addr.clone());
            swarm.add_peer_address(peer.peer_id, addr.clone());
        }
    }
}

/// The control socket and the other clients of its queue: the ingest endpoint, the WebDAV
/// sync and the owner's console (each only when configured).
async fn start_control(
    dir: &Path,
    config: &config::Config,
    args: &DaemonArgs,
) -> anyhow::Result<(mpsc::Receiver<Incoming>, Option<crate::console::Console>)> {
    let listener = control::bind(dir)
        .with_context(|| format!("cannot bind the control socket in {}", dir.display()))?;
    let (ctl_tx, ctl_rx) = mpsc::channel(control::REQUEST_QUEUE);
    // Personal-cloud connectors reach the store through the same queue as the control socket.
    if let Some(listen) = &config.ingest_listen {
        let addr = crate::sources::ingest::start(dir, listen, ctl_tx.clone()).await?;
        tracing::info!("ingest endpoint on http://{addr}");
    }
    if let Some(nextcloud) = &config.nextcloud {
        crate::sources::webdav::spawn_periodic(nextcloud.clone(), ctl_tx.clone());
    }
    // The owner's console: another client of the same queue (off unless asked for).
    let console = match args.console.as_ref().or(config.console_listen.as_ref()) {
        Some(listen) => Some(crate::console::start(dir, listen, ctl_tx.clone()).await?),
        None => None,
    };
    tokio::spawn(control::serve(listener, ctl_tx));
    Ok((ctl_rx, console))
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    fn new(
        data_dir: PathBuf,
        config: &config::Config,
        engine: Engine,
        (swarm, inbound): (Swarm<Behaviour>, Arc<super::budget::NodeBudget>),
        store: Arc<Store>,
        directory: Directory,
        keys: Keys,
        console: Option<crate::console::Console>,
    ) -> Node {
        let peer_id = keys.libp2p.public().to_peer_id();
        let announce_interval = Duration::from_secs(config.announce_interval_secs.max(1));
        Node {
            data_dir,
            me: node_id_of(&peer_id),
            peer_id,
            x25519_public: seal::x25519_public(&keys.x25519_secret),
            ed25519_public: super::directory::ed25519_public(&keys.libp2p.public())
                .unwrap_or_default(),
            keys,
            engine,
            store,
            next_deadline: None,
            transport: Transport {
                swarm,
                inbound,
                pulls: Default::default(),
                pending_sends: Default::default(),
                loopback: VecDeque::new(),
                sent_by_kind: BTreeMap::new(),
                received_by_kind: BTreeMap::new(),
                connections: super::connections::Connections::new(config.connection_target),
            },
            membership: Membership {
                directory,
                snapshots: Snapshots::default(),
                listen_addrs: Vec::new(),
                announce_due: true,
                last_announce: None,
                announce_interval,
                next_announce_gap: announce_interval,
                sync: SyncState {
                    every: (config.directory_sync_secs > 0)
                        .then(|| Duration::from_secs(config.directory_sync_secs)),
                    ..SyncState::default()
                },
                agreement: agreement::State::default(),
                gossip: Default::default(),
            },
            pending: BTreeMap::new(),
            control: Control {
                waiters: BTreeMap::new(),
                console,
                started: Instant::now(),
                shutdown: false,
            },
            beacon: None,
            rounds_awaited: false,
            admission: None,
            jobs: Default::default(),
        }
    }

    /// A crash between accepting a request and contributing to it leaves no contribution
    /// record: decide on consent again for every open computation without one.
    fn resume_consent(&mut self, contributed: &BTreeSet<ComputationId>) -> anyhow::Result<()> {
        let open: Vec<ComputationId> = self
            .engine
            .computations()
            .filter(|c| !contributed.contains(*c))
            .copied()
            .collect();
        for id in open {
            self.consent(id);
            self.drain()?;
        }
        Ok(())
    }
}
