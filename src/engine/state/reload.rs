//! A new graph from a config reload: what left is cancelled and forgotten, what is new starts
//! as on the first start, and what changed runs again.

use super::*;

impl State {
    /// Takes a new graph: what left is cancelled and forgotten, what is new starts as on the
    /// first start, and what changed runs again.
    pub(super) fn reload(&mut self, now: Duration, r: Reload, out: &mut Vec<Command>) {
        let Reload {
            version,
            graph,
            images,
            locals,
            resources,
            replaced,
            refollow,
            files,
        } = r;
        // The workers take the new config first: what follows was decided under it.
        out.push(Command::Configure { version });
        // What left the config, or is brought up again as new.
        let gone: Vec<String> = self
            .resources
            .keys()
            .filter(|n| !graph.resources.iter().any(|g| &g.name == *n) || replaced.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = self.resources.remove(&name)
                && let Some(generation) = r.running
            {
                out.push(Command::CancelRun {
                    resource: name.clone(),
                    generation,
                });
            }
            for img in self.images.values_mut() {
                img.ledger.forget(&name);
            }
            out.push(Command::Forget { resource: name });
        }
        let gone_images: Vec<String> = self
            .images
            .keys()
            .filter(|n| !graph.images.contains(n))
            .cloned()
            .collect();
        for name in gone_images {
            if let Some(i) = self.images.remove(&name)
                && let Some(BuildOp { generation, .. }) = i.phase.build().cloned()
            {
                out.push(Command::Cancel {
                    image: name,
                    generation,
                });
            }
        }
        // What is new starts as on the first start.
        let mut fresh_images = Vec::new();
        for i in &graph.images {
            if !self.images.contains_key(i) {
                self.images.insert(i.clone(), ImageState::default());
                fresh_images.push(i.clone());
            }
        }
        for n in &graph.resources {
            self.resources
                .entry(n.name.clone())
                .or_insert_with(ResourceState::new);
        }
        self.ix = Index::of(&graph);
        self.touched_all = true;
        self.unapplied_files.retain(|f| graph.manifests.contains(f));
        self.graph = graph;
        if let Some((g, names)) = self.deploying.take() {
            // A deploy in flight of resources that left: its end still counts for the rest.
            let kept: Vec<String> = names
                .into_iter()
                .filter(|n| self.resources.contains_key(n))
                .collect();
            self.deploying = Some((g, kept));
        }
        if self.stopped || !self.doctor.passed() {
            return;
        }
        for image in fresh_images.iter().chain(images.iter()) {
            if self.images.contains_key(image) {
                self.want_build(now, image, Cause::Reload, out);
            }
        }
        for name in &locals {
            if self.node(name).is_some_and(|n| n.local && !n.manual) {
                self.start_run(name, Cause::Reload, out);
            }
        }
        for name in refollow {
            if self.resources.get(&name).is_some_and(|r| r.deploys > 0) {
                out.push(Command::Refollow { resource: name });
            }
        }
        self.redeploy(&resources, files, out);
        self.schedule_runs(None, out);
    }
}
