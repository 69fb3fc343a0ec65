//! The libp2p adapter: the composed behaviour and the request-response codec that carries the
//! protocol codec's bytes. It moves bytes only; the event loop decodes them.
//!
//! - TCP + Noise + Yamux transport (QUIC behind the `quic` cargo feature, NAT traversal:
//!   AutoNAT, relay client and server, DCUtR behind `nat`).
//! - Kademlia for discovery and routing, fed by identify; it also stores the directory
//!   snapshots requests are planned over and each commissioner's active requests.
//! - gossipsub for the engine's broadcasts (requests, completion notes) and for the peer
//!   directory's announcements.
//! - request-response for every point-to-point protocol message (`Output::Send`): the request
//!   is one encoded `grove_protocol::message::Message`, the response a one-byte ack.
//! - request-response for the directory pull (`/grove/directory-sync/1`): a node asks a peer
//!   for every signed announcement it holds (when it starts, and then now and then), instead
//!   of every node re-announcing itself to each newcomer.

use super::budget::{
    ConnectionBudget, InboundRejection, NodeBudget, Permit, MAX_CONNECTIONS_PER_PEER,
    MAX_INBOUND_BYTES, MAX_INBOUND_BYTES_PER_CONNECTION, MAX_INBOUND_STREAMS_PER_CONNECTION,
};
use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use grove_protocol::frame::{Budget, FrameError, FrameReader, Unlimited};
use grove_protocol::limits::{MAX_MESSAGE_BYTES, MAX_VECTOR_LEN};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, gossipsub, identify, identity, kad, request_response, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The request-response protocol of Grove messages.
pub const MESSAGE_PROTOCOL: StreamProtocol = StreamProtocol::new("/grove/message/1");
/// The request-response protocol of the directory pull.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/grove/directory-sync/1");
/// Kademlia protocol name (a private DHT, not the public IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/grove/kad/1.0.0");
/// identify protocol version string.
pub const IDENTIFY_VERSION: &str = "/grove/id/1";
/// gossipsub topic of engine broadcasts (requests and completion notes).
pub const TOPIC_BROADCAST: &str = "grove/broadcast/1";
/// gossipsub topic of peer directory announcements.
pub const TOPIC_DIRECTORY: &str = "grove/directory/1";
/// Largest gossipsub message (a request is a few kilobytes; an announcement less).
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// gossipsub's per-connection send queue, half for forwards and gossip (allocated up front)
/// and half for our own publishes. The default of 5,000 preallocated 2,500 slots, some
/// 0.6 MB per connection: 200 daemons on one machine, each connected to every other, needed
/// 29 GB. Our broadcasts are few (requests, completion notes, announcements); a forward that
/// finds the queue full is dropped, and gossip or a directory pull repairs it.
pub const GOSSIP_QUEUE_LEN: usize = 256;
/// How long a connection with no open stream stays open. (It was an hour.) It is not enough
/// by itself: gossipsub keeps a stream open on every connection to a subscriber, so a daemon's
/// connections to other daemons never go idle; `connections` closes those the node does not
/// need, so that the connections a node holds follow the peers it works with, not the size of
/// the network.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest number of established connections, inbound and outbound together: a bound on what
/// a flood of dialers can hold (each connection has its inbound budget, `budget`), well above
/// what a node needs (its mesh, its routing queries and one computation's peers).
pub const MAX_ESTABLISHED_CONNECTIONS: u32 = 256;
/// Largest number of inbound connections still in their handshake (a flood of dialers costs
/// at most this many noise handshakes at once; beyond it, a dial is refused and its sender
/// fails the send or retries). The burst a computation brings: when a request arrives, every
/// node a leaf serves dials the leaf's members at about the same moment (shares or a
/// decline), and the group's and the parent's members dial each other; the planner keeps all
/// of them within the connection budget (`planner::Conditions::leaf_member_connections`, at
/// most `connection_target`, 48 by default, counted at three standard deviations of the
/// leaf's spread). On top of that burst, other nodes' Kademlia queries walk through this one
/// (every node looks up its commissioners' active requests every 10 s) and gossipsub grafts
/// mesh peers. 64 held the burst of 48 with 16 to spare for the rest, and none at all when a
/// loaded machine slows the handshakes (200 nodes at load 155 to 205, where a single leaf's 5
/// members took 199 dials each at once: about 2,300 "Failed to dial"); twice the 64-connection
/// goal holds a full budget and a Kademlia round of `K_VALUE` dialers with room, and is still
/// a small, fixed cost per node.
pub const MAX_PENDING_INCOMING: u32 = 128;
// A leaf member's plan peers (at most the default target) dial it at once while Kademlia
// queries of up to `K_VALUE` peers go on: the build fails if the limit cannot hold both.
const _: () = assert!(
    MAX_PENDING_INCOMING as usize >= super::connections::CONNECTION_TARGET + kad::K_VALUE.get()
        && MAX_PENDING_INCOMING <= MAX_ESTABLISHED_CONNECTIONS
);
/// How long one directory pull (a request-response exchange of up to a 4 MB snapshot) may
/// take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The failure detector's fixed part, at least: how long a protocol message may wait for its
/// ack, on top of its size terms (`message_deadline`), before the engine hears it unreachable
/// and fails it over: the network's round trip, the receiver's handling of small messages and
/// the write and fsync before the ack. 2 s is the simulator's choice (sim/README.md,
/// "Detection delay", ARCHITECTURE.md, "Decisions"): with the vector term below it releases
/// every run at 1,024 kB and 1 %/s where a fixed 10 s lost two in 20, and at 8,192 kB it gives
/// every message at least the 10 s that never fired on a live receiver there. The daemon
/// waits longer when the acks it gets say so: the fixed part is
/// `max(MESSAGE_TIMEOUT, srtt + 4 rttvar)` of the acks' measured delays, at most
/// [`ACK_TIMEOUT_MAX`] (`sends::AckDelay`, RFC 6298's retransmission timeout).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most the adapted fixed part of the failure detector may reach (`sends::AckDelay`):
/// 15 times `MESSAGE_TIMEOUT`. On a machine starved of CPU (200 daemons proving at once on
/// 2 cores) acks took seconds, and each one missed started a heal that added load; however
/// far the estimate grows, a receiver that stops acknowledging is still failed over within
/// this (plus the size terms), and one that acknowledges later than this is treated as dead.
pub const ACK_TIMEOUT_MAX: Duration = Duration::from_secs(30);
/// The slowest rate the failure detector allows for, in bytes per second, both for the
/// sender's uplink and for the receiver's work: a message's deadline grows by the bytes it
/// waits behind, its own, and one vector of its computation (`message_deadline`), so a
/// member's seven 32 MB partial sums, or a contributor's three full vectors, are not failed
/// over while they are still leaving, nor a message waiting behind the vectors its receiver
/// is still handling. 1,024 kB/s, a sixth of DISSEC's 6,000 kB/s uplinks, a twentieth of the
/// receiver's rate at DISSEC's 50 us per kB.
pub const MIN_SEND_BYTES_PER_S: u64 = 1024 * 1024;
/// libp2p's own request timeout for protocol messages: the deadline of the largest message
/// of the largest computation allowed, with the fixed part at its most (`ACK_TIMEOUT_MAX`),
/// an upper bound behind the daemon's per-message deadline (which fires first).
pub const MESSAGE_TIMEOUT_CAP: Duration = ACK_TIMEOUT_MAX.saturating_add(upload_time(
    MAX_MESSAGE_BYTES.saturating_add(vector_bytes(MAX_VECTOR_LEN)),
));

