//! Every named bound of the protocol. Exceeding one of these from remote input is a typed
//! error, never a panic or unbounded growth.

/// Largest group size `g` (and so largest threshold `t`).
pub const MAX_GROUP_SIZE: u8 = 32;
/// Largest number of field elements in one contribution vector.
pub const MAX_VECTOR_LEN: u32 = 1 << 22;
/// Largest encoded message, in bytes (a full vector of `MAX_VECTOR_LEN` elements plus headers).
pub const MAX_MESSAGE_BYTES: usize = (MAX_VECTOR_LEN as usize) * 8 + 64 * 1024;
/// Largest number of groups in one tree plan.
pub const MAX_PLAN_GROUPS: u32 = 1 << 20;
/// Largest fan-in of an inner group (children per group).
pub const MAX_FAN_IN: u32 = 1024;
/// Largest number of ordered backups per position.
pub const MAX_BACKUPS: u8 = 8;
/// Largest number of items (contributors or child versions) one manifest or report may list.
pub const MAX_MANIFEST_ITEMS: usize = 1 << 16;
/// Largest number of distinct contributors one leaf member accepts shares from.
pub const MAX_CONTRIBUTORS_PER_LEAF: usize = MAX_MANIFEST_ITEMS;
/// Largest number of distinct versions of one child group a member keeps.
pub const MAX_VERSIONS_PER_CHILD: usize = 4;
/// Largest number of computations a node holds state for at once.
pub const MAX_COMPUTATIONS: usize = 1024;
/// Largest number of plans a [`crate::plan::PlanCache`] keeps (one per computation in flight).
pub const MAX_CACHED_PLANS: usize = MAX_COMPUTATIONS;
/// Largest number of messages buffered for computations whose request has not arrived yet.
pub const MAX_EARLY_MESSAGES: usize = 4096;
/// Largest number of request ids remembered for replay protection.
pub const MAX_SEEN_REQUESTS: usize = 1 << 16;
/// Largest number of heal attempts a member makes for one missing child.
pub const MAX_HEAL_ATTEMPTS: u32 = 6;
/// Largest number of pending heal queries one member keeps per role.
pub const MAX_PENDING_HEAL_QUERIES: usize = 1024;
/// Largest number of agreement rounds (leader elections) per group.
pub const MAX_AGREE_ROUNDS: u32 = 64;
/// Largest length of the declarative query text in a request, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Largest number of bound ranges in a contribution spec.
pub const MAX_BOUND_RANGES: usize = 4096;
/// How many cells may govern one element of a contribution vector, on average over a block
/// (a query's row cell and a histogram bucket's cell: two). Bounds the work of masking.
pub const MAX_CELLS_PER_ELEMENT: u64 = 2;
/// Largest decimal scale exponent of fixed-point values.
pub const MAX_SCALE_DIGITS: u8 = 12;
/// How far in the future a request's creation time may be, in microseconds (clock skew).
pub const MAX_CLOCK_SKEW_MICROS: u64 = 60 * 1_000_000;
/// Longest lifetime of a computation (deadline minus creation), in microseconds.
pub const MAX_COMPUTATION_LIFETIME_MICROS: u64 = 7 * 24 * 3600 * 1_000_000;

// The declarative query language (`query`).

/// Largest number of aggregates in a query's `SELECT` list (and of `CLIP` rules).
pub const MAX_QUERY_AGGREGATES: usize = 64;
/// Largest number of rows a `GROUP BY` declares (keys, or buckets).
pub const MAX_QUERY_ROWS: usize = 1024;
/// Largest number of edges of a `histogram` or `bucket` (one more than its buckets).
pub const MAX_QUERY_EDGES: usize = 257;
/// Largest dimension of a `sum_vector` aggregate.
pub const MAX_QUERY_VECTOR_DIMENSION: u32 = 1 << 20;
/// Deepest nesting of parentheses and `NOT`s in a `WHERE` clause.
pub const MAX_QUERY_NESTING: usize = 32;
/// Largest number of conditions (comparisons, `IN`, `BETWEEN`, `LIKE`) in a `WHERE` clause.
pub const MAX_QUERY_CONDITIONS: usize = 256;
/// Largest number of values in a `WHERE ... IN (...)` list.
pub const MAX_QUERY_LIST: usize = 1024;
/// Longest identifier (field, collection segment, keyword), in bytes.
pub const MAX_QUERY_IDENTIFIER_BYTES: usize = 128;
/// Longest text literal, in bytes.
pub const MAX_QUERY_TEXT_BYTES: usize = 1024;
/// Largest `LIMIT PER CONTRIBUTOR`: records one contributor may feed into one computation.
pub const MAX_RECORDS_PER_CONTRIBUTOR: u32 = 1_000_000;

