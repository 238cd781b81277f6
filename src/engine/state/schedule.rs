//! What starts next: builds (wanted, queued, started), local runs, and the one deploy at a
//! time with the resources and files it carries.

use super::*;

impl State {
    /// Starts (or restarts) a local resource's run (not before the doctor passed).
    pub(super) fn start_run(&mut self, name: &str, cause: Cause, out: &mut Vec<Command>) {
        let now = self.now;
        if !self.doctor.passed() {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(r) = self.res_mut(name) else {
            return;
        };
        // A run cancelled by this one: its cause carries over.
        let mut earlier = None;
        if let Some(old) = r.running.replace(generation) {
            earlier = r.run_started.take().map(|(_, c)| c);
            out.push(Command::CancelRun {
                resource: name.to_owned(),
                generation: old,
            });
        }
        r.status = Status::Building;
        r.runs += 1;
        r.run_started = Some((now, Cause::merge(earlier, cause)));
        out.push(Command::Run {
            resource: name.to_owned(),
            generation,
        });
    }

    /// On the first start, runs each automatic local resource once what it depends on is
    /// ready (a manual one runs only when triggered). With `after`, only what waited for that
    /// resource is looked at (it just became ready); without, every resource.
    pub(super) fn schedule_runs(&mut self, after: Option<&str>, out: &mut Vec<Command>) {
        if !self.doctor.passed() {
            return;
        }
        let candidates: Vec<usize> = match after {
            Some(name) => self
                .ix
                .positions
                .get(name)
                .map(|&p| self.ix.dependents[p].clone())
                .unwrap_or_default(),
            None => (0..self.graph.resources.len()).collect(),
        };
        let due: Vec<String> = candidates
            .into_iter()
            .filter_map(|p| self.graph.resources.get(p))
            .filter(|n| n.local && !n.manual)
            .filter(|n| {
                self.resources
                    .get(&n.name)
                    .is_some_and(|r| r.runs == 0 && r.running.is_none())
            })
            .filter(|n| {
                n.depends_on.iter().all(|d| {
                    self.resources
                        .get(d)
                        .is_none_or(|s| s.status == Status::Ready)
                })
            })
            .map(|n| n.name.clone())
            .collect();
        for n in due {
            self.start_run(&n, Cause::Start, out);
        }
    }

    /// Builds `image` now, or queues the build while something holds it or a live update of
    /// it runs.
    pub(super) fn want_build(
        &mut self,
        now: Duration,
        image: &str,
        cause: Cause,
        out: &mut Vec<Command>,
    ) {
        let held = self.build_hold(image).is_some();
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        if held || img.phase.sync().is_some() {
            img.phase = match std::mem::take(&mut img.phase) {
                Phase::Idle => Phase::Queued(cause),
                Phase::Queued(q) => Phase::Queued(q.then(cause)),
                Phase::Building { op, queued } => Phase::Building {
                    op,
                    queued: Some(Cause::merge(queued, cause)),
                },
                Phase::Syncing { op, next } => Phase::Syncing {
                    op,
                    next: next.build(cause),
                },
            };
            return;
        }
        self.start_build(now, image, Some(cause), out);
    }

    /// Starts every queued build that nothing holds any more.
    pub(super) fn start_queued(&mut self, now: Duration, out: &mut Vec<Command>) {
        let free: Vec<String> = self
            .images
            .iter()
            .filter(|(_, i)| i.phase.startable())
            .map(|(n, _)| n.clone())
            .filter(|n| self.build_hold(n).is_none())
            .collect();
        for image in free {
            self.start_build(now, &image, None, out);
        }
    }

    /// Starts a build of `image`, for `cause` and why it was queued (when it was).
    pub(super) fn start_build(
        &mut self,
        now: Duration,
        image: &str,
        cause: Option<Cause>,
        out: &mut Vec<Command>,
    ) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        // A build cancelled by this one: its cause carries over, with a queued one's.
        let (earlier, queued) = match std::mem::take(&mut img.phase) {
            Phase::Building { op, queued } => {
                out.push(Command::Cancel {
                    image: image.to_owned(),
                    generation: op.generation,
                });
                (Some(op.cause), queued)
            }
            Phase::Queued(q) => (None, Some(q)),
            // Not reached: a build wanted while a live update runs waits for its end (its
            // result is then ignored, and the build carries its files).
            Phase::Syncing { next, .. } => (None, next.cause()),
            Phase::Idle => (None, None),
        };
        let cause = match (queued, cause) {
            (queued, Some(c)) => Cause::merge(queued, c),
            (Some(q), None) => q,
            (None, None) => Cause::Start,
        };
        img.phase = Phase::Building {
            op: BuildOp {
                generation,
                started: now,
                cause: Cause::merge(earlier, cause),
            },
            queued: None,
        };
        img.build_started = Some(now);
        out.push(Command::Build {
            image: image.to_owned(),
            generation,
        });
        self.for_users(image, |r| r.status = Status::Building);
    }

