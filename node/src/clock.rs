//! The wall clock, read in one place: the engine takes time as an argument (sans-IO), and the
//! daemon, the CLI and the console read it here.

use grove_protocol::ids::Micros;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> Micros {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Micros(d.as_micros() as u64)
}