/// Largest `HONEST SOURCES` a privacy clause may name (the most contributors a request can
/// declare, `max_contributors`, is capped at 10^6 by the node).
pub const MAX_HONEST_SOURCES: u32 = 10_000_000;

// Randomness beacon (`beacon`).

/// Largest BLS signature of a beacon round, in bytes (a compressed G2 point).
pub const MAX_BEACON_SIGNATURE_BYTES: usize = 96;
/// Longest wait between a request's creation and the beacon round it names, in microseconds.
pub const MAX_BEACON_LEAD_MICROS: u64 = 10 * 60 * 1_000_000;
/// Verified beacon rounds an engine keeps (the oldest goes first): at one round a second,
/// longer than any request waits for its round.
pub const MAX_BEACON_ROUNDS: usize = 1024;
/// Requests an engine holds, validated, until the beacon round they name arrives (counted
/// with the computations in flight against `MAX_COMPUTATIONS`).
pub const MAX_AWAITING_BEACON: usize = MAX_COMPUTATIONS;

// Membership (`membership`).

/// Largest number of admission issuers a node's policy names.
pub const MAX_ISSUERS: usize = 1024;
/// Largest quota of one issuer: the serial numbers it may use are `0..quota`.
pub const MAX_ISSUER_QUOTA: u32 = 1 << 20;
/// Largest number of admitted identities a node keeps (checkpoint plus recent entries); a
/// certificate beyond it is refused. A million nodes at 112 bytes each in the checkpoint
/// (`membership::CHECKPOINT_BYTES_PER_ENTRY`): ~112 MB.
pub const MAX_MEMBERSHIP_ENTRIES: usize = 2_000_000;
/// Recent certificates (learnt since the checkpoint) older than the anti-entropy window that
/// a node keeps as full certificates before it folds them into its checkpoint's flat arrays
/// (about 650 bytes each as recent entries, 108 in the checkpoint).
pub const MEMBERSHIP_COMPACT_AT: usize = 1024;
/// Largest number of certificates in one membership message, and so in one anti-entropy
/// answer (an answer is one push; what it leaves out comes in later rounds). The daemon's
/// `MAX_GOSSIP_ANNOUNCEMENTS` is the same number: one answer, one message.
pub const MAX_MEMBERSHIP_ENTRIES_PER_MESSAGE: usize = 256;
/// Number of buckets the anti-entropy summary splits the recent entries into.
pub const MEMBERSHIP_BUCKETS: usize = 64;
/// Largest number of peers in a node's routing set (the peers it gossips with).
pub const MAX_ROUTING_PEERS: usize = 32;
/// Largest number of membership messages waiting to be sent; beyond it gossip sends are
/// dropped (and counted): anti-entropy repairs what they would have carried.
pub const MAX_MEMBERSHIP_OUTPUTS: usize = 4096;
/// Largest number of (issuer, serial) pairs remembered as equivocated.
pub const MAX_EQUIVOCATIONS: usize = 1 << 16;
/// Largest number of identities a request's explicit candidate set may list.
pub const MAX_CANDIDATES: usize = 100_000;
/// Largest number of ineligible entries selection skips before it gives up on a position.
pub const MAX_SELECTION_SCAN: usize = 4096;
/// Heal gos one child member answers for one target position of its parent (an honest parent
/// member makes at most `MAX_HEAL_ATTEMPTS` attempts per heal, and may heal a missing version
/// once more after adoption); past it, a go is refused (`Rejection::HealGoOverBound`).
pub const MAX_HEAL_GO_ANSWERS: u32 = 2 * MAX_HEAL_ATTEMPTS;

// Framed reads and early messages (`frame`, the engine's early queue).

