//! What the engine hears: the events the workers, the watcher, the reloader and the user
//! send, and what a reload of the config changes.

use std::collections::{BTreeMap, BTreeSet};

use super::command::BringUpStage;
use super::graph::Graph;
use super::image::SyncPlan;
use super::live::ContainerId;
use super::resource::Pods;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bring everything up: build every image.
    Start,
    /// A debounced batch of file changes touched these images' and local resources' inputs.
    /// An image in `sync` can take the change by live update (its files into the running
    /// containers); the engine does so when the image runs everywhere it should.
    Changed {
        images: BTreeSet<String>,
        locals: BTreeSet<String>,
        sync: BTreeMap<String, SyncPlan>,
        /// A few of the changed paths (relative to the project), for the history.
        files: Vec<String>,
        /// How many paths changed in all.
        paths: usize,
    },
    /// A live update ended: what it did, or why it failed (the image is built instead).
    /// `lasting`: the failure will not pass (the image has no `tar`): live update stays off
    /// for the image, builds included.
    SyncDone {
        image: String,
        generation: u64,
        result: Result<String, String>,
        lasting: bool,
        /// The containers it reached.
        reached: Vec<ContainerId>,
    },
    /// The ready containers of `resource` that run `image` (live-updated), as they change.
    Containers {
        resource: String,
        image: String,
        ready: Vec<ContainerId>,
    },
    /// A catch-up ended: the containers it reached, or why it could not (the image is then
    /// built with the live updates' files instead).
    CaughtUp {
        image: String,
        resource: String,
        version: u64,
        result: Result<Vec<ContainerId>, String>,
    },
    BuildDone {
        image: String,
        generation: u64,
        /// The reference built, or the error.
        result: Result<String, String>,
    },
    DeployDone {
        generation: u64,
        result: Result<(), String>,
    },
    /// A local resource's command ended (its serve command, if any, runs on).
    RunDone {
        resource: String,
        generation: u64,
        result: Result<(), String>,
    },
    Ready {
        resource: String,
    },
    /// A problem seen while a resource is waited for (a crash loop, a failing probe): it is
    /// shown as the resource's error while the wait goes on, updated as it changes, and
    /// cleared (`None`) when it ends.
    Problem {
        resource: String,
        message: Option<String>,
    },
    /// The doctor's checks ended: passed, or the failure (then nothing starts and `up` ends).
    DoctorDone {
        result: Result<(), String>,
    },
    /// A step of bringing the cluster up: shown while it runs.
    ClusterProgress {
        message: String,
    },
    /// The cluster is up, with the image store, namespaces and secrets: cluster resources
    /// and image builds may start.
    ClusterReady,
    /// The cluster side of bring-up failed at `stage`: nothing more starts and `up` ends.
    ClusterFailed {
        stage: BringUpStage,
        message: String,
    },
    /// The config changed and was read again (see [`Reload`]).
    Reload(Box<Reload>),
    /// The config, a values file, the chart or a manifest changed, and it is invalid: the
    /// last good one keeps running, and this is shown until a good edit.
    ReloadFailed {
        message: String,
    },

    Unhealthy {
        resource: String,
        message: String,
    },
    /// A local's serve command was started again after it exited (`restart = "always"`).
    Serving {
        resource: String,
    },
    Trigger {
        resource: String,
    },
    Shutdown,
    /// A part of the session that runs until `up` ends (the page, the file watcher) stopped.
    PartStopped {
        part: String,
        why: String,
    },
    /// Something the session did that is no resource's: a config reloaded, objects pruned.
    Note {
        kind: String,
        text: String,
    },
    /// A resource's pods, counted again.
    Pods {
        resource: String,
        pods: Pods,
        /// The pods' names (at most ten); none keeps those known.
        names: Option<Vec<String>>,
    },
    /// Following a resource's logs or forwarding its ports failed (it goes on).
    Warning {
        resource: String,
        message: String,
    },
    /// Where a followed resource is reached from the host (forwards, NodePorts, links).
    Urls {
        resource: String,
        urls: Vec<String>,
    },
}

impl Event {
    /// One line for the log (`up -v`): what happened and to what, never a message from
    /// outside (those are said where they happen, escaped).
    pub fn summary(&self) -> String {
        let ended = |ok: bool| if ok { "ok" } else { "failed" };
        match self {
            Event::Start => "start".into(),
            Event::Changed {
                images,
                locals,
                paths,
                ..
            } => {
                let what: Vec<&str> = images.iter().chain(locals).map(String::as_str).collect();
                format!("changed {paths} path(s): {}", what.join(", "))
            }
            Event::SyncDone { image, result, .. } => {
                format!("sync {image} {}", ended(result.is_ok()))
            }
            Event::Containers {
                resource,
                image,
                ready,
            } => format!("{resource}: {} ready container(s) of {image}", ready.len()),
            Event::CaughtUp {
                image,
                resource,
                result,
                ..
            } => format!("catch-up of {resource} ({image}) {}", ended(result.is_ok())),
            Event::BuildDone { image, result, .. } => {
                format!("build {image} {}", ended(result.is_ok()))
            }
            Event::DeployDone { generation, result } => {
                format!("deploy {generation} {}", ended(result.is_ok()))
            }
            Event::RunDone {
                resource, result, ..
            } => format!("run {resource} {}", ended(result.is_ok())),
            Event::Ready { resource } => format!("{resource} ready"),
            Event::Problem { resource, message } => match message {
                Some(_) => format!("{resource}: a problem"),
                None => format!("{resource}: the problem ended"),
            },
            Event::DoctorDone { result } => format!("doctor {}", ended(result.is_ok())),
            Event::ClusterProgress { .. } => "cluster: a step".into(),
            Event::ClusterReady => "cluster ready".into(),
            Event::ClusterFailed { .. } => "cluster failed".into(),
            Event::Reload(r) => format!("reload (config version {})", r.version),
            Event::ReloadFailed { .. } => "reload failed".into(),
            Event::Unhealthy { resource, .. } => format!("{resource} unhealthy"),
            Event::Serving { resource } => format!("{resource} serving again"),
            Event::Trigger { resource } => format!("trigger {resource}"),
            Event::Shutdown => "shutdown".into(),
            Event::PartStopped { part, .. } => format!("{part} stopped"),
            Event::Note { kind, .. } => format!("note ({kind})"),
            Event::Pods { resource, pods, .. } => {
                format!("{resource}: {}/{} pods", pods.ready, pods.total)
            }
            Event::Warning { resource, .. } => format!("{resource}: a warning"),
            Event::Urls { resource, urls } => format!("{resource}: {} address(es)", urls.len()),
        }
    }
}

/// What a reload of the config changes, worked out outside the engine (the config files are
/// read and checked there): the new graph, and what must run again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    /// The config version this graph comes from: [`Command::Configure`] hands it to the
    /// workers, before any command decided under it.
    pub version: u64,
    pub graph: Graph,
    /// Images whose build changed (context, Dockerfile, arguments, builder): built again.
    pub images: BTreeSet<String>,
    /// Local resources whose command changed: run again.
    pub locals: BTreeSet<String>,
    /// Cluster resources whose deploy changed (values, chart, manifests): deployed again.
    pub resources: BTreeSet<String>,
    /// Resources whose workload changed: forgotten (forwards, log streams, wait, commands)
    /// and brought up again as new.
    pub replaced: BTreeSet<String>,
    /// Resources whose forwards or links changed: followed again, not redeployed.
    pub refollow: BTreeSet<String>,
    /// Manifest files to apply whole with the next deploy (their objects changed).
    pub files: BTreeSet<String>,
}
