//! Messages for computations whose request has not arrived yet (gossip may deliver a request
//! after the first shares or votes of its computation). Kept until the request arrives, within
//! bounds on count and bytes, in total and per sender:
//!
//! - one sender holds at most [`MAX_EARLY_MESSAGES_PER_SENDER`] messages and
//!   [`MAX_EARLY_BYTES_PER_SENDER`] bytes; beyond, its new message is refused
//!   ([`Rejection::EarlySenderFull`]);
//! - all senders together hold at most [`MAX_EARLY_MESSAGES`] and [`MAX_EARLY_BYTES`]; beyond,
//!   the oldest message of the sender holding the most bytes is dropped
//!   ([`Rejection::EarlyEvicted`]), so a flood of one sender pushes out its own messages first.
//!
//! Sizes are the messages' encoded lengths (what the transport carried).

use super::Rejection;
use crate::ids::{ComputationId, NodeId};
use crate::limits::{
    MAX_EARLY_BYTES, MAX_EARLY_BYTES_PER_SENDER, MAX_EARLY_MESSAGES, MAX_EARLY_MESSAGES_PER_SENDER,
    MAX_MESSAGE_BYTES,
};
use crate::message::Message;
use std::collections::{BTreeMap, VecDeque};

/// The early messages, oldest first, with what each sender holds.
#[derive(Debug, Default)]
pub(super) struct EarlyQueue {
    queue: VecDeque<(NodeId, usize, Message)>,
    bytes: usize,
    /// Messages and bytes per sender (only senders with at least one message).
    held: BTreeMap<NodeId, (usize, usize)>,
}

/// A message's size: its encoded length (a message that does not encode counts as the
/// largest; the transport never delivers one).
pub(super) fn size_of(message: &Message) -> usize {
    postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())
        .map(|n| n + crate::codec::HEADER_LEN)
        .unwrap_or(MAX_MESSAGE_BYTES)
}

impl EarlyQueue {
    /// Keeps `message` from `from`; returns the rejections it caused (its own refusal, or the
    /// evictions that made room).
    pub(super) fn push(&mut self, from: NodeId, message: Message) -> Vec<Rejection> {
        let size = size_of(&message);
        let (n, b) = self.held.get(&from).copied().unwrap_or((0, 0));
        if n >= MAX_EARLY_MESSAGES_PER_SENDER || b + size > MAX_EARLY_BYTES_PER_SENDER {
            return vec![Rejection::EarlySenderFull];
        }
        let mut out = Vec::new();
        while !self.queue.is_empty()
            && (self.queue.len() >= MAX_EARLY_MESSAGES || self.bytes + size > MAX_EARLY_BYTES)
        {
            self.evict_from_largest();
            out.push(Rejection::EarlyEvicted);
        }
        self.bytes += size;
        let entry = self.held.entry(from).or_default();
        entry.0 += 1;
        entry.1 += size;
        self.queue.push_back((from, size, message));
        out
    }

    /// Drops the oldest message of the sender holding the most bytes (the smallest id on a tie).
    fn evict_from_largest(&mut self) {
        let Some(victim) = self
            .held
            .iter()
            .max_by(|a, b| a.1 .1.cmp(&b.1 .1).then(b.0.cmp(a.0)))
            .map(|(id, _)| *id)
        else {
            return;
        };
        if let Some(at) = self.queue.iter().position(|(f, _, _)| *f == victim) {
            if let Some((from, size, _)) = self.queue.remove(at) {
                self.forget(from, size);
            }
        }
    }

    fn forget(&mut self, from: NodeId, size: usize) {
        self.bytes -= size;
        if let Some(e) = self.held.get_mut(&from) {
            e.0 -= 1;
            e.1 -= size;
            if e.0 == 0 {
                self.held.remove(&from);
            }
        }
    }

    /// Takes out the messages of `id`, oldest first.
    pub(super) fn take(&mut self, id: ComputationId) -> Vec<(NodeId, Message)> {
        let mut mine = Vec::new();
        let mut rest = VecDeque::with_capacity(self.queue.len());
        for (from, size, m) in std::mem::take(&mut self.queue) {
            if m.computation == id {
                mine.push((from, size, m));
            } else {
                rest.push_back((from, size, m));
            }
        }
        self.queue = rest;
        mine.into_iter()
            .map(|(from, size, m)| {
                self.forget(from, size);
                (from, m)
            })
            .collect()
    }

    /// Messages held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Bytes held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GroupId;
    use crate::message::{Body, ShareMsg};

    /// A share for computation `[id; 32]` of about `pad` bytes.
    fn message(id: u8, pad: usize) -> Message {
        Message {
            computation: ComputationId([id; 32]),
            round: 0,
            body: Body::Share(ShareMsg {
                group: GroupId { level: 0, index: 0 },
                position: 1,
                contributor: NodeId([id; 32]),
                sealed: vec![0; pad],
            }),
            to: None,
        }
    }

    #[test]
    fn a_sender_is_held_to_its_quota_and_others_still_get_in() {
        let mut q = EarlyQueue::default();
        let hostile = NodeId([1; 32]);
        let honest = NodeId([2; 32]);
        let mut refused = 0;
        for i in 0..(2 * MAX_EARLY_MESSAGES_PER_SENDER) {
            refused += q
                .push(hostile, message((i % 100) as u8, 0))
                .iter()
                .filter(|r| **r == Rejection::EarlySenderFull)
                .count();
        }
        assert_eq!(refused, MAX_EARLY_MESSAGES_PER_SENDER);
        assert!(q.push(honest, message(200, 0)).is_empty());
        assert_eq!(q.take(ComputationId([200; 32])).len(), 1);
        assert!(q.len() <= MAX_EARLY_MESSAGES_PER_SENDER);
        assert!(q.bytes() <= MAX_EARLY_BYTES_PER_SENDER);
    }

    /// Large messages are bounded in bytes, not only in count: a sender stops at its bytes,
    /// and many senders together push out the largest holder's oldest messages.
    #[test]
    fn bytes_are_bounded_per_sender_and_in_total() {
        let mut q = EarlyQueue::default();
        let big = MAX_EARLY_BYTES_PER_SENDER / 4;
        let one = NodeId([1; 32]);
        let mut refused = 0;
        for i in 0..4 {
            refused += q.push(one, message(i, big)).len();
        }
        assert_eq!(refused, 1, "the fourth quarter is over the sender's bytes");
        let mut evicted = 0;
        for s in 0..(2 * MAX_EARLY_BYTES / MAX_EARLY_BYTES_PER_SENDER + 2) {
            let from = NodeId([10 + s as u8; 32]);
            for i in 0..3 {
                evicted += q.push(from, message(100 + i, big)).len();
                assert!(q.bytes() <= MAX_EARLY_BYTES, "{}", q.bytes());
            }
        }
        assert!(evicted > 0);
        assert!(
            q.take(ComputationId([0; 32])).is_empty(),
            "the oldest went first"
        );
    }
}