/// Bytes of a computation's vector of `length` elements (8 per element).
pub const fn vector_bytes(length: u32) -> usize {
    length as usize * 8
}

/// How long the daemon waits for a protocol message's ack, counted from its hand-over to the
/// transport (so its wait behind others on the uplink and its upload are inside): the fixed
/// `MESSAGE_TIMEOUT` (in the daemon, the adapted fixed part, `sends::AckDelay`) plus, at `MIN_SEND_BYTES_PER_S`, `bytes` (the message's own and those
/// queued ahead of it on a virtual uplink of that rate, `PendingSends::size_terms`) and
/// `vector_bytes`, one vector of its computation: the receiver acknowledges only after
/// it handled and persisted the message, so a message of any size may wait there behind the
/// vectors other senders sent (a control message behind a level's partial sums). The
/// simulator models the same rule (`failures.detection_min_kb_per_s`,
/// `detection_counts_upload`, `detection_counts_vector`).
pub const fn message_deadline(bytes: usize, vector_bytes: usize) -> Duration {
    MESSAGE_TIMEOUT.saturating_add(upload_time(bytes.saturating_add(vector_bytes)))
}

/// How long `bytes` take at `MIN_SEND_BYTES_PER_S`.
pub const fn upload_time(bytes: usize) -> Duration {
    Duration::from_micros((bytes as u64).saturating_mul(1_000_000) / MIN_SEND_BYTES_PER_S)
}
/// How long a protocol message handed over to a peer not connected yet may wait for its
/// connection (the dial, the Noise and Yamux handshakes) before it counts as undelivered; its
/// ack deadline (`message_deadline`) starts once the connection is up (`sends`). A dial that
/// fails ends it sooner (libp2p reports the failure).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one Kademlia query may take.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest Kademlia message and record value: a directory snapshot must fit.
pub const MAX_KAD_PACKET_BYTES: usize = crate::daemon::directory::MAX_SNAPSHOT_BYTES + 64 * 1024;
/// Adds `addr` of `peer` to Kademlia's routing table if `peer` is in it already or its bucket
/// has room (fewer than `kad::K_VALUE` entries); true if it was added. Every address the node
/// learns (identify, announcements, directory pulls, the stored directory) goes through here.
///
/// Kademlia's own `add_address` into a full bucket whose least recently connected entry is
/// disconnected makes that entry pending and *dials* the disconnected peer to see whether it
/// is alive. With the pruning of unneeded connections (`connections`), the disconnected
/// entries are the peers just let go: at 100 and 200 nodes every identify and announcement
/// re-dialed a pruned peer, whose new connection's identify re-dialed another, so closing
/// connections raised their number. The routing set is bounded instead (at most `K_VALUE`
/// per distance bucket, about `K_VALUE * log2(N)` peers, most of them disconnected), and
/// filled first come, first kept; a peer whose address fails is dropped by Kademlia and
/// makes room for the next one learned.
pub fn add_routing_address(
    kad: &mut kad::Behaviour<kad::store::MemoryStore>,
    peer: &PeerId,
    addr: Multiaddr,
) -> bool {
    let room = kad.kbucket(*peer).is_some_and(|bucket| {
        bucket.num_entries() < kad::K_VALUE.get()
            || bucket.iter().any(|e| e.node.key.preimage() == peer)
    });
    room && kad.add_address(peer, addr) == kad::RoutingUpdate::Success
}