/// Smallest step by which a frame reader grows its buffer (and takes room from its budget):
/// a claimed length buys nothing until its bytes arrive.
pub const FRAME_CHUNK_BYTES: usize = 64 * 1024;
/// Largest total encoded size of the messages buffered for computations whose request has not
/// arrived yet (beside [`MAX_EARLY_MESSAGES`]): four messages of the largest size.
pub const MAX_EARLY_BYTES: usize = 4 * MAX_MESSAGE_BYTES;
/// Largest number of early messages one sender may have buffered.
pub const MAX_EARLY_MESSAGES_PER_SENDER: usize = 256;
/// Largest total encoded size of one sender's early messages: one message of the largest size.
pub const MAX_EARLY_BYTES_PER_SENDER: usize = MAX_MESSAGE_BYTES;

// Computation slots (`engine/slots.rs`).

/// Largest number of computations one commissioner holds on a node at once.
pub const MAX_COMPUTATIONS_PER_COMMISSIONER: usize = MAX_COMPUTATIONS / 8;
/// Largest number of computations all commissioners the owner does not trust hold on a node
/// together; the other half of [`MAX_COMPUTATIONS`] stays for trusted ones.
pub const MAX_UNTRUSTED_COMPUTATIONS: usize = MAX_COMPUTATIONS / 2;

/// `t`-subsets of the root shares the commissioner tries when it checks that they lie on one
/// polynomial (`C(g, t)` for the group sizes in use: `C(7, 5) = 21`; past this bound it names
/// the disagreeing positions instead of searching on).
pub const MAX_RELEASE_DECODE_SUBSETS: usize = 4096;

/// Parts (separate proofs) of one contribution's validity statement (`engine/validity.rs`):
/// one, since the whole validity circuit of a query is one proof
/// (`validity::circuit::CircuitType`).
pub const MAX_VALIDITY_PARTS: usize = 1;
/// Largest validity share (input and proof elements) of one contribution at one position
/// (`CircuitType::input_len() + proof_len()`; the circuit refuses a query above it): what one
/// sealed message carries, at most 10 bytes per element in postcard (a `u64` varint), in the
/// room of a message of the largest vector.
pub const MAX_VALIDITY_SHARE_LEN: usize = (MAX_VECTOR_LEN as usize) * 8 / 10;
/// Largest gadget chunk of a validity circuit (`CircuitType` chooses the chunk that minimises
/// its proof, at most this). The proof of `n` gadget items is about `2 chunk + 2 n / chunk`
/// elements (calls rounded up to a power of two), least near `chunk = sqrt(n)`; a circuit has
/// at most `2 MAX_VALIDITY_SHARE_LEN` items (the input's quadratic checks and a norm's
/// squares), and the cap is twice the square root of that (5,180), above the best chunk of the
/// largest circuit (3,279): it lengthens no proof, and bounds the verifier shares a member
/// accepts.
pub const MAX_VALIDITY_CHUNK: usize = 2 * (2 * MAX_VALIDITY_SHARE_LEN).isqrt();
/// Elements of one verifier share (`2 + 2 chunk`): 10,362 for the largest circuit, 184 for a
/// `sum_vector` of 10,000 coordinates, 6 for a scalar `sum`.
pub const MAX_VERIFIER_LEN: usize = 2 + 2 * MAX_VALIDITY_CHUNK;
/// Verifier elements in one `VerifierShareMsg` (all its entries): at most 10 bytes each (a
/// `u64` varint), 21 MB, plus at most `MAX_CONTRIBUTORS_PER_LEAF` entries of about 70 bytes
/// of identifiers and digest, within `MAX_MESSAGE_BYTES`. A leaf member flushes its batch
/// well before (`engine/validity.rs`, `BATCH_FLUSH_LEN`).
pub const MAX_VERIFIER_BATCH_LEN: usize = (MAX_VECTOR_LEN as usize) / 2;
/// `t`-subsets of verifier shares `validity::decide_naming` tries before it gives up (each a
/// Lagrange check of the other shares; `C(5, 3) = 10`, `C(7, 5) = 21`, far below this for the
/// groups we plan); past it a leaf member's decision is undecidable and the contribution
/// rejected (`engine/validity.rs`, `decide_part`).
pub const MAX_VALIDITY_DECODE_SUBSETS: usize = 4096;
