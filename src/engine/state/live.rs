//! Live update in the reducer: when a change may go into running containers, a sync's end,
//! and the catch-ups of containers that are behind (the ledger is `engine::live`).

use super::*;

impl State {
    /// A live update ended.
    pub(super) fn on_sync_done(
        &mut self,
        now: Duration,
        image: String,
        generation: u64,
        done: SyncEnd,
        out: &mut Vec<Command>,
    ) {
        let SyncEnd {
            result,
            lasting,
            reached,
        } = done;
        let Some(img) = self.images.get_mut(&image) else {
            return;
        };
        let Some((op, next)) = img.end_sync(generation) else {
            return;
        };
        let SyncOp {
            plan,
            started,
            cause,
            ..
        } = op;
        if result.is_ok() {
            img.ledger.synced(plan, &reached);
        }
        let entry = HistoryEntry::ended("sync", Some(&image), &cause, started, now, &result);
        self.for_users(&image, |r| r.record(entry.clone()));
        let Some(img) = self.images.get_mut(&image) else {
            return;
        };
        match result {
            Ok(report) => {
                img.last_sync = Some(report);
                self.for_users(&image, |r| {
                    if r.status == Status::Syncing {
                        r.status = Status::Ready;
                        r.updated_at = Some(now);
                    }
                });
                match next {
                    AfterSync::Nothing => {}
                    AfterSync::Sync(plan, cause) => self.want_sync(&image, plan, cause, out),
                    AfterSync::Build(cause) => self.want_build(now, &image, cause, out),
                }
                self.catch_up(&image, out);
            }
            Err(why) => {
                // Live update stops for this image until it is built again (for good
                // when the failure will not pass), and the build carries the change.
                if lasting {
                    img.live_never = Some(why.clone());
                }
                img.live_off = Some(why);
                let cause = Cause::merge(
                    next.cause().map(|c| cause.clone().then(c)),
                    Cause::Other(format!("{cause}; live update failed")),
                );
                self.want_build(now, &image, cause, out);
            }
        }
    }

    /// The ready containers of `resource` that run `image` changed.
    pub(super) fn on_containers(
        &mut self,
        resource: &str,
        image: &str,
        ready: Vec<ContainerId>,
        out: &mut Vec<Command>,
    ) {
        if let Some(img) = self.images.get_mut(image) {
            img.ledger.ready(resource, ready.into_iter().collect());
        }
        self.catch_up(image, out);
    }

    /// Gives the containers of `image` that are behind its live updates what they lack, one
    /// resource at a time, while no live update or build of it runs.
    pub(super) fn catch_up(&mut self, image: &str, out: &mut Vec<Command>) {
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        if !matches!(img.phase, Phase::Idle | Phase::Queued(_)) || img.live_off.is_some() {
            return;
        }
        if let Some(owed) = img.ledger.due() {
            out.push(Command::CatchUp {
                image: image.to_owned(),
                owed,
            });
        }
    }

    /// A catch-up ended. When it failed, the image is built with the live updates' files
    /// (unless its resource left the config meanwhile).
    pub(super) fn on_caught_up(
        &mut self,
        now: Duration,
        image: &str,
        resource: &str,
        version: u64,
        result: Result<Vec<ContainerId>, String>,
        out: &mut Vec<Command>,
    ) {
        let present = self.resources.contains_key(resource);
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        match result {
            Ok(reached) => {
                img.ledger.caught_up(version, &reached);
                self.catch_up(image, out);
            }
            Err(_) if !present => {
                img.ledger.caught_up(version, &[]);
                img.ledger.forget(resource);
                self.catch_up(image, out);
            }
            Err(why) => {
                img.ledger.caught_up(version, &[]);
                self.on_sync_lost(
                    now,
                    image,
                    format!("a new pod could not get the live-updated files: {why}"),
                    out,
                );
            }
        }
    }

    pub(super) fn on_sync_lost(
        &mut self,
        now: Duration,
        image: &str,
        why: String,
        out: &mut Vec<Command>,
    ) {
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        img.live_off = Some(why);
        self.want_build(
            now,
            image,
            Cause::Other("a new pod missed live updates".to_owned()),
            out,
        );
    }

    /// Whether a change of `image` may go into its running containers: it was built, runs in
    /// every resource that uses it (each ready, with this build), no build of it is in
    /// flight, and live update was not turned off for it.
    pub(super) fn can_sync(&self, image: &str) -> bool {
        let Some(img) = self.images.get(image) else {
            return false;
        };
        let Some(reference) = &img.reference else {
            return false;
        };
        if img.phase.build_pending() || img.live_off.is_some() || img.live_never.is_some() {
            return false;
        }
        let users = self.users(image);
        !users.is_empty()
            && users.iter().all(|n| {
                self.resources.get(&n.name).is_some_and(|r| {
                    matches!(r.status, Status::Ready | Status::Syncing)
                        && r.deployed.get(image) == Some(reference)
                })
            })
    }

    /// Starts a live update of `image`, or (one running) runs it after it; a build in flight
    /// or wanted carries the files instead.
    pub(super) fn want_sync(
        &mut self,
        image: &str,
        plan: SyncPlan,
        cause: Cause,
        out: &mut Vec<Command>,
    ) {
        let generation = self.next_generation;
        let now = self.now;
        let Some(img) = self.images.get_mut(image) else {
            return;
        };
        match &mut img.phase {
            Phase::Idle => {}
            Phase::Syncing { next, .. } => {
                *next = std::mem::take(next).sync(plan, cause);
                return;
            }
            Phase::Queued(_) | Phase::Building { .. } => {
                self.want_build(now, image, cause, out);
                return;
            }
        }
        self.next_generation += 1;
        img.phase = Phase::Syncing {
            op: SyncOp {
                generation,
                plan: plan.clone(),
                started: now,
                cause,
            },
            next: AfterSync::Nothing,
        };
        self.for_users(image, |r| r.status = Status::Syncing);
        out.push(Command::Sync {
            image: image.to_owned(),
            generation,
            plan,
        });
    }
}