/// Ends the Kademlia bootstrap in progress once the routing table holds at least
/// `kad::K_VALUE` peers; returns how many bootstrap queries it ended. The daemon calls it when
/// peers join the routing table (`membership`) and at each step of a bootstrap (`agreement`:
/// a bootstrap is a lookup of the node's own key, then one step per bucket beyond its closest
/// peer, all under one query id, and ending one step only starts the next).
///
/// libp2p starts a bootstrap on its own whenever a peer joins a routing table of fewer than
/// `K_VALUE` peers (a newcomer that knows only its bootstrap peer), and version 0.48 cannot
/// turn that off. Here the routing table is filled from the directory (its first pull brings
/// every announced peer), and with manual inserts a lookup's answers never enter the table,
/// so the bootstrap's lookups only dial: at 200 nodes they made 67,864 of the 84,527 dials of
/// a run, nearly all to peers the pruning then let go.
pub fn end_bootstrap_if_filled(kad: &mut kad::Behaviour<kad::store::MemoryStore>) -> usize {
    let known: usize = kad.kbuckets().map(|b| b.num_entries()).sum();
    if known < kad::K_VALUE.get() {
        return 0;
    }
    let mut ended = 0;
    for mut query in kad.iter_queries_mut() {
        if matches!(query.info(), kad::QueryInfo::Bootstrap { .. }) {
            query.finish();
            ended += 1;
        }
    }
    ended
}

/// Largest number of records a node's DHT store keeps (others' snapshots and request lists).
pub const MAX_KAD_RECORDS: usize = 128;
/// Largest number of concurrent streams per connection for protocol messages, inbound and
/// outbound together (libp2p's cap; inbound streams have their own, smaller one:
/// `budget::MAX_INBOUND_STREAMS_PER_CONNECTION`).
pub const MAX_CONCURRENT_STREAMS: usize = 256;
/// Bytes read from a stream at a time (a frame grows by at least `FRAME_CHUNK_BYTES`).
const READ_PIECE_BYTES: usize = 8 * 1024;
const ACK: u8 = 1;

/// The swarm of a Grove node (also used by tests that play a hostile peer).
///
/// Cargo features, both off by default: `quic` adds the QUIC transport (listen on
/// `/ip4/.../udp/0/quic-v1`); `nat` adds NAT traversal: AutoNAT (are my addresses reachable?),
/// a relay client (listen on `.../p2p/RELAY/p2p-circuit` through a reachable node), a relay
/// server (every node with the feature relays for others, within libp2p's default limits) and
/// DCUtR (upgrade a relayed connection to a direct one by hole punching).
pub fn build_swarm(
    key: libp2p::identity::Keypair,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    build_swarm_with(key, NodeBudget::new(MAX_INBOUND_BYTES))
}

/// [`build_swarm`] whose inbound frames take room from `inbound` (the daemon keeps it to show
/// the breaches in `grove status`).
pub fn build_swarm_with(
    key: libp2p::identity::Keypair,
    inbound: Arc<NodeBudget>,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let builder = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?;
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    #[cfg(feature = "nat")]
    let builder = builder
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, inbound).map_err(Into::into)
        })?;
    #[cfg(not(feature = "nat"))]
    let builder = builder.with_behaviour(|key| Behaviour::new(key, inbound).map_err(Into::into))?;
    Ok(builder
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

#[cfg(not(feature = "nat"))]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub messages: request_response::Behaviour<BytesCodec>,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub limits: connection_limits::Behaviour,
}

/// The same behaviour with NAT traversal (feature `nat`).
#[cfg(feature = "nat")]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub messages: request_response::Behaviour<BytesCodec>,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub limits: connection_limits::Behaviour,
    pub autonat: libp2p::autonat::Behaviour,
    pub relay_client: libp2p::relay::client::Behaviour,
    pub relay_server: libp2p::relay::Behaviour,
    pub dcutr: libp2p::dcutr::Behaviour,
}

impl Behaviour {
    #[cfg(not(feature = "nat"))]
    pub fn new(key: &identity::Keypair, inbound: Arc<NodeBudget>) -> Result<Behaviour, String> {
        let (kad, identify, gossipsub, messages, sync) = Self::core(key, inbound)?;
        Ok(Behaviour {
            kad,
            identify,
            gossipsub,
            messages,
            sync,
            limits: Self::limits(),
        })
    }

