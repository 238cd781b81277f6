//! Why a resource waits (its typed hold), computed for the resources an event touched, and
//! whether everything settled (`--ci` ends there).

use super::*;

impl State {
    /// What holds a build of `image`: the cluster (whose image store builds go to), or a
    /// `[[local]]` that a resource running the image depends on (its output may be in the
    /// build context), until it ran once, and while it runs.
    pub(super) fn build_hold(&self, image: &str) -> Option<Hold> {
        if let Some(h) = self.doctor_hold() {
            return Some(h);
        }
        if !self.cluster_ready && self.graph.builds_need_cluster {
            return Some(Hold::Cluster);
        }
        for user in self.users(image) {
            for d in &user.depends_on {
                if !self.node(d).is_some_and(|n| n.local) {
                    continue;
                }
                let Some(dep) = self.resources.get(d) else {
                    continue;
                };
                if dep.running.is_some() {
                    return Some(Hold::Running(d.clone()));
                }
                if !dep.ever_ready {
                    return Some(self.failure(d).unwrap_or_else(|| Hold::NotReady(d.clone())));
                }
            }
        }
        None
    }

    /// What holds everything while the doctor's checks run (or after they failed).
    pub(super) fn doctor_hold(&self) -> Option<Hold> {
        match self.doctor.status {
            StepStatus::Done | StepStatus::Skipped => None,
            StepStatus::Failed => Some(Hold::DoctorFailed),
            StepStatus::Pending | StepStatus::Running => Some(Hold::Doctor),
        }
    }

    /// Why `name` cannot come up until something is fixed: it failed, or what it waits for
    /// did. `None` while it may still come up.
    pub(super) fn failure(&self, name: &str) -> Option<Hold> {
        let r = self.resources.get(name)?;
        if r.status == Status::Error && !r.ever_ready {
            return Some(Hold::Failed(name.to_owned()));
        }
        if r.blocked && r.status == Status::Pending {
            return r.held.clone();
        }
        None
    }

    /// Computes holds again after an event: every one when `all`, else those of the
    /// resources the event touched; and, while a hold changes, those of what reads it. In
    /// dependency order, so a failure passes down a chain in one pass; a hold that reads a
    /// resource outside its dependencies (a build waits for every user's `[[local]]`) is
    /// computed again when that one's hold changes.
    pub(super) fn refresh_holds(&mut self, all: bool) {
        let mut touched = std::mem::take(&mut self.touched);
        if all {
            touched = (0..self.ix.order.len()).collect();
        }
        let mut work: BTreeSet<usize> = touched.iter().map(|&p| self.ix.rank[p]).collect();
        // Each step is one hold computed; a dependency cycle (config check refuses them)
        // cannot make it run on.
        let mut budget = 2 * (self.ix.order.len() + work.len());
        while let Some(rank) = work.pop_first() {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let p = self.ix.order[rank];
            // A touched resource's own state changed: what reads it is computed again once.
            if self.refresh_hold(p) | touched.remove(&p) {
                work.extend(self.ix.dependents[p].iter().map(|&d| self.ix.rank[d]));
            }
        }
    }

    /// Computes the hold of the resource at `p`; says whether it changed.
    pub(super) fn refresh_hold(&mut self, p: usize) -> bool {
        let Some(node) = self.graph.resources.get(p) else {
            return false;
        };
        let hold = self.hold(node);
        let (manual, local) = (node.manual, node.local);
        let Some(r) = self.resources.get_mut(&node.name) else {
            return false;
        };
        r.idle = manual && r.status == Status::Pending && r.deploys == 0 && r.runs == 0;
        let changed = r.held != hold;
        if changed {
            r.blocked = hold.as_ref().is_some_and(Hold::is_failure);
            r.held_by = hold.as_ref().and_then(|h| h.on()).map(str::to_owned);
            r.held = hold;
        }
        r.display = r.shown(local);
        changed
    }

