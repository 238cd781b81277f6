//! Deploying to the cluster: Helm releases and plain manifests with devenv's images injected,
//! Secrets from .env files, readiness, port-forwards and logs.
//!
//! Owns the command lines and object edits that put workloads in the cluster. Must not build
//! images or decide *when* to deploy: the engine does that.

pub mod apply;
pub mod dotenv;
pub mod exec;
pub mod forward;
pub mod helm;
pub mod logs;
pub mod manifests;
pub mod pods;
pub mod rollout;
pub mod secrets;
pub mod sync;