    #[cfg(feature = "nat")]
    pub fn new(
        key: &identity::Keypair,
        relay_client: libp2p::relay::client::Behaviour,
        inbound: Arc<NodeBudget>,
    ) -> Result<Behaviour, String> {
        let peer_id = key.public().to_peer_id();
        let (kad, identify, gossipsub, messages, sync) = Self::core(key, inbound)?;
        Ok(Behaviour {
            kad,
            identify,
            gossipsub,
            messages,
            sync,
            limits: Self::limits(),
            autonat: libp2p::autonat::Behaviour::new(peer_id, Default::default()),
            relay_client,
            relay_server: libp2p::relay::Behaviour::new(peer_id, Default::default()),
            dcutr: libp2p::dcutr::Behaviour::new(peer_id),
        })
    }

    /// At most [`MAX_CONNECTIONS_PER_PEER`] connections per peer, so that a peer's share of
    /// the inbound budget is bounded (`budget`), at most [`MAX_ESTABLISHED_CONNECTIONS`] in
    /// all and [`MAX_PENDING_INCOMING`] handshakes at once.
    fn limits() -> connection_limits::Behaviour {
        connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_established(Some(MAX_ESTABLISHED_CONNECTIONS))
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING)),
        )
    }

    /// The behaviours every build has.
    #[allow(clippy::type_complexity)]
    fn core(
        key: &identity::Keypair,
        inbound: Arc<NodeBudget>,
    ) -> Result<
        (
            kad::Behaviour<kad::store::MemoryStore>,
            identify::Behaviour,
            gossipsub::Behaviour,
            request_response::Behaviour<BytesCodec>,
            request_response::Behaviour<SyncCodec>,
        ),
        String,
    > {
        let peer_id = key.public().to_peer_id();
        let mut kad = kademlia(peer_id);
        // Local networks have no confirmed external address; answer DHT queries anyway.
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(identify::Config::new(
            IDENTIFY_VERSION.to_string(),
            key.public(),
        ));
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
            // IHAVE gossip goes to `gossip_lazy` (6) peers per topic and heartbeat. The default
            // factor sent it to a quarter of every connected subscriber outside the mesh: with
            // every daemon connected to every other, 50 peers twice a second at 200 nodes,
            // a cost per node that grew with the network.
            .gossip_factor(0.0)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .connection_handler_queue_len(GOSSIP_QUEUE_LEN)
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| format!("gossipsub: {e}"))?;
        let messages = request_response::Behaviour::with_codec(
            BytesCodec::new(inbound),
            [(MESSAGE_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(MESSAGE_TIMEOUT_CAP)
                .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
        );
        let sync = request_response::Behaviour::new(
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
        );
        Ok((kad, identify, gossipsub, messages, sync))
    }
}

/// The Kademlia behaviour of a node (its mode is set by the caller).
fn kademlia(peer_id: PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let store = kad::store::MemoryStore::with_config(
        peer_id,
        kad::store::MemoryStoreConfig {
            max_records: MAX_KAD_RECORDS,
            max_value_bytes: MAX_KAD_PACKET_BYTES,
            ..Default::default()
        },
    );
    kad::Behaviour::with_config(peer_id, store, kad_config())
}

/// The configuration of a node's Kademlia behaviour.
fn kad_config() -> kad::Config {
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config.set_query_timeout(KAD_QUERY_TIMEOUT);
    // Directory snapshots travel as DHT records (see `directory`).
    kad_config.set_max_packet_size(MAX_KAD_PACKET_BYTES);
    // The routing table is filled only through `add_routing_address`, which adds a peer
    // only while its bucket has room: a peer that connects is not inserted by Kademlia
    // itself, and no insertion into a full bucket makes Kademlia dial its least recently
    // connected entry to check it is alive (see `add_routing_address`).
    kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
    // No periodic bootstrap (libp2p's default is every 5 minutes): the routing table is filled
    // from the directory, which holds every announced peer (`add_routing_address`), not from
    // lookups. A bootstrap is a lookup of the node's own key and of a random key in each bucket
    // beyond its closest peer, each dialing the ~20 peers closest to its key, most of them let
    // go by the pruning (`connections`), so more buckets, more dials, as the network grows.
    // libp2p still bootstraps on its own while the table holds fewer than `K_VALUE` peers (a
    // node that knows only its bootstrap peer yet).
    kad_config.set_periodic_bootstrap_interval(None);
    kad_config
}

/// Reads one frame (`grove_protocol::frame`): a `u32` little-endian length, checked against
/// `limit`, then that many bytes, taking room from `budget` only as they arrive (never the
/// claimed length up front). `what` names the frame in errors.
pub async fn read_framed<T>(
    io: &mut T,
    limit: usize,
    budget: &mut impl Budget,
    what: &str,
) -> Result<Vec<u8>, ReadError>
where
    T: AsyncRead + Unpin + Send,
{
    let mut reader = FrameReader::new(limit);
    let mut piece = [0u8; READ_PIECE_BYTES];
    while !reader.is_complete() {
        let want = reader.wanted().min(READ_PIECE_BYTES);
        let n = io.read(&mut piece[..want]).await.map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        reader
            .feed(&piece[..n], budget)
            .map_err(|e| ReadError::Frame(what.to_string(), e))?;
    }
    reader
        .finish()
        .map_err(|e| ReadError::Frame(what.to_string(), e))
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The frame was refused (what it was, and why).
    Frame(String, FrameError),
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            ReadError::Frame(what, FrameError::Truncated) => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside a {what}"),
            ),
            ReadError::Frame(what, e) => {
                io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
            }
        }
    }
}

