//! The engine: the state devenv keeps about every resource, the pure reducer that decides
//! what runs next, and the loop that feeds it events and hands its commands to workers.
//!
//! Owns resource state, the bring-up steps (doctor, cluster), hold reasons and the
//! per-resource logs. Must not run processes, read files or talk to the cluster: `workers`
//! does that and reports back with events. Imports nothing of the crate but `host`'s clock and
//! `order` (the one dependency order, pure).

pub mod command;
pub mod driver;
pub mod event;
pub mod graph;
pub mod hold;
pub mod image;
mod json;
pub mod live;
pub mod log;
pub mod resource;
pub mod state;
pub mod step;
