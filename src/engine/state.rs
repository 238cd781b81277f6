//! The engine's state machine: events in, commands out, and no I/O, so every rule of the dev
//! loop is tested with synthetic events. Workers carry out the commands (builds, deploys,
//! readiness waits) and report back with events.
//!
//! The rules: a change builds each affected image once (a newer change cancels the build in
//! flight and starts one build with all changes); a deploy unit (a resource applied with its
//! manifests, or a whole Helm release) deploys once, when the last build of its images ends,
//! and does not wait for other units' builds; a changed manifest file goes out when no build
//! is in flight; a failed build keeps the last good image and deployment;
//! on the first start a resource deploys only when what it depends on is ready; manual
//! resources build only when triggered; after shutdown nothing new starts.
//!
//! The state and the reducer's event arms are here; its other parts are beside it: `holds`
//! (why a resource waits, and whether everything settled), `schedule` (builds, runs and
//! deploys), `live` (live updates and catch-ups), `reload` (a new graph).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

pub use super::command::{BringUpStage, Command};
pub use super::event::{Event, Reload};
pub use super::graph::{Graph, Node};
use super::hold::Hold;
use super::image::SyncEnd;
pub use super::image::{AfterSync, BuildOp, ImageState, Phase, SyncOp, SyncPlan};
pub use super::live::ContainerId;
use super::resource::CAUSE_FILES;
pub use super::resource::{
    Cause, DisplayStatus, HistoryEntry, NOTES, Note, Pods, ResourceState, Status,
};
pub use super::step::{STEP_NOTES, Step, StepStatus};

mod holds;
mod live;
mod reload;
mod schedule;
#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub resources: BTreeMap<String, ResourceState>,
    pub images: BTreeMap<String, ImageState>,
    #[serde(skip)]
    graph: Graph,
    /// What the reducer looks up about the graph.
    #[serde(skip)]
    ix: Index,
    /// The resources (by position) the event being applied changed: their holds, and the
    /// holds of what reads them, are computed again after it.
    #[serde(skip)]
    touched: BTreeSet<usize>,
    /// The event changed what every hold reads (the graph, the doctor or the cluster, an
    /// image's build): every hold is computed again.
    #[serde(skip)]
    touched_all: bool,
    next_generation: u64,
    /// The deploy in flight: its generation and resources.
    deploying: Option<(u64, Vec<String>)>,
    /// Whether a deploy put in the manifests' objects that are no resource's workload
    /// (Services, ConfigMaps): each deploy carries them until one succeeds.
    pub shared_applied: bool,
    stopped: bool,
    /// Whether the cluster is up (always, for a project without one).
    pub cluster_ready: bool,
    pub doctor: Step,
    pub cluster: Step,
    /// Why the last edit of the config (or a values file, the chart, a manifest) was not
    /// taken: the last good one runs on. Cleared by a good edit.
    pub config_error: Option<String>,
    /// Manifest files to apply whole with the next deploy.
    pending_files: BTreeSet<String>,
    /// Manifest files a failed deploy did not apply: they go with the next deploy (a failure
    /// is not retried by itself), so that none is lost.
    unapplied_files: BTreeSet<String>,
    /// The files of the deploy in flight.
    deploying_files: Vec<String>,
    /// The last [`NOTES`] things the session did that are no resource's, oldest first.
    pub notes: VecDeque<Note>,
    /// Parts of the session that stopped before `up` did, and why: `up` runs on without
    /// them, and the page and the terminal say so.
    pub stopped_parts: BTreeMap<String, String>,
    /// Deploys that succeeded: none at the end of `up --ci` means nothing reached the cluster.
    pub deploys_done: usize,
    /// The part of the bring-up that failed, if one did.
    pub bring_up_failed: Option<BringUpStage>,
    /// The deploy in flight: when it started, and why each resource is in it.
    #[serde(skip)]
    deploy_started: Option<(Duration, BTreeMap<String, Cause>)>,
    /// The time of the event being applied.
    #[serde(skip)]
    now: Duration,
}

