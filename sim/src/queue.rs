//! The event queue: a radix heap over unique `u128` keys that never go below the last key
//! popped (a discrete-event simulation never schedules into its past).
//!
//! Buckets hold keys by the highest bit in which they differ from the last popped key; popping
//! takes bucket 0 (the last key itself) or else empties the first non-empty bucket, whose
//! minimum becomes the last key, into lower buckets. Every access is sequential, unlike a
//! binary heap's sift through a large array, and the order is exactly increasing key order.

/// A monotone priority queue of `(key, value)`, smallest key first; keys must be unique and
/// at least the last popped key.
pub struct RadixQueue<V> {
    buckets: Vec<Vec<(u128, V)>>,
    last: u128,
    len: usize,
}

impl<V> Default for RadixQueue<V> {
    fn default() -> Self {
        RadixQueue {
            buckets: (0..=128).map(|_| Vec::new()).collect(),
            last: 0,
            len: 0,
        }
    }
}

fn bucket(key: u128, last: u128) -> usize {
    (128 - (key ^ last).leading_zeros()) as usize
}

impl<V> RadixQueue<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts; a key below the last popped key is raised to it (callers never do that).
    pub fn push(&mut self, key: u128, value: V) {
        debug_assert!(key >= self.last, "a key below the last popped one");
        let key = key.max(self.last);
        self.buckets[bucket(key, self.last)].push((key, value));
        self.len += 1;
    }

    /// Removes the smallest key.
    pub fn pop(&mut self) -> Option<(u128, V)> {
        if self.len == 0 {
            return None;
        }
        if self.buckets[0].is_empty() {
            let i = self.buckets.iter().position(|b| !b.is_empty())?;
            let items = std::mem::take(&mut self.buckets[i]);
            self.last = items.iter().map(|(k, _)| *k).min()?;
            for (key, value) in items {
                self.buckets[bucket(key, self.last)].push((key, value));
            }
        }
        self.len -= 1;
        self.buckets[0].pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::SimRng;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[test]
    fn pops_in_key_order_like_a_binary_heap() {
        let mut rng = SimRng::new(3);
        let mut radix = RadixQueue::default();
        let mut heap = BinaryHeap::new();
        let mut seq = 0u128;
        let mut now = 0u128;
        let mut popped = 0;
        for round in 0..200_000u32 {
            // Mostly near-future events, some far ones, some at the current time.
            if rng.unit() < 0.55 || heap.is_empty() {
                let ahead = match rng.next_u64() % 4 {
                    0 => 0,
                    1 => rng.next_u64() % 100,
                    2 => rng.next_u64() % 100_000,
                    _ => rng.next_u64() % 10_000_000_000,
                };
                seq += 1;
                let key = ((now >> 64) + u128::from(ahead)) << 64 | seq;
                radix.push(key, round);
                heap.push(Reverse((key, round)));
            } else {
                let Reverse((key, value)) = heap.pop().unwrap();
                assert_eq!(radix.pop(), Some((key, value)));
                now = key;
                popped += 1;
            }
            assert_eq!(radix.len(), heap.len());
        }
        while let Some(Reverse(item)) = heap.pop() {
            assert_eq!(radix.pop(), Some(item));
        }
        assert!(radix.is_empty() && radix.pop().is_none());
        assert!(popped > 50_000);
    }
}