    /// Why `node` waits, if it does.
    pub(super) fn hold(&self, node: &Node) -> Option<Hold> {
        let state = self.resources.get(&node.name)?;
        let waiting = state.status == Status::Pending
            || (state.status == Status::Building && !node.local && {
                node.images
                    .iter()
                    .all(|i| self.images.get(i).is_none_or(|s| s.phase.build().is_none()))
            });
        if !waiting || (node.manual && state.deploys == 0 && node.local) {
            return None;
        }
        if let Some(h) = self.doctor_hold() {
            return Some(h);
        }
        if !node.local && !self.cluster_ready {
            return Some(match self.cluster.status {
                StepStatus::Failed => {
                    Hold::BringUpFailed(self.bring_up_failed.unwrap_or(BringUpStage::Cluster))
                }
                _ => Hold::Cluster,
            });
        }
        if let Some(h) = node
            .images
            .iter()
            .filter(|i| self.images.get(*i).is_some_and(|s| s.phase.build_wanted()))
            .find_map(|i| self.build_hold(i))
        {
            return Some(h);
        }
        if (state.deploys == 0 || node.local)
            && let Some(h) = self.dependency_hold(node)
        {
            return Some(h);
        }
        if node.local || state.status == Status::Pending {
            return None;
        }
        let image = self.unit_build(node)?;
        Some(if node.images.contains(&image) {
            Hold::BuildQueued {
                image,
                running: self
                    .images
                    .values()
                    .filter(|i| i.phase.build().is_some())
                    .count(),
            }
        } else {
            Hold::ReleaseBuild {
                image,
                release: node.release.clone().unwrap_or_default(),
            }
        })
    }

    /// The resources one deploy brings out together: a Helm release's workloads (one upgrade
    /// renders them all), or the resource alone (its objects applied).
    pub(super) fn unit<'a>(&'a self, node: &'a Node) -> Vec<&'a Node> {
        match &node.release {
            Some(r) => self
                .ix
                .releases
                .get(r)
                .into_iter()
                .flatten()
                .filter_map(|&p| self.graph.resources.get(p))
                .collect(),
            None => vec![node],
        }
    }

    /// The first image of `node`'s deploy unit that is building or waits to be built: the
    /// unit's deploy waits for it.
    pub(super) fn unit_build(&self, node: &Node) -> Option<String> {
        self.unit(node)
            .into_iter()
            .flat_map(|n| n.images.iter())
            .find(|i| self.images.get(*i).is_some_and(|s| s.phase.build_pending()))
            .cloned()
    }

    /// The first dependency of `node` that holds it.
    pub(super) fn dependency_hold(&self, node: &Node) -> Option<Hold> {
        for d in &node.depends_on {
            let same_release =
                node.release.is_some() && self.node(d).is_some_and(|n| n.release == node.release);
            if same_release {
                continue;
            }
            let Some(dep) = self.resources.get(d) else {
                continue;
            };
            if dep.status == Status::Ready {
                continue;
            }
            if let Some(why) = self.failure(d) {
                return Some(match why {
                    Hold::Failed(_) => why,
                    _ => why.passed_on(d),
                });
            }
            return Some(Hold::NotReady(d.clone()));
        }
        None
    }

    /// Nothing is in flight and nothing more will happen by itself: every resource is
    /// ready, failed, held by a failure, or manual and never triggered. `--ci` ends here.
    pub fn settled(&self) -> bool {
        if !self.doctor.passed() || !self.cluster.passed() || self.deploying.is_some() {
            return false;
        }
        if self.images.iter().any(|(n, i)| match &i.phase {
            Phase::Idle => false,
            Phase::Building { .. } | Phase::Syncing { .. } => true,
            Phase::Queued(_) => !self.build_hold(n).is_some_and(|h| h.is_failure()),
        }) {
            return false;
        }
        // Files still to apply go once the builds ended (unless a build can never start).
        if !self.pending_files.is_empty()
            && self.cluster_ready
            && !self.images.values().any(|i| i.phase.build_wanted())
        {
            return false;
        }
        self.graph.resources.iter().all(|n| {
            let Some(r) = self.resources.get(&n.name) else {
                return true;
            };
            r.running.is_none()
                && match r.status {
                    Status::Ready | Status::Error => true,
                    Status::Pending => r.blocked || n.manual,
                    Status::Building | Status::Syncing | Status::Deploying | Status::Waiting => {
                        r.blocked
                    }
                }
        })
    }
}
