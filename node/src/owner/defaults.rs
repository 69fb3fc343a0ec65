//! The owner's safe defaults: the limits a trust entry gets where the owner set none. A leaf:
//! the store (a stored entry's missing fields), the control protocol (a request's `k_min`), the
//! CLI and [`super::consent`] all read them here.

/// Default differencing window of a trust entry, in seconds (one day).
pub const DEFAULT_DIFFERENCING_WINDOW_SECS: u64 = 86_400;
/// Default number of computations per day a trusted commissioner may have this node in.
pub const DEFAULT_MAX_PER_DAY: u32 = 50;
/// Default floor of a trust's `k_min`: the fewest contributors a released cell may count.
pub const DEFAULT_MIN_K: u64 = 10;
/// Default smallest threshold `t` a trust accepts.
pub const DEFAULT_MIN_T: u8 = 3;
/// Default most `GROUP BY` keys (or buckets) a trusted query may declare.
pub const DEFAULT_MAX_GROUP_KEYS: u32 = 64;