/// What the reducer looks up about its graph, computed when the graph is made or reloaded so
/// that no event walks every resource (10,000 chained locals took over a minute through the
/// reducer when each event recomputed every hold).
#[derive(Debug, Clone, Default)]
struct Index {
    /// Positions in the graph's resources, each after what it depends on.
    order: Vec<usize>,
    /// Each position's place in `order`.
    rank: Vec<usize>,
    /// Each resource's position.
    positions: HashMap<String, usize>,
    /// For each position, the positions whose hold reads its state: what depends on it, and
    /// what shares an image with those (a build waits for every user's `[[local]]`).
    dependents: Vec<Vec<usize>>,
    /// The positions of the resources that run each image.
    users: HashMap<String, Vec<usize>>,
    /// The positions of the cluster resources of each Helm release.
    releases: HashMap<String, Vec<usize>>,
    /// The positions of the cluster (not `[[local]]`) resources.
    cluster: Vec<usize>,
}

impl Index {
    fn of(graph: &Graph) -> Index {
        let nodes: Vec<(&str, &[String])> = graph
            .resources
            .iter()
            .map(|n| (n.name.as_str(), n.depends_on.as_slice()))
            .collect();
        let positions: HashMap<String, usize> = graph
            .resources
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let order: Vec<usize> = crate::order::dependency_order(&nodes)
            .iter()
            .filter_map(|n| positions.get(n).copied())
            .collect();
        let mut rank = vec![0; graph.resources.len()];
        for (r, &p) in order.iter().enumerate() {
            rank[p] = r;
        }
        let mut users: HashMap<String, Vec<usize>> = HashMap::new();
        let mut releases: HashMap<String, Vec<usize>> = HashMap::new();
        for (p, n) in graph.resources.iter().enumerate() {
            for i in &n.images {
                let u = users.entry(i.clone()).or_default();
                if u.last() != Some(&p) {
                    u.push(p);
                }
            }
            if let Some(r) = &n.release
                && !n.local
            {
                releases.entry(r.clone()).or_default().push(p);
            }
        }
        let mut dependents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); graph.resources.len()];
        for (p, n) in graph.resources.iter().enumerate() {
            for d in &n.depends_on {
                let Some(&dp) = positions.get(d) else {
                    continue;
                };
                dependents[dp].insert(p);
                for i in &n.images {
                    dependents[dp].extend(users.get(i).into_iter().flatten().copied());
                }
                dependents[dp].remove(&dp);
            }
        }
        Index {
            order,
            rank,
            positions,
            dependents: dependents
                .into_iter()
                .map(|d| d.into_iter().collect())
                .collect(),
            users,
            releases,
            cluster: graph
                .resources
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.local)
                .map(|(p, _)| p)
                .collect(),
        }
    }
}

/// The cluster resources a deploy looks at, sorted ([`State::deploy_candidates`]).
#[derive(Default)]
struct DeployCandidates {
    /// Due now, with the references they get.
    due: Vec<(String, BTreeMap<String, String>)>,
    /// Deployable but held by a dependency: deployed anyway with a release-mate that is due
    /// (one helm upgrade creates them all).
    held: Vec<(String, Option<String>, BTreeMap<String, String>)>,
    /// Built but held back by a dependency: pending, not building.
    held_back: Vec<String>,
    /// Built, but to the tag that runs already (a change undone, say after a failed build):
    /// nothing to deploy, and the resource is what the cluster runs, so it is waited for.
    unchanged: Vec<String>,
}

/// The bring-up as holds read it: the doctor, the cluster, whether it is up, what failed,
/// and whether the engine stopped.
type SharedSteps = (StepStatus, StepStatus, bool, Option<BringUpStage>, bool);

impl State {
    pub fn new(graph: Graph) -> State {
        State {
            resources: graph
                .resources
                .iter()
                .map(|r| (r.name.clone(), ResourceState::new()))
                .collect(),
            images: graph
                .images
                .iter()
                .map(|i| (i.clone(), ImageState::default()))
                .collect(),
            next_generation: 1,
            deploying: None,
            shared_applied: false,
            stopped: false,
            cluster_ready: !graph.cluster,
            doctor: Step::new(graph.doctor),
            cluster: Step::new(graph.cluster),
            config_error: None,
            pending_files: BTreeSet::new(),
            unapplied_files: BTreeSet::new(),
            deploying_files: Vec::new(),
            deploys_done: 0,
            notes: VecDeque::new(),
            stopped_parts: BTreeMap::new(),
            bring_up_failed: None,
            deploy_started: None,
            now: Duration::ZERO,
            ix: Index::of(&graph),
            touched: BTreeSet::new(),
            touched_all: true,
            graph,
        }
    }

