//! The engine: the state devenv keeps about every resource, the pure reducer that decides
//! what runs next, and the loop that feeds it events and hands its commands to workers.
//!
//! Owns resource state and the per-resource logs. Must not run processes or talk to the
//! cluster: workers in `build`, `deploy` and `exec` do that and report back.

pub mod driver;
pub mod log;
pub mod state;
