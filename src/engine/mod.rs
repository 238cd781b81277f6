//! The engine: the state devenv keeps about every resource, and (as it grows) the pure
//! reducer and scheduler that decide what runs next.
//!
//! Owns resource state and the per-resource logs. Must not run processes or talk to the
//! cluster: workers in `build`, `deploy` and `exec` do that and report back.

pub mod log;
#[allow(
    dead_code,
    reason = "tested on its own; the dev loop that drives it from `up` is not wired in yet"
)]
pub mod state;
