//! Memory budgets of inbound streams: what a peer can make this node hold by sending it bytes.
//!
//! - A frame is read incrementally ([`grove_protocol::frame`]): room grows only as bytes
//!   arrive, so a huge length prefix costs nothing by itself.
//! - Every connection has [`MAX_INBOUND_BYTES_PER_CONNECTION`] of room for the frames its
//!   peer is sending or has sent and the node has not handled yet, and at most
//!   [`MAX_INBOUND_STREAMS_PER_CONNECTION`] such streams at once. A peer has at most
//!   [`MAX_CONNECTIONS_PER_PEER`] connections, so a peer holds at most
//!   `MAX_CONNECTIONS_PER_PEER * MAX_INBOUND_BYTES_PER_CONNECTION` of this node's memory.
//! - All connections together hold at most [`MAX_INBOUND_BYTES`].
//!
//! Room is taken before the buffer grows and given back when the message is handled (the
//! [`Permit`] travels with the request to the event loop and is dropped there). A breach
//! closes the stream (the sender sees a failed request) and is counted by its
//! [`InboundRejection`] in `grove status` (`inbound_rejected`).

use grove_protocol::frame::Budget;
use grove_protocol::limits::MAX_MESSAGE_BYTES;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Room for inbound frames per connection: two messages of the largest size, so that one
/// large message does not block the next.
pub const MAX_INBOUND_BYTES_PER_CONNECTION: usize = 2 * MAX_MESSAGE_BYTES;
/// Room for inbound frames of the whole node (all connections): eight messages of the largest
/// size. With the per-peer bound this keeps any one peer to a quarter of it.
pub const MAX_INBOUND_BYTES: usize = 8 * MAX_MESSAGE_BYTES;
/// Largest number of inbound message streams of one connection being read or waiting to be
/// handled. Below the transport's stream cap (`net::MAX_CONCURRENT_STREAMS`, which counts
/// inbound and outbound together), so this node's own sends on the connection always find room.
/// 32 was too few: with 512 untrusted computations admitted, honest peers hit it 194 times and
/// a trusted computation released nothing; memory stays bounded by the byte budgets.
pub const MAX_INBOUND_STREAMS_PER_CONNECTION: usize = 128;
/// Largest number of connections one peer may hold with this node (two nodes dialing each
/// other at once make two).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;

/// Why an inbound stream was cut. Fieldless: one counter per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum InboundRejection {
    /// A length prefix over the protocol's limit.
    FrameOverLimit,
    /// The connection's room ([`MAX_INBOUND_BYTES_PER_CONNECTION`]) is used up.
    ConnectionBudget,
    /// The node's room ([`MAX_INBOUND_BYTES`]) is used up.
    NodeBudget,
    /// The connection already has [`MAX_INBOUND_STREAMS_PER_CONNECTION`] streams open.
    StreamCap,
    /// A directory pull over the per-peer rate (`directory::MIN_PULL_INTERVAL`).
    PullRate,
    /// Membership gossip over its sender's rate (`membership::GossipPeers`, and the view's
    /// one anti-entropy answer per kind per interval), or pushed announcements past the
    /// sender's budget of signature checks.
    GossipRate,
    /// Membership gossip from a peer the view does not admit: anti-entropy, or a push that is
    /// not its own announcement alone.
    GossipUnadmitted,
    /// A push cut at an announcement no honest peer sends, and every gossip message of its
    /// sender for a window from then (`membership::GOSSIP_WINDOW`).
    GossipMisbehaving,
}

impl InboundRejection {
    /// Every variant, in the order of the counters.
    pub const ALL: [InboundRejection; 8] = [
        InboundRejection::FrameOverLimit,
        InboundRejection::ConnectionBudget,
        InboundRejection::NodeBudget,
        InboundRejection::StreamCap,
        InboundRejection::PullRate,
        InboundRejection::GossipRate,
        InboundRejection::GossipUnadmitted,
        InboundRejection::GossipMisbehaving,
    ];
}