    /// Sorts the cluster resources for a deploy: due now, held by a dependency but in a
    /// Helm release (deployed with a release-mate that is due), held back by a dependency,
    /// and built to the tag that runs already.
    pub(super) fn deploy_candidates(
        &self,
        references: &BTreeMap<String, String>,
    ) -> DeployCandidates {
        let mut c = DeployCandidates::default();
        for node in self
            .ix
            .cluster
            .iter()
            .filter_map(|&p| self.graph.resources.get(p))
        {
            let Some(state) = self.resources.get(&node.name) else {
                continue;
            };
            let wanted: Option<BTreeMap<String, String>> = node
                .images
                .iter()
                .map(|i| references.get(i).map(|r| (i.clone(), r.clone())))
                .collect();
            let Some(wanted) = wanted else {
                continue; // an image was never built
            };
            // A build of the unit's (this resource's, or its Helm release's) changes what its
            // deploy carries: the unit waits for it and deploys once. Other units go on.
            if self.unit_build(node).is_some() {
                continue;
            }
            let failed_build = node
                .images
                .iter()
                .any(|i| self.images.get(i).is_some_and(|s| s.last_error.is_some()));
            let fresh = state.status == Status::Pending;
            if wanted == state.deployed && !fresh && !failed_build {
                if state.status == Status::Building {
                    c.unchanged.push(node.name.clone());
                }
                continue;
            }
            if failed_build {
                continue;
            }
            // Like Tilt's resource_deps, order holds on the first start (a `[[local]]` too).
            // Within one Helm release nothing can be held back.
            let deps_ready = state.deploys > 0 || self.dependency_hold(node).is_none();
            if deps_ready {
                c.due.push((node.name.clone(), wanted));
            } else {
                if node.release.is_some() {
                    c.held
                        .push((node.name.clone(), node.release.clone(), wanted));
                }
                c.held_back.push(node.name.clone());
            }
        }
        c
    }

    /// Deploys, in one go, every resource whose images are all built, whose running
    /// deployment uses other references, whose dependencies are ready and whose deploy unit
    /// (the resource, or its Helm release) has no build in flight; one deploy at a time.
    pub(super) fn schedule_deploy(&mut self, out: &mut Vec<Command>) {
        if !self.cluster_ready {
            return;
        }
        // A changed manifest file may hold any resource's objects, and a build about to start
        // or running (the same save's, say a manifest inside a build context) changes the tags
        // it would carry: changed files wait until no build is in flight and go out once.
        let builds_in_flight = self.images.values().any(|i| i.phase.build_pending());
        let references: BTreeMap<String, String> = self
            .images
            .iter()
            .filter_map(|(n, i)| i.reference.clone().map(|r| (n.clone(), r)))
            .collect();
        let DeployCandidates {
            mut due,
            held,
            held_back,
            unchanged,
        } = self.deploy_candidates(&references);
        let releases: BTreeSet<Option<String>> = due
            .iter()
            .filter_map(|(n, _)| self.node(n).map(|n| n.release.clone()))
            .filter(Option::is_some)
            .collect();
        for (name, release, wanted) in held {
            if releases.contains(&release) {
                due.push((name, wanted));
            }
        }
        for n in &held_back {
            if !due.iter().any(|(d, _)| d == n)
                && let Some(r) = self.res_mut(n)
                && r.status == Status::Building
            {
                r.status = Status::Pending;
            }
        }
        if !unchanged.is_empty() {
            for n in &unchanged {
                if let Some(r) = self.res_mut(n) {
                    r.status = Status::Waiting;
                    r.last_error = None;
                }
            }
            self.wait_for(unchanged, out);
        }
        // One deploy at a time: what is due now goes when the one in flight ends.
        if self.deploying.is_some()
            || (due.is_empty() && (self.pending_files.is_empty() || builds_in_flight))
        {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let names: Vec<String> = due.iter().map(|(n, _)| n.clone()).collect();
        let files: Vec<String> = if builds_in_flight {
            Vec::new()
        } else {
            let mut files = std::mem::take(&mut self.pending_files);
            files.append(&mut self.unapplied_files);
            files.into_iter().collect()
        };
        self.deploying_files.clone_from(&files);
        let mut causes = BTreeMap::new();
        for (n, wanted) in due {
            // Why: a reload or a trigger asked for it, or its first start, or the cause of
            // the build whose image it now runs.
            let new_image = wanted
                .iter()
                .find(|(i, r)| self.resources.get(&n).and_then(|s| s.deployed.get(*i)) != Some(*r))
                .and_then(|(i, _)| self.images.get(i))
                .and_then(|i| i.built_cause.clone());
            if let Some(r) = self.res_mut(&n) {
                let cause = match r.deploy_cause.take() {
                    Some(c) => c,
                    None if r.deploys == 0 => Cause::Start,
                    None => new_image.unwrap_or(Cause::Other("deploy".to_owned())),
                };
                causes.insert(n.clone(), cause);
                r.status = Status::Deploying;
                r.deployed = wanted;
                r.deploys += 1;
            }
        }
        self.deploy_started = Some((self.now, causes));
        self.deploying = Some((generation, names.clone()));
        out.push(Command::Deploy {
            generation,
            resources: names,
            references,
            files,
            shared: !self.shared_applied,
        });
    }
}
