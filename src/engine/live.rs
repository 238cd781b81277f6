//! Live update's ledger, per image: what live updates put into its containers since it was
//! last built, which containers have all of it, and which ready ones are behind (a pod that
//! started later, a container that restarted). The reducer keeps it and decides each
//! catch-up; the workers carry them out and say which containers they reached.
//!
//! Pure: no process, no cluster.

use std::collections::{BTreeMap, BTreeSet};

use super::state::SyncPlan;

/// A container: `(pod uid, container name)`.
pub type ContainerId = (String, String);

/// What live updates owe an image's containers.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Everything live updates put in since the build (none yet: nothing is owed).
    pub plan: Option<SyncPlan>,
    /// The ready containers that have all of `plan`.
    pub done: BTreeSet<ContainerId>,
    /// Bumped by each change of `plan`: a catch-up with an older one does not count.
    pub version: u64,
    /// The ready containers of the image, by resource, as the follow tasks last said.
    pub ready: BTreeMap<String, BTreeSet<ContainerId>>,
    /// The catch-up in flight, by the version it carries.
    pub catching_up: Option<u64>,
}

/// Containers of one resource to give the ledger's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    pub resource: String,
    pub version: u64,
    pub plan: SyncPlan,
    pub containers: Vec<ContainerId>,
}

impl Ledger {
    /// The image was built again: it holds every file, and nothing is owed.
    pub fn rebuilt(&mut self) {
        self.plan = None;
        self.done.clear();
        self.version += 1;
        self.catching_up = None;
    }

    /// A live update of `plan` reached `reached`. Only a container that had everything
    /// before has everything now; one that was behind still needs the whole plan.
    pub fn synced(&mut self, plan: SyncPlan, reached: &[ContainerId]) {
        let reached: BTreeSet<ContainerId> = reached.iter().cloned().collect();
        self.done = match &self.plan {
            None => reached,
            Some(_) => reached.intersection(&self.done).cloned().collect(),
        };
        self.plan = Some(match self.plan.take() {
            Some(earlier) => earlier.then(plan),
            None => plan,
        });
        self.version += 1;
    }

    /// `resource`'s ready containers now. A container that is no longer ready leaves
    /// `done`: when it is ready again (restarted, with the image's files) it is behind.
    pub fn ready(&mut self, resource: &str, ready: BTreeSet<ContainerId>) {
        if ready.is_empty() {
            self.ready.remove(resource);
        } else {
            self.ready.insert(resource.to_owned(), ready);
        }
        let all: BTreeSet<&ContainerId> = self.ready.values().flatten().collect();
        self.done.retain(|c| all.contains(c));
    }

    /// Forgets `resource` (it left the config).
    pub fn forget(&mut self, resource: &str) {
        self.ready(resource, BTreeSet::new());
    }

    /// The catch-up that ended, with the containers it reached (when it did).
    pub fn caught_up(&mut self, version: u64, reached: &[ContainerId]) {
        if self.catching_up == Some(version) {
            self.catching_up = None;
        }
        if version == self.version {
            self.done.extend(reached.iter().cloned());
        }
    }

    /// The next catch-up due, none while one is in flight: one resource's ready containers
    /// that do not have the whole plan.
    pub fn due(&mut self) -> Option<CatchUp> {
        if self.catching_up.is_some() {
            return None;
        }
        let plan = self.plan.clone()?;
        let (resource, behind) = self.ready.iter().find_map(|(r, ready)| {
            let behind: Vec<ContainerId> = ready.difference(&self.done).cloned().collect();
            (!behind.is_empty()).then(|| (r.clone(), behind))
        })?;
        self.catching_up = Some(self.version);
        Some(CatchUp {
            resource,
            version: self.version,
            plan,
            containers: behind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pod: &str) -> ContainerId {
        (pod.to_owned(), "app".to_owned())
    }

    fn copy(path: &str) -> SyncPlan {
        SyncPlan {
            copies: vec![(path.to_owned(), format!("/app/{path}"), None)],
            ..SyncPlan::default()
        }
    }

    #[test]
    fn nothing_is_owed_before_a_live_update_or_after_a_build() {
        let mut l = Ledger::default();
        l.ready("web", [id("a")].into());
        assert_eq!(l.due(), None);
        l.synced(copy("x"), &[id("a")]);
        l.ready("web", [id("a"), id("b")].into());
        assert!(l.due().is_some());
        l.rebuilt();
        assert_eq!(l.due(), None);
    }

    #[test]
    fn a_new_container_gets_the_whole_plan_once() {
        let mut l = Ledger::default();
        l.ready("web", [id("a")].into());
        l.synced(copy("x"), &[id("a")]);
        l.synced(copy("y"), &[id("a")]);
        assert_eq!(l.due(), None, "a has everything");
        l.ready("web", [id("a"), id("b")].into());
        let c = l.due().unwrap_or_else(|| panic!("b is behind"));
        assert_eq!(c.containers, [id("b")]);
        assert_eq!(c.plan.copies.len(), 2, "both files");
        assert_eq!(l.due(), None, "one in flight");
        l.caught_up(c.version, &c.containers);
        assert_eq!(l.due(), None);
    }

    /// A container that was behind when a live update reached it still lacks the earlier
    /// files; a catch-up that carried an older plan does not count.
    #[test]
    fn only_what_had_everything_has_everything_after_a_live_update() {
        let mut l = Ledger::default();
        l.ready("web", [id("a")].into());
        l.synced(copy("x"), &[id("a")]);
        l.ready("web", [id("a"), id("b")].into());
        let c = l.due().unwrap_or_else(|| panic!("b is behind"));
        // A live update reaches both before the catch-up ends.
        l.synced(copy("y"), &[id("a"), id("b")]);
        l.caught_up(c.version, &c.containers);
        let again = l.due().unwrap_or_else(|| panic!("b still lacks x"));
        assert_eq!(again.containers, [id("b")]);
    }

    /// A restarted container (not ready, then ready again) has only the image's files.
    #[test]
    fn a_container_that_was_not_ready_is_behind_when_it_is_ready_again() {
        let mut l = Ledger::default();
        l.ready("web", [id("a")].into());
        l.synced(copy("x"), &[id("a")]);
        l.ready("web", BTreeSet::new());
        l.ready("web", [id("a")].into());
        assert_eq!(l.due().map(|c| c.containers), Some(vec![id("a")]));
    }

    #[test]
    fn a_forgotten_resource_is_owed_nothing() {
        let mut l = Ledger::default();
        l.synced(copy("x"), &[]);
        l.ready("old", [id("a")].into());
        l.forget("old");
        assert_eq!(l.due(), None);
        assert!(l.ready.is_empty());
    }
}
