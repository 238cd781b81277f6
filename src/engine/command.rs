//! What the engine decides: the commands the workers carry out, and the bring-up's stages.

use std::collections::BTreeMap;

use serde::Serialize;

use super::image::SyncPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the doctor's checks (`Event::DoctorDone`).
    Doctor,
    /// Bring the cluster up: the profile, namespaces, secrets, forward ports
    /// (`Event::ClusterReady` or `Event::ClusterFailed`).
    PrepareCluster,
    Build {
        image: String,
        generation: u64,
    },
    /// Put these files into the running containers of `image` (live update).
    Sync {
        image: String,
        generation: u64,
        plan: SyncPlan,
    },
    /// Give containers that are behind (started after live updates) everything live updates
    /// put into `image` since it was built (`Event::CaughtUp`).
    CatchUp {
        image: String,
        owed: super::live::CatchUp,
    },
    /// Kill the build's process group and reap it; its result will be ignored.
    Cancel {
        image: String,
        generation: u64,
    },
    /// One deploy (one helm upgrade, one apply) of these resources with these references,
    /// and every object of these manifest files; with `shared`, first the manifests' objects
    /// that are no resource's workload (until a deploy has put them in).
    Deploy {
        generation: u64,
        resources: Vec<String>,
        references: BTreeMap<String, String>,
        files: Vec<String>,
        shared: bool,
    },
    /// Watch these resources until ready.
    Wait {
        resources: Vec<String>,
    },
    /// Run a local resource's command (and then restart its serve command).
    Run {
        resource: String,
        generation: u64,
    },
    /// Kill a local resource's run in flight; its result will be ignored.
    CancelRun {
        resource: String,
        generation: u64,
    },
    /// A resource left the config: stop its forwards, log streams, readiness wait and
    /// commands.
    Forget {
        resource: String,
    },
    /// A deployed resource's forwards or links changed: follow it again.
    Refollow {
        resource: String,
    },
    /// Everything is cancelled; the workers can stop.
    Stop,
    /// From now on, use config `version`: the first command of a reload, so that every
    /// command before it runs under the config it was decided under, and every one after
    /// under the new one.
    Configure {
        version: u64,
    },
}

impl Command {
    /// The command in a few words (`build api`, `deploy api, web`), as `up -v` logs it and
    /// the dry-run lists it: the two are compared in the tests.
    pub fn summary(&self) -> String {
        match self {
            Command::Doctor => "doctor".to_owned(),
            Command::PrepareCluster => "prepare cluster".to_owned(),
            Command::Build { image, .. } => format!("build {image}"),
            Command::Sync { image, .. } => format!("sync {image}"),
            Command::CatchUp { image, owed } => {
                format!(
                    "catch up {} with the live updates of {image}",
                    owed.resource
                )
            }
            Command::Cancel { image, .. } => format!("cancel build {image}"),
            Command::Deploy {
                resources, files, ..
            } => {
                let mut s = format!("deploy {}", resources.join(", "));
                if !files.is_empty() {
                    s.push_str(&format!(" + files {}", files.join(", ")));
                }
                s
            }
            Command::Wait { resources } => format!("wait {}", resources.join(", ")),
            Command::Run { resource, .. } => format!("run {resource}"),
            Command::CancelRun { resource, .. } => format!("cancel run {resource}"),
            Command::Forget { resource } => format!("forget {resource}"),
            Command::Refollow { resource } => format!("refollow {resource}"),
            Command::Stop => "stop".to_owned(),
            Command::Configure { version } => format!("configure {version}"),
        }
    }
}

/// The parts of the cluster's bring-up, in order: what a resource held by its failure says
/// it waits for (it was told "the cluster could not be brought up" when the chart's checks or
/// a Secret failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BringUpStage {
    /// The chart rendered and checked, the manifests read: before anything is touched.
    Checks,
    /// The Minikube profile started, or the existing cluster reached, with its namespaces.
    Cluster,
    /// The Secrets made from .env files and applied.
    Secrets,
    /// The forwards' local ports taken.
    Ports,
    /// What left the manifests since the last run pruned.
    Prune,
}

impl BringUpStage {
    /// Why a resource cannot start once this stage failed.
    pub fn failure(self) -> &'static str {
        match self {
            BringUpStage::Checks => {
                "the checks of the chart, the manifests and the .env files did not pass"
            }
            BringUpStage::Cluster => "the cluster could not be brought up",
            BringUpStage::Secrets => "a Secret could not be made or applied",
            BringUpStage::Ports => "a forward's local port could not be taken",
            BringUpStage::Prune => "what left the manifests could not be pruned",
        }
    }
}