/// Writes `bytes` (at most `limit`) after their `u32` little-endian length, and closes.
async fn write_framed<T>(io: &mut T, bytes: &[u8], limit: usize, what: &str) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l as usize <= limit)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} too large")))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// One message on the wire: the protocol codec's bytes and, for a received one, its hold on
/// the inbound budgets (given back when the event loop drops it, once handled).
#[derive(Debug)]
pub struct Frame {
    pub bytes: Vec<u8>,
    permit: Option<Permit>,
}

impl Frame {
    /// A message to send.
    pub fn outbound(bytes: Vec<u8>) -> Frame {
        Frame {
            bytes,
            permit: None,
        }
    }

    /// Room this received message holds in the inbound budgets.
    pub fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, Permit::bytes)
    }
}

/// Length-prefixed raw bytes: a `u32` little-endian length, then the protocol codec's bytes,
/// read incrementally within the inbound budgets (`budget`).
///
/// libp2p clones the behaviour's codec once per connection and that clone once per stream:
/// the first clone of the behaviour's codec (which has no connection) gets a fresh
/// [`ConnectionBudget`], and the streams of the connection share it.
#[derive(Debug)]
pub struct BytesCodec {
    node: Arc<NodeBudget>,
    connection: Option<Arc<ConnectionBudget>>,
}

impl BytesCodec {
    /// The behaviour's codec (no connection yet).
    pub fn new(node: Arc<NodeBudget>) -> BytesCodec {
        BytesCodec {
            node,
            connection: None,
        }
    }
}

impl Clone for BytesCodec {
    fn clone(&self) -> BytesCodec {
        let connection = self.connection.clone().unwrap_or_else(|| {
            ConnectionBudget::new(
                MAX_INBOUND_BYTES_PER_CONNECTION,
                MAX_INBOUND_STREAMS_PER_CONNECTION,
            )
        });
        BytesCodec {
            node: self.node.clone(),
            connection: Some(connection),
        }
    }
}

#[async_trait]
impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        // Only the behaviour's own codec lacks a connection, and it reads no stream.
        let connection = self.connection.get_or_insert_with(|| {
            ConnectionBudget::new(
                MAX_INBOUND_BYTES_PER_CONNECTION,
                MAX_INBOUND_STREAMS_PER_CONNECTION,
            )
        });
        let Some(mut permit) = Permit::open(&self.node, connection) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many inbound streams on this connection",
            ));
        };
        match read_framed(io, MAX_MESSAGE_BYTES, &mut permit, "message").await {
            Ok(bytes) => Ok(Frame {
                bytes,
                permit: Some(permit),
            }),
            Err(e) => {
                match &e {
                    ReadError::Frame(_, FrameError::OverLimit { .. }) => {
                        self.node.count(InboundRejection::FrameOverLimit)
                    }
                    ReadError::Frame(_, FrameError::OverBudget { .. }) => {
                        if let Some(why) = permit.refused() {
                            self.node.count(why);
                        }
                    }
                    _ => {}
                }
                Err(e.into())
            }
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut ack = [0u8; 1];
        io.read_exact(&mut ack).await?;
        if ack[0] != ACK {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad ack"));
        }
        Ok(())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &req.bytes, MAX_MESSAGE_BYTES, "message").await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&[ACK]).await?;
        io.close().await
    }
}

/// The directory pull: the request is one version byte and the digest of the asker's
/// directory (32 bytes), the response a `u32` little-endian length and a postcard
/// `directory::SnapshotBody` of at most `MAX_SNAPSHOT_BYTES` (checked before anything is
/// allocated), empty when both directories have the same digest.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

const SYNC_VERSION: u8 = 1;

#[async_trait]
impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = [u8; 32];
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<[u8; 32]>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut version = [0u8; 1];
        io.read_exact(&mut version).await?;
        if version[0] != SYNC_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "directory sync version {} is not {SYNC_VERSION}",
                    version[0]
                ),
            ));
        }
        let mut digest = [0u8; 32];
        io.read_exact(&mut digest).await?;
        Ok(digest)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        // The answer to this node's own pull (one at a time per peer): its length limit
        // bounds it, and it is read incrementally too.
        Ok(read_framed(
            io,
            crate::daemon::directory::MAX_SNAPSHOT_BYTES,
            &mut Unlimited,
            "directory",
        )
        .await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        digest: [u8; 32],
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&[SYNC_VERSION]).await?;
        io.write_all(&digest).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        body: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(
            io,
            &body,
            crate::daemon::directory::MAX_SNAPSHOT_BYTES,
            "directory",
        )
        .await
    }
}

#[cfg(test)]
mod tests {

