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

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use grove_protocol::limits::MAX_MESSAGE_BYTES;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{gossipsub, identify, identity, kad, request_response, StreamProtocol, Swarm};
use std::io;
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
/// How long one directory pull (a request-response exchange of up to a 4 MB snapshot) may
/// take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a protocol message may wait for its ack before the engine hears it unreachable
/// and fails it over (the failure detector): upload, the receiver's queue and handling, and
/// the ack. 10 s is the simulator's choice (sim/README.md, "Detection delay"): the shortest
/// delay that never fired on a live receiver (1 and 2 s collapse 8,192 kB runs on busy live
/// members, 5 s still fires on them), with 30 s's completeness at 0.25 %/s and a narrower
/// completeness interval than 30 s at 1 %/s (ARCHITECTURE.md, "Decisions").
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one Kademlia query may take.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest Kademlia message and record value: a directory snapshot must fit.
pub const MAX_KAD_PACKET_BYTES: usize = crate::daemon::directory::MAX_SNAPSHOT_BYTES + 64 * 1024;
/// Largest number of records a node's DHT store keeps (others' snapshots and request lists).
pub const MAX_KAD_RECORDS: usize = 128;
/// Largest number of concurrent streams per connection for protocol messages.
pub const MAX_CONCURRENT_STREAMS: usize = 256;
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
            Behaviour::new(key, relay_client).map_err(Into::into)
        })?;
    #[cfg(not(feature = "nat"))]
    let builder = builder.with_behaviour(|key| Behaviour::new(key).map_err(Into::into))?;
    Ok(builder
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
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
    pub autonat: libp2p::autonat::Behaviour,
    pub relay_client: libp2p::relay::client::Behaviour,
    pub relay_server: libp2p::relay::Behaviour,
    pub dcutr: libp2p::dcutr::Behaviour,
}

impl Behaviour {
    #[cfg(not(feature = "nat"))]
    pub fn new(key: &identity::Keypair) -> Result<Behaviour, String> {
        let (kad, identify, gossipsub, messages, sync) = Self::core(key)?;
        Ok(Behaviour {
            kad,
            identify,
            gossipsub,
            messages,
            sync,
        })
    }

    #[cfg(feature = "nat")]
    pub fn new(
        key: &identity::Keypair,
        relay_client: libp2p::relay::client::Behaviour,
    ) -> Result<Behaviour, String> {
        let peer_id = key.public().to_peer_id();
        let (kad, identify, gossipsub, messages, sync) = Self::core(key)?;
        Ok(Behaviour {
            kad,
            identify,
            gossipsub,
            messages,
            sync,
            autonat: libp2p::autonat::Behaviour::new(peer_id, Default::default()),
            relay_client,
            relay_server: libp2p::relay::Behaviour::new(peer_id, Default::default()),
            dcutr: libp2p::dcutr::Behaviour::new(peer_id),
        })
    }

    /// The behaviours every build has.
    #[allow(clippy::type_complexity)]
    fn core(
        key: &identity::Keypair,
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
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(KAD_QUERY_TIMEOUT);
        // Directory snapshots travel as DHT records (see `directory`).
        kad_config.set_max_packet_size(MAX_KAD_PACKET_BYTES);
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_records: MAX_KAD_RECORDS,
                max_value_bytes: MAX_KAD_PACKET_BYTES,
                ..Default::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // Local networks have no confirmed external address; answer DHT queries anyway.
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(identify::Config::new(
            IDENTIFY_VERSION.to_string(),
            key.public(),
        ));
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
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
        let messages = request_response::Behaviour::new(
            [(MESSAGE_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(MESSAGE_TIMEOUT)
                .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
        );
        let sync = request_response::Behaviour::new(
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
        );
        Ok((kad, identify, gossipsub, messages, sync))
    }
}

/// Reads a `u32` little-endian length, checked against `limit` before anything is allocated,
/// then that many bytes (`what` names them in the error).
async fn read_framed<T>(io: &mut T, limit: usize, what: &str) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} of {len} bytes is over the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
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

/// Length-prefixed raw bytes: a `u32` little-endian length, then the protocol codec's bytes.
/// The length is checked against `MAX_MESSAGE_BYTES` before anything is allocated.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

#[async_trait]
impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io, MAX_MESSAGE_BYTES, "message").await
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
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &req, MAX_MESSAGE_BYTES, "message").await
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
        read_framed(
            io,
            crate::daemon::directory::MAX_SNAPSHOT_BYTES,
            "directory",
        )
        .await
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