/// The node's side of the budgets: its room in use and the counters of breaches.
#[derive(Debug, Default)]
pub struct NodeBudget {
    used: AtomicUsize,
    limit: usize,
    rejected: [AtomicU64; InboundRejection::ALL.len()],
}

impl NodeBudget {
    pub fn new(limit: usize) -> Arc<NodeBudget> {
        Arc::new(NodeBudget {
            limit,
            ..Default::default()
        })
    }

    /// Counts one breach.
    pub fn count(&self, why: InboundRejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The breaches so far, by reason (only those that happened).
    pub fn rejections(&self) -> Vec<(InboundRejection, u64)> {
        InboundRejection::ALL
            .iter()
            .map(|r| (*r, self.rejected[*r as usize].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Room in use now, in bytes.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One connection's room and open streams.
#[derive(Debug)]
pub struct ConnectionBudget {
    used: AtomicUsize,
    limit: usize,
    streams: AtomicUsize,
    max_streams: usize,
}

impl ConnectionBudget {
    pub fn new(limit: usize, max_streams: usize) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget {
            used: AtomicUsize::new(0),
            limit,
            streams: AtomicUsize::new(0),
            max_streams,
        })
    }
}

/// Takes `bytes` from `used` if that stays within `limit`.
fn take(used: &AtomicUsize, limit: usize, bytes: usize) -> bool {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        u.checked_add(bytes).filter(|n| *n <= limit)
    })
    .is_ok()
}

/// One inbound stream's hold on the budgets: a stream slot of its connection and the room its
/// frame took. Dropping it gives both back.
#[derive(Debug)]
pub struct Permit {
    node: Arc<NodeBudget>,
    connection: Arc<ConnectionBudget>,
    bytes: usize,
    /// Which budget refused the last reservation, if one did.
    refused: Option<InboundRejection>,
}

impl Permit {
    /// A stream slot on `connection`, or `None` (counted) if it has none free.
    pub fn open(node: &Arc<NodeBudget>, connection: &Arc<ConnectionBudget>) -> Option<Permit> {
        if !take(&connection.streams, connection.max_streams, 1) {
            node.count(InboundRejection::StreamCap);
            return None;
        }
        Some(Permit {
            node: node.clone(),
            connection: connection.clone(),
            bytes: 0,
            refused: None,
        })
    }

    /// Which budget refused room, if one did (the reader then fails with `OverBudget`).
    pub fn refused(&self) -> Option<InboundRejection> {
        self.refused
    }

    /// Room held, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Budget for Permit {
    fn reserve(&mut self, bytes: usize) -> bool {
        if !take(&self.connection.used, self.connection.limit, bytes) {
            self.refused = Some(InboundRejection::ConnectionBudget);
            return false;
        }
        if !take(&self.node.used, self.node.limit, bytes) {
            self.connection.used.fetch_sub(bytes, Ordering::AcqRel);
            self.refused = Some(InboundRejection::NodeBudget);
            return false;
        }
        self.bytes += bytes;
        true
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.connection.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.node.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.connection.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_and_slots_come_back_when_a_permit_drops() {
        let node = NodeBudget::new(100);
        let conn = ConnectionBudget::new(60, 2);
        let mut a = Permit::open(&node, &conn).expect("a slot");
        let mut b = Permit::open(&node, &conn).expect("a slot");
        assert!(
            Permit::open(&node, &conn).is_none(),
            "the third stream is over the cap"
        );
        assert!(a.reserve(50));
        assert!(!b.reserve(20), "the connection has 10 left");
        assert_eq!(b.refused(), Some(InboundRejection::ConnectionBudget));
        let other = ConnectionBudget::new(60, 2);
        let mut c = Permit::open(&node, &other).expect("a slot");
        assert!(!c.reserve(60), "the node has 50 left");
        assert_eq!(c.refused(), Some(InboundRejection::NodeBudget));
        assert_eq!(node.used(), 50);
        drop(a);
        assert_eq!(node.used(), 0);
        assert!(b.reserve(60));
        assert!(Permit::open(&node, &conn).is_some());
        assert_eq!(node.rejections(), vec![(InboundRejection::StreamCap, 1)]);
    }
}