    /// The size-aware deadline: a contributor hands `g - t + 1 = 3` full vectors of the
    /// largest size to the transport at once, and the third leaves only after the first two;
    /// on a 6,000 kB/s uplink (DISSEC's) it must not be failed over before its last byte
    /// left. A fixed deadline fails it: its upload alone takes 16.4 s.
    #[test]
    fn a_message_deadline_covers_the_largest_vectors_upload() {
        assert_eq!(message_deadline(0, 0), MESSAGE_TIMEOUT);
        let largest = vector_bytes(MAX_VECTOR_LEN);
        let uplink = 6000.0 * 1024.0;
        let third_leaves = 3.0 * MAX_MESSAGE_BYTES as f64 / uplink;
        let deadline = message_deadline(3 * MAX_MESSAGE_BYTES, largest).as_secs_f64();
        assert!(
            deadline > third_leaves + 1.0,
            "deadline {deadline:.1} s, third vector leaves at {third_leaves:.1} s"
        );
        // Behind six others of the largest size (a member's partial sums to its parent's
        // seven positions), the seventh still has the time their upload takes.
        let seventh_leaves = 7.0 * MAX_MESSAGE_BYTES as f64 / uplink;
        assert!(
            message_deadline(7 * MAX_MESSAGE_BYTES, largest).as_secs_f64() > seventh_leaves + 1.0
        );
        assert!(message_deadline(1 << 20, 0) > message_deadline(1 << 10, 0));
        assert_eq!(
            MESSAGE_TIMEOUT_CAP,
            message_deadline(MAX_MESSAGE_BYTES, largest) - MESSAGE_TIMEOUT + ACK_TIMEOUT_MAX
        );
    }

    /// The receiver's term: a receiver acknowledges after it handled and persisted a message,
    /// so even a small message waits there behind the vectors other senders sent. In the
    /// simulator (sim/README.md, "Detection delay", DISSEC's costs) a fixed 10 s never fired on
    /// a live receiver with 8,192 kB vectors while 5 s fired 13,121 times and 2 s collapsed the
    /// run; with 1,024 kB vectors about 3 s released every run at 1 %/s where 10 s lost two in
    /// 20. The deadline gives a control message those delays: at least 10 s in a computation
    /// of 8,192 kB vectors, at most about 3 s in one of 1,024 kB, and the fixed part alone in a
    /// computation of a few elements.
    #[test]
    fn a_small_message_waits_behind_its_computations_vectors() {
        let control = 2_000;
        let at_8192_kb = message_deadline(control, vector_bytes(1 << 20));
        assert!(at_8192_kb >= Duration::from_secs(10), "{at_8192_kb:?}");
        let at_1024_kb = message_deadline(control, vector_bytes(1 << 17));
        assert!(at_1024_kb <= Duration::from_millis(3_100), "{at_1024_kb:?}");
        assert!(at_1024_kb >= Duration::from_secs(3), "{at_1024_kb:?}");
        let counts_only = message_deadline(control, vector_bytes(16));
        assert!(counts_only < MESSAGE_TIMEOUT + Duration::from_millis(3));
    }

    use super::*;
    use libp2p::request_response::Codec;