    /// The graph the engine runs now.
    /// The bring-up steps that gate the resources, in order, by name: what the page and the
    /// terminal list (none is named anywhere else).
    pub fn steps(&self) -> [(&'static str, &Step); 2] {
        [("doctor", &self.doctor), ("cluster", &self.cluster)]
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Applies one event at time `now` (since the engine started) and returns what to do;
    /// then says, for each resource that waits, why.
    pub fn reduce(&mut self, now: Duration, ev: Event) -> Vec<Command> {
        self.now = now;
        let before = self.shared_facts();
        let out = self.apply(now, ev);
        let all = std::mem::take(&mut self.touched_all) || self.shared_facts() != before;
        self.refresh_holds(all);
        out
    }

    /// What a hold may read beside the states of resources: the bring-up, and whether each
    /// image builds or waits to. When one of these changes, every hold is computed again.
    fn shared_facts(&self) -> (SharedSteps, Vec<(bool, bool)>) {
        (
            (
                self.doctor.status,
                self.cluster.status,
                self.cluster_ready,
                self.bring_up_failed,
                self.stopped,
            ),
            self.images
                .values()
                .map(|i| (i.phase.build().is_some(), i.phase.build_wanted()))
                .collect(),
        )
    }

    /// A resource's state, to change: its hold (and what reads it) is computed again after
    /// the event.
    fn res_mut(&mut self, name: &str) -> Option<&mut ResourceState> {
        if let Some(&p) = self.ix.positions.get(name) {
            self.touched.insert(p);
        }
        self.resources.get_mut(name)
    }

    fn apply(&mut self, now: Duration, ev: Event) -> Vec<Command> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        match ev {
            Event::Start => self.on_start(now, &mut out),
            Event::DoctorDone { result } => self.on_doctor_done(now, result, &mut out),
            Event::ClusterProgress { message } => self.on_cluster_progress(now, message),
            Event::ClusterReady => {
                self.cluster.end(now, Ok(()));
                self.cluster_ready = true;
                self.start_queued(now, &mut out);
                self.schedule_deploy(&mut out);
            }
            Event::ClusterFailed { stage, message } => {
                self.cluster.end(now, Err(message));
                self.bring_up_failed = Some(stage);
                self.stop(&mut out);
            }
            Event::Reload(reload) => {
                self.config_error = None;
                self.reload(now, *reload, &mut out);
            }
            Event::ReloadFailed { message } => {
                self.config_error = Some(message);
            }
            Event::Changed {
                images,
                locals,
                sync,
                files,
                paths,
            } => self.on_changed(images, locals, sync, files, paths, &mut out),
            Event::SyncDone {
                image,
                generation,
                result,
                lasting,
                reached,
            } => {
                let end = SyncEnd {
                    result,
                    lasting,
                    reached,
                };
                self.on_sync_done(now, image, generation, end, &mut out);
            }
            Event::Containers {
                resource,
                image,
                ready,
            } => self.on_containers(&resource, &image, ready, &mut out),
            Event::CaughtUp {
                image,
                resource,
                version,
                result,
            } => self.on_caught_up(now, &image, &resource, version, result, &mut out),
            Event::BuildDone {
                image,
                generation,
                result,
            } => self.on_build_done(now, image, generation, result, &mut out),
            Event::DeployDone { generation, result } => {
                self.on_deploy_done(now, generation, result, &mut out)
            }
            Event::RunDone {
                resource,
                generation,
                result,
            } => self.on_run_done(now, resource, generation, result, &mut out),
            Event::Ready { resource } => self.on_ready(now, &resource, &mut out),
            Event::Problem { resource, message } => {
                if let Some(r) = self.res_mut(&resource)
                    && r.status == Status::Waiting
                {
                    r.last_error = message;
                }
            }
            Event::Unhealthy { resource, message } => self.on_health(&resource, Some(message)),
            Event::Serving { resource } => self.on_health(&resource, None),
            Event::Trigger { resource } => self.on_trigger(now, resource, &mut out),
            Event::Shutdown => self.stop(&mut out),
            ev @ (Event::Note { .. }
            | Event::PartStopped { .. }
            | Event::Pods { .. }
            | Event::Warning { .. }
            | Event::Urls { .. }) => self.on_news(now, ev),
        }
        out
    }

    /// Bring everything up: every image is wanted, the doctor runs first.
    fn on_start(&mut self, now: Duration, out: &mut Vec<Command>) {
        let all: Vec<String> = self
            .images
            .iter()
            .filter(|(_, i)| i.reference.is_none() && i.phase.build().is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for image in all {
            self.want_build(now, &image, Cause::Start, out);
        }
        // No workload of the manifests is a resource (they hold ConfigMaps, Services
        // and the like): the first deploy applies them whole all the same.
        if !self.graph.resources.iter().any(|n| !n.local) {
            self.pending_files
                .extend(self.graph.manifests.iter().cloned());
        }
        if self.doctor.status == StepStatus::Pending {
            self.doctor.start(now);
            out.push(Command::Doctor);
        } else {
            self.after_doctor(now, out);
        }
    }

    /// A batch of file changes: local resources run again, images are synced or built.
    fn on_changed(
        &mut self,
        images: BTreeSet<String>,
        locals: BTreeSet<String>,
        mut sync: BTreeMap<String, SyncPlan>,
        files: Vec<String>,
        paths: usize,
        out: &mut Vec<Command>,
    ) {
        let now = self.now;
        let cause = Cause::Files(files.into_iter().take(CAUSE_FILES).collect(), paths);
        for name in locals {
            let Some(node) = self.node(&name).filter(|n| n.local) else {
                continue;
            };
            if node.manual {
                if let Some(r) = self.res_mut(&name) {
                    r.changed_since_build = true;
                }
                continue;
            }
            self.start_run(&name, cause.clone(), out);
        }
        for image in images {
            let users = self.users(&image);
            if !users.is_empty() && users.iter().all(|r| r.manual) {
                self.for_users(&image, |r| r.changed_since_build = true);
                continue;
            }
            if let Some(plan) = sync.remove(&image)
                && self.can_sync(&image)
            {
                self.want_sync(&image, plan, cause.clone(), out);
                continue;
            }
            self.want_build(now, &image, cause.clone(), out);
        }
    }

    /// A build ended: its image is deployed where it runs, or its error shown.
    fn on_build_done(
        &mut self,
        now: Duration,
        image: String,
        generation: u64,
        result: Result<String, String>,
        out: &mut Vec<Command>,
    ) {
        let Some(img) = self.images.get_mut(&image) else {
            return;
        };
        let Some(BuildOp { cause, started, .. }) = img.end_build(Some(generation)) else {
            // A cancelled build: a newer one is running or ran.
            return;
        };
        img.last_build_took = Some(now.saturating_sub(started));
        let entry = HistoryEntry::ended("build", Some(&image), &cause, started, now, &result);
        if result.is_ok() {
            img.built_cause = Some(cause);
        }
        self.for_users(&image, |r| r.record(entry.clone()));
        let Some(img) = self.images.get_mut(&image) else {
            return;
        };
        match result {
            Ok(reference) => {
                img.reference = Some(reference);
                img.last_error = None;
                // The new image holds what live updates put into the old one.
                img.live_off = None;
                img.last_sync = None;
                img.ledger.rebuilt();
            }
            Err(e) => {
                img.last_error = Some(e.clone());
                self.for_users(&image, |r| {
                    r.status = Status::Error;
                    r.last_error = Some(format!("build of {image} failed: {e}"));
                });
            }
        }
        self.schedule_deploy(out);
    }

    /// A deploy ended: what it deployed is waited for.
    fn on_deploy_done(
        &mut self,
        now: Duration,
        generation: u64,
        result: Result<(), String>,
        out: &mut Vec<Command>,
    ) {
        let Some((g, names)) = self.deploying.take() else {
            return;
        };
        if g != generation {
            self.deploying = Some((g, names));
            return;
        }
        self.shared_applied |= result.is_ok();
        let files = std::mem::take(&mut self.deploying_files);
        if result.is_err() {
            self.unapplied_files.extend(files);
        }
        let (started, mut causes) = self.deploy_started.take().unwrap_or_default();
        for n in &names {
            let Some(r) = self.res_mut(n) else {
                continue;
            };
            let cause = causes.remove(n).unwrap_or(Cause::Start);
            r.record(HistoryEntry::ended(
                "deploy", None, &cause, started, now, &result,
            ));
            match &result {
                Ok(()) => {
                    r.status = Status::Waiting;
                    r.last_error = None;
                    r.last_deploy_at = Some(now);
                    r.updated_at = Some(now);
                }
                Err(e) => {
                    r.status = Status::Error;
                    r.last_error = Some(e.clone());
                }
            }
        }
        if result.is_ok() {
            self.deploys_done += 1;
        }
        if result.is_ok() && !names.is_empty() {
            self.wait_for(names, out);
        }
        self.schedule_deploy(out);
    }

    /// Waits for `names` to be ready, from now.
    fn wait_for(&mut self, names: Vec<String>, out: &mut Vec<Command>) {
        let now = self.now;
        for n in &names {
            if let Some(r) = self.resources.get_mut(n) {
                r.wait_started = Some(now);
            }
        }
        out.push(Command::Wait { resources: names });
    }

    /// A local run ended: what waited for it may start.
    fn on_run_done(
        &mut self,
        now: Duration,
        resource: String,
        generation: u64,
        result: Result<(), String>,
        out: &mut Vec<Command>,
    ) {
        let Some(r) = self.res_mut(&resource) else {
            return;
        };
        if r.running != Some(generation) {
            return; // cancelled by a newer run
        }
        r.running = None;
        let (started, cause) = r.run_started.take().unwrap_or((now, Cause::Start));
        r.record(HistoryEntry::ended(
            "run", None, &cause, started, now, &result,
        ));
        match result {
            Ok(()) => {
                r.status = Status::Ready;
                r.last_error = None;
                r.ever_ready = true;
                r.updated_at = Some(now);
            }
            Err(e) => {
                r.status = Status::Error;
                r.last_error = Some(e);
            }
        }
        self.schedule_runs(Some(&resource), out);
        self.start_queued(now, out);
        self.schedule_deploy(out);
    }

    /// The user asked for a resource to run again.
    fn on_trigger(&mut self, now: Duration, resource: String, out: &mut Vec<Command>) {
        let Some(node) = self.node(&resource).cloned() else {
            return;
        };
        if let Some(r) = self.res_mut(&resource) {
            r.changed_since_build = false;
        }
        if node.local {
            self.start_run(&resource, Cause::Manual, out);
            return;
        }
        if node.images.is_empty() {
            // Nothing to build: deploy it again as it is.
            if let Some(r) = self.res_mut(&resource) {
                r.deployed.clear();
                r.status = Status::Pending;
                r.deploy_cause = Some(Cause::Manual);
            }
            self.schedule_deploy(out);
        }
        for image in &node.images {
            self.want_build(now, image, Cause::Manual, out);
        }
    }

    /// What the workers learned that changes no decision: a session note, a resource's pods,
    /// a warning following it, where it is reached.
    fn on_news(&mut self, now: Duration, ev: Event) {
        match ev {
            Event::PartStopped { part, why } => {
                self.stopped_parts.insert(part, why);
            }
            Event::Note { kind, text } => {
                if self.notes.len() == NOTES {
                    self.notes.pop_front();
                }
                self.notes.push_back(Note {
                    at: now,
                    kind,
                    text,
                });
            }
            Event::Pods {
                resource,
                pods,
                names,
            } => {
                if let Some(r) = self.resources.get_mut(&resource) {
                    r.pods = Some(pods);
                    if let Some(names) = names {
                        r.pod_names = names;
                    }
                }
            }
            Event::Warning { resource, message } => {
                if let Some(r) = self.resources.get_mut(&resource) {
                    r.warning = Some(message);
                }
            }
            Event::Urls { resource, urls } => {
                if let Some(r) = self.res_mut(&resource) {
                    r.urls = urls;
                }
            }
            _ => {}
        }
    }

    /// The doctor's checks ended: a failure stops everything.
    fn on_doctor_done(
        &mut self,
        now: Duration,
        result: Result<(), String>,
        out: &mut Vec<Command>,
    ) {
        if self.doctor.status != StepStatus::Running {
            return;
        }
        let failed = result.is_err();
        self.doctor.end(now, result);
        if failed {
            self.stop(out);
        } else {
            self.after_doctor(now, out);
        }
    }

    /// A line of the cluster's bring-up, kept among its last notes.
    fn on_cluster_progress(&mut self, now: Duration, message: String) {
        if self.cluster.status == StepStatus::Running {
            if self.cluster.notes.len() == STEP_NOTES {
                self.cluster.notes.pop_front();
            }
            let at = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
            self.cluster.notes.push_back((at, message.clone()));
            self.cluster.message = Some(message);
        }
    }

    /// A new pod missed live updates: the image is built with them.
    /// `resource` became unhealthy (`Some(why)`: its serve command exited, its pods failed
    /// after it was ready), or its serve command runs again (`None`).
    fn on_health(&mut self, resource: &str, problem: Option<String>) {
        let Some(r) = self.res_mut(resource) else {
            return;
        };
        match problem {
            Some(message) => {
                r.status = Status::Error;
                r.last_error = Some(message);
            }
            None if r.status == Status::Error => {
                r.status = Status::Ready;
                r.last_error = None;
            }
            None => {}
        }
    }

    /// `resource` is ready: what waits for it may go.
    fn on_ready(&mut self, now: Duration, resource: &str, out: &mut Vec<Command>) {
        if let Some(r) = self.res_mut(resource) {
            r.status = Status::Ready;
            r.last_error = None;
            r.ever_ready = true;
            if let Some(started) = r.wait_started.take() {
                r.ready_took = Some(now.saturating_sub(started));
            }
        }
        self.schedule_runs(Some(resource), out);
        self.schedule_deploy(out);
    }

    /// Cancels everything in flight and stops: nothing starts after this.
    fn stop(&mut self, out: &mut Vec<Command>) {
        for (name, img) in &mut self.images {
            if let Some(BuildOp { generation, .. }) = img.end_build(None) {
                out.push(Command::Cancel {
                    image: name.clone(),
                    generation,
                });
            }
        }
        self.touched_all = true;
        for (name, r) in &mut self.resources {
            if let Some(generation) = r.running.take() {
                out.push(Command::CancelRun {
                    resource: name.clone(),
                    generation,
                });
            }
        }
        self.stopped = true;
        out.push(Command::Stop);
    }

    /// The doctor passed (or there is none): the cluster comes up, local commands start, and
    /// what needs neither the cluster nor a local step builds.
    fn after_doctor(&mut self, now: Duration, out: &mut Vec<Command>) {
        if self.cluster.status == StepStatus::Pending {
            self.cluster.start(now);
            out.push(Command::PrepareCluster);
        }
        self.start_queued(now, out);
        self.schedule_runs(None, out);
        self.schedule_deploy(out);
    }

    /// Deploys `resources` again (those deployed before; the rest come up as usual), with
    /// `files` applied whole.
    fn redeploy(
        &mut self,
        resources: &BTreeSet<String>,
        files: BTreeSet<String>,
        out: &mut Vec<Command>,
    ) {
        self.pending_files.extend(files);
        for name in resources {
            if let Some(r) = self.res_mut(name)
                && r.deploys > 0
            {
                // What runs no longer matches what is wanted: the next deploy takes it.
                r.deployed.clear();
                r.deploy_cause = Some(Cause::Reload);
            }
        }
        self.schedule_deploy(out);
    }

    /// Runs `f` on the state of every resource that runs `image`.
    fn for_users(&mut self, image: &str, mut f: impl FnMut(&mut ResourceState)) {
        let users: Vec<String> = self.users(image).iter().map(|r| r.name.clone()).collect();
        for n in &users {
            if let Some(r) = self.res_mut(n) {
                f(r);
            }
        }
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.ix
            .positions
            .get(name)
            .and_then(|&i| self.graph.resources.get(i))
    }

    fn users(&self, image: &str) -> Vec<&Node> {
        self.ix
            .users
            .get(image)
            .into_iter()
            .flatten()
            .filter_map(|&p| self.graph.resources.get(p))
            .collect()
    }
}