    /// `n` peers (from fixed keys) in the farthest bucket of `local`'s routing table.
    fn peers_in_top_bucket(local: PeerId, n: usize) -> Vec<PeerId> {
        let me = kad::KBucketKey::from(local);
        (0u32..)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                identity::Keypair::ed25519_from_bytes(seed)
                    .expect("a key")
                    .public()
                    .to_peer_id()
            })
            .filter(|p| me.distance(&kad::KBucketKey::from(*p)).ilog2() == Some(255))
            .take(n)
            .collect()
    }

    /// Every dial Kademlia has queued (a behaviour outside a swarm hands its events to `poll`).
    fn dials_queued(kad: &mut kad::Behaviour<kad::store::MemoryStore>) -> Vec<PeerId> {
        use libp2p::swarm::{NetworkBehaviour, ToSwarm};
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut dials = Vec::new();
        while let Poll::Ready(event) = kad.poll(&mut cx) {
            if let ToSwarm::Dial { opts } = event {
                dials.extend(opts.get_peer_id());
            }
        }
        dials
    }

    /// The routing set is bounded and adding to it dials no one: a peer whose bucket is full
    /// is not added. Kademlia's own `add_address` into a full bucket makes its least recently
    /// connected entry pending and dials that entry, disconnected, to check it is alive: with
    /// the pruning, the peers just let go, dialed back by every identify and announcement (at
    /// 100 and 200 nodes, closing connections raised their number). Fails if
    /// `add_routing_address` adds into a full bucket.
    #[test]
    fn a_full_bucket_takes_no_new_peer_and_dials_no_one() {
        let local = identity::Keypair::ed25519_from_bytes([9; 32])
            .expect("a key")
            .public()
            .to_peer_id();
        let mut kad = kademlia(local);
        let k = kad::K_VALUE.get();
        let peers = peers_in_top_bucket(local, k + 2);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("an address");
        for p in &peers[..k] {
            assert!(add_routing_address(&mut kad, p, addr.clone()));
        }
        assert!(dials_queued(&mut kad).is_empty());
        // A known peer's new address is taken; a newcomer to the full bucket is not, even
        // connected (identify hands over the addresses of every new connection's peer).
        let other: Multiaddr = "/ip4/127.0.0.1/tcp/10".parse().expect("an address");
        assert!(add_routing_address(&mut kad, &peers[0], other));
        connect(&mut kad, peers[k]);
        assert!(!add_routing_address(&mut kad, &peers[k], addr.clone()));
        assert_eq!(
            dials_queued(&mut kad),
            Vec::<PeerId>::new(),
            "no one dialed"
        );
        let top = kad.kbucket(peers[0]).expect("the bucket");
        assert_eq!(top.num_entries(), k);
        assert!(!top.has_pending());
        // What it avoids: Kademlia's own insertion of a connected newcomer dials the least
        // recently connected entry, disconnected.
        connect(&mut kad, peers[k + 1]);
        kad.add_address(&peers[k + 1], addr);
        assert_eq!(dials_queued(&mut kad), vec![peers[0]]);
    }

    /// Polls `kad` as a swarm would, ending the bootstrap at each of its steps as the daemon
    /// does (`agreement`): every dial it queued.
    fn dials_ending_bootstrap(kad: &mut kad::Behaviour<kad::store::MemoryStore>) -> Vec<PeerId> {
        use libp2p::swarm::{NetworkBehaviour, ToSwarm};
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut dials = Vec::new();
        while let Poll::Ready(event) = kad.poll(&mut cx) {
            match event {
                ToSwarm::Dial { opts } => dials.extend(opts.get_peer_id()),
                ToSwarm::GenerateEvent(kad::Event::OutboundQueryProgressed {
                    result: kad::QueryResult::Bootstrap(_),
                    ..
                }) => {
                    end_bootstrap_if_filled(kad);
                }
                _ => {}
            }
        }
        dials
    }

    /// A bootstrap (libp2p starts one on its own while the routing table is small) is ended
    /// once the table is filled, here from the directory, before it dials anyone; with a small
    /// table it goes on. Fails without `end_bootstrap_if_filled` (the bootstrap dials its
    /// lookup's closest peers).
    #[test]
    fn a_filled_routing_table_ends_the_bootstrap_without_dials() {
        let local = identity::Keypair::ed25519_from_bytes([9; 32])
            .expect("a key")
            .public()
            .to_peer_id();
        let k = kad::K_VALUE.get();
        let peers = peers_in_top_bucket(local, k);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("an address");
        // A small table: the bootstrap goes on and dials.
        let mut small = kademlia(local);
        assert!(add_routing_address(&mut small, &peers[0], addr.clone()));
        small.bootstrap().expect("a known peer");
        assert_eq!(end_bootstrap_if_filled(&mut small), 0);
        assert_eq!(dials_ending_bootstrap(&mut small), vec![peers[0]]);
        // A filled one (the directory's first pull): the bootstrap in progress ends.
        let mut kad = kademlia(local);
        assert!(add_routing_address(&mut kad, &peers[0], addr.clone()));
        kad.bootstrap().expect("a known peer");
        for p in &peers[1..] {
            assert!(add_routing_address(&mut kad, p, addr.clone()));
        }
        assert_eq!(end_bootstrap_if_filled(&mut kad), 1);
        assert_eq!(dials_ending_bootstrap(&mut kad), Vec::<PeerId>::new());
        assert_eq!(kad.iter_queries().count(), 0, "the bootstrap is over");
    }

    /// No periodic Kademlia bootstrap: libp2p's default (every 5 minutes, a lookup of the
    /// node's own key and of a random key per bucket, each dialing the peers closest to its
    /// key) dials the peers the pruning let go, over and over. The routing table comes from
    /// the directory. libp2p's `Config` can be read only through its
    /// `Debug` form; fails with libp2p's default interval.
    #[test]
    fn kademlia_does_not_bootstrap_periodically() {
        let config = format!("{:?}", kad_config());
        assert!(
            config.contains("periodic_bootstrap_interval: None"),
            "{config}"
        );
    }

    /// Tells `kad` that `peer` connected (inbound), as the swarm would.
    fn connect(kad: &mut kad::Behaviour<kad::store::MemoryStore>, peer: PeerId) {
        use libp2p::core::ConnectedPoint;
        use libp2p::swarm::behaviour::ConnectionEstablished;
        use libp2p::swarm::{ConnectionId, FromSwarm, NetworkBehaviour};
        let local_addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("an address");
        let endpoint = ConnectedPoint::Listener {
            local_addr: local_addr.clone(),
            send_back_addr: local_addr,
        };
        kad.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(1),
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        dials_queued(kad);
    }
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A stream that delivers `bytes` and then waits forever (a peer that stalls mid-frame).
    struct Stalling {
        bytes: Vec<u8>,
        at: usize,
    }

    impl Stalling {
        fn new(claim: u32, sent: usize) -> Stalling {
            let mut bytes = claim.to_le_bytes().to_vec();
            bytes.resize(4 + sent, 7);
            Stalling { bytes, at: 0 }
        }
        /// A whole frame of `n` bytes.
        fn whole(n: usize) -> Stalling {
            Stalling::new(n as u32, n)
        }
    }

    impl AsyncRead for Stalling {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.bytes.len() - self.at);
            if n == 0 {
                return Poll::Pending;
            }
            let at = self.at;
            buf[..n].copy_from_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Stalling {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Polls a read until it has used every byte its stream delivers: `Some` if it finished.
    async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        match futures::poll!(f) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    type Read<'a> = Pin<Box<dyn std::future::Future<Output = io::Result<Frame>> + Send + 'a>>;

    static PROTOCOL: StreamProtocol = MESSAGE_PROTOCOL;

    fn read<'a>(codec: &'a mut BytesCodec, io: &'a mut Stalling) -> Read<'a> {
        codec.read_request(&PROTOCOL, io)
    }

    /// Streams that claim the largest message and stall hold only what they sent, so an honest
    /// message on the same connection still gets through. A reader that took room for the
    /// claimed length (or allocated it) fails here: three claims are over the connection's room.
    #[tokio::test]
    async fn claims_that_stall_leave_room_for_an_honest_message() {
        let node = NodeBudget::new(MAX_INBOUND_BYTES);
        let root = BytesCodec::new(node.clone());
        let conn = root.clone();
        let (mut c1, mut c2, mut c3, mut c4) = (conn.clone(), conn.clone(), conn.clone(), conn);
        let claim = MAX_MESSAGE_BYTES as u32;
        let (mut s1, mut s2, mut s3) = (
            Stalling::new(claim, 1000),
            Stalling::new(claim, 1000),
            Stalling::new(claim, 1000),
        );
        let mut r1 = read(&mut c1, &mut s1);
        let mut r2 = read(&mut c2, &mut s2);
        let mut r3 = read(&mut c3, &mut s3);
        assert!(poll_once(&mut r1).await.is_none());
        assert!(poll_once(&mut r2).await.is_none());
        assert!(poll_once(&mut r3).await.is_none());
        let mut honest = Stalling::whole(1000);
        let frame = poll_once(&mut read(&mut c4, &mut honest))
            .await
            .expect("complete")
            .expect("the honest message gets through");
        assert_eq!(frame.bytes.len(), 1000);
        assert!(node.used() <= 4 * grove_protocol::limits::FRAME_CHUNK_BYTES);
        assert!(node.rejections().is_empty());
    }

    /// A connection stops at its room; the streams of another connection do not.
    #[tokio::test]
    async fn a_connection_stops_at_its_room() {
        let node = NodeBudget::new(MAX_INBOUND_BYTES);
        let root = BytesCodec::new(node.clone());
        let conn = root.clone();
        let n = MAX_MESSAGE_BYTES - 64 * 1024;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = Stalling::whole(n);
            let frame = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
            held.push(frame.expect("complete").expect("within the room"));
        }
        let mut s = Stalling::whole(1 << 20);
        let refused = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
        assert!(refused.expect("refused at once").is_err());
        assert_eq!(
            node.rejections(),
            vec![(InboundRejection::ConnectionBudget, 1)]
        );
        let mut s = Stalling::whole(1 << 20);
        let other = poll_once(&mut read(&mut root.clone(), &mut s)).await;
        assert!(
            other.expect("complete").is_ok(),
            "another connection has its own room"
        );
        drop(held);
        let mut s = Stalling::whole(1 << 20);
        let again = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
        assert!(
            again.expect("complete").is_ok(),
            "handled messages give their room back"
        );
    }

    /// All connections together stop at the node's room.
    #[tokio::test]
    async fn the_node_stops_at_its_room() {
        let node = NodeBudget::new(4 << 20);
        let root = BytesCodec::new(node.clone());
        let mut s = Stalling::whole(3 << 20);
        let held = poll_once(&mut read(&mut root.clone(), &mut s)).await;
        let held = held.expect("complete").expect("within the room");
        let mut s = Stalling::whole(2 << 20);
        let refused = poll_once(&mut read(&mut root.clone(), &mut s)).await;
        assert!(refused.expect("refused").is_err());
        assert_eq!(node.rejections(), vec![(InboundRejection::NodeBudget, 1)]);
        assert_eq!(node.used(), held.held());
    }

    /// A connection has at most `MAX_INBOUND_STREAMS_PER_CONNECTION` streams being read or
    /// waiting to be handled; the next is cut at once.
    #[tokio::test]
    async fn a_connection_has_a_stream_cap() {
        let node = NodeBudget::new(MAX_INBOUND_BYTES);
        let conn = BytesCodec::new(node.clone()).clone();
        let mut held = Vec::new();
        for _ in 0..MAX_INBOUND_STREAMS_PER_CONNECTION {
            let mut s = Stalling::whole(10);
            let frame = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
            held.push(frame.expect("complete").expect("under the cap"));
        }
        let mut s = Stalling::whole(10);
        let refused = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
        assert!(refused.expect("refused").is_err());
        assert_eq!(node.rejections(), vec![(InboundRejection::StreamCap, 1)]);
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_counted() {
        let node = NodeBudget::new(MAX_INBOUND_BYTES);
        let conn = BytesCodec::new(node.clone()).clone();
        let mut s = Stalling::new(MAX_MESSAGE_BYTES as u32 + 1, 0);
        let refused = poll_once(&mut read(&mut conn.clone(), &mut s)).await;
        assert!(refused.expect("refused").is_err());
        assert_eq!(
            node.rejections(),
            vec![(InboundRejection::FrameOverLimit, 1)]
        );
        assert_eq!(node.used(), 0);
    }
}
