//! Reload: what an edit of devenv.toml changes while `up` runs, worked out from the old and
//! the new config. Pure: the session reads and checks the files, this says what must run
//! again, and the engine does it.
//!
//! Owns the rules of the difference. Must not read files, run anything or touch the engine's
//! state.

use std::collections::BTreeSet;

use crate::config::{Config, LocalResource, Resource};

/// What the new config changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Images whose build changed (context, Dockerfile, target, arguments, builder): built
    /// again. New images are built as on the first start, and are not listed.
    pub images: BTreeSet<String>,
    /// Local resources whose command, serve command, directory or environment changed:
    /// run again.
    pub locals: BTreeSet<String>,
    /// Cluster resources whose workload or namespace changed: forgotten (forwards, log
    /// streams, wait) and brought up again.
    pub replaced: BTreeSet<String>,
    /// Cluster resources whose forwards or links changed: followed again, not redeployed.
    pub refollow: BTreeSet<String>,
    /// Cluster resources to deploy again: every resource of the release when the Helm
    /// settings changed.
    pub redeploy: BTreeSet<String>,
    /// The manifest list changed: every file is applied whole, and what left is pruned.
    pub manifests: bool,
    /// Resources (cluster and local) the new config adds: they come up as on the first start.
    pub added: BTreeSet<String>,
    /// Resources the new config no longer has: their forwards, logs and commands stop.
    pub removed: BTreeSet<String>,
    /// Settings that only a new `devenv up` can take (the cluster, the page's port), each as
    /// the user reads it.
    pub restart: Vec<String>,
}

impl Diff {
    /// Whether the engine has nothing to do (the watcher still restarts with the new paths).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.locals.is_empty()
            && self.replaced.is_empty()
            && self.refollow.is_empty()
            && self.redeploy.is_empty()
            && !self.manifests
            && self.added.is_empty()
            && self.removed.is_empty()
    }
}

/// A local resource's command as it runs: what decides whether to run it again.
fn command_of(l: &LocalResource) -> impl PartialEq + '_ {
    (&l.cmd, &l.serve_cmd, &l.workdir, &l.env)
}

/// A cluster resource as it is deployed: what decides whether to bring it up again.
fn deployed_as(r: &Resource) -> impl PartialEq + '_ {
    (&r.workload, &r.namespace, &r.release)
}

/// A cluster resource as it is followed: what decides whether to follow it again.
fn followed_as(r: &Resource) -> impl PartialEq + '_ {
    (&r.port_forwards, &r.links)
}

/// What `new` changes from `old`. `released` names the resources each Helm release deploys
/// in the new config.
pub fn diff(old: &Config, new: &Config, released: &crate::project::Released) -> Diff {
    let mut d = Diff::default();
    for img in &new.images {
        if let Some(o) = old.images.iter().find(|o| o.name == img.name) {
            // Its watch paths only change what is watched.
            let mut o = o.clone();
            o.watch.clone_from(&img.watch);
            if &o != img {
                d.images.insert(img.name.clone());
            }
        }
    }
    for l in &new.locals {
        if let Some(o) = old.locals.iter().find(|o| o.name == l.name)
            && command_of(o) != command_of(l)
        {
            d.locals.insert(l.name.clone());
        }
    }
    for r in &new.resources {
        let Some(o) = old.resources.iter().find(|o| o.name == r.name) else {
            continue;
        };
        if deployed_as(o) != deployed_as(r) {
            d.replaced.insert(r.name.clone());
        } else if followed_as(o) != followed_as(r) {
            d.refollow.insert(r.name.clone());
        }
    }
    // A release that changed (or is new) deploys its resources again.
    let namespace_changed = old.deploy.namespace != new.deploy.namespace;
    for h in &new.deploy.helm {
        if namespace_changed || old.release(&h.release) != Some(h) {
            d.redeploy.extend(
                released
                    .iter()
                    .filter(|(r, rel)| **rel == h.release && !d.replaced.contains(*r))
                    .map(|(r, _)| r.clone()),
            );
        }
    }
    d.manifests = old.deploy.manifests != new.deploy.manifests;
    let names = |c: &Config| -> BTreeSet<String> {
        c.resources
            .iter()
            .map(|r| r.name.clone())
            .chain(c.locals.iter().map(|l| l.name.clone()))
            .collect()
    };
    let (before, after) = (names(old), names(new));
    d.added = after.difference(&before).cloned().collect();
    d.removed = before.difference(&after).cloned().collect();
    if old.cluster != new.cluster {
        d.restart.push("[cluster]".into());
    }
    if old.web.port != new.web.port {
        d.restart.push("[web] port".into());
    }
    if old.web.log_buffer != new.web.log_buffer {
        d.restart.push("[web] log_buffer".into());
    }
    if old.secrets != new.secrets {
        d.restart.push("[[secret]]".into());
    }
    if old.project != new.project {
        d.restart.push("project".into());
    }
    d
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The difference between two configs, parsed in one temporary project (parsing checks
    /// that the paths exist; the configs are compared, never read from disk again).
    fn diff_of(old: &str, new: &str, released: &crate::project::Released) -> Diff {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        diff(&cfg(tmp.path(), old), &cfg(tmp.path(), new), released)
    }

    fn cfg(dir: &Path, text: &str) -> Config {
        for d in ["api", "web", "chart"] {
            let _ = std::fs::create_dir_all(dir.join(d));
        }
        for f in [
            "api/Dockerfile",
            "web/Dockerfile",
            "chart/Chart.yaml",
            "values.yaml",
        ] {
            let _ = std::fs::write(dir.join(f), "x\n");
        }
        let file = dir.join("devenv.toml");
        match crate::config::parse(Path::new("devenv.toml"), &file, text) {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str = r#"
[project]
name = "p"
[[image]]
name = "api"
context = "api"
[[image]]
name = "web"
context = "web"
[deploy.helm]
chart = "chart"
values = ["values.yaml"]
[[deploy.helm.images]]
image = "api"
repository = "api.repository"
tag = "api.tag"
[[deploy.helm.images]]
image = "web"
repository = "web.repository"
tag = "web.tag"
[[resource]]
name = "backend"
workload = "deployment/api"
[[resource]]
name = "frontend"
workload = "deployment/web"
port_forwards = ["3000:3000"]
[[local]]
name = "gen"
cmd = "echo one"
"#;

    /// Both resources, each of the one release (named after the project).
    fn all() -> crate::project::Released {
        ["backend", "frontend"]
            .map(|r| (r.to_owned(), "p".to_owned()))
            .into()
    }

    fn names(r: &crate::project::Released) -> BTreeSet<String> {
        r.keys().cloned().collect()
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let d = diff_of(BASE, BASE, &all());
        assert!(d.is_empty() && d.restart.is_empty(), "{d:?}");
    }

    #[test]
    fn a_build_argument_rebuilds_that_image_only() {
        let new = BASE.replace(
            "name = \"web\"\ncontext = \"web\"",
            "name = \"web\"\ncontext = \"web\"\nbuild_args = { MODE = \"dev\" }",
        );
        let d = diff_of(BASE, &new, &all());
        assert_eq!(d.images, ["web".to_owned()].into());
        assert!(d.redeploy.is_empty() && d.locals.is_empty() && d.replaced.is_empty());
    }

    #[test]
    fn added_and_removed_resources_are_named() {
        let new = BASE.replace("[[local]]\nname = \"gen\"", "[[local]]\nname = \"gen2\"");
        let d = diff_of(BASE, &new, &all());
        assert_eq!(d.added, ["gen2".to_owned()].into());
        assert_eq!(d.removed, ["gen".to_owned()].into());
        assert!(!d.is_empty());
    }

    #[test]
    fn a_changed_command_reruns_its_local() {
        let d = diff_of(BASE, &BASE.replace("echo one", "echo two"), &all());
        assert_eq!(d.locals, ["gen".to_owned()].into());
        assert!(d.images.is_empty());
    }

    #[test]
    fn a_changed_forward_follows_that_resource_again_and_a_changed_workload_replaces_it() {
        let d = diff_of(BASE, &BASE.replace("3000:3000", "3001:3000"), &all());
        assert_eq!(d.refollow, ["frontend".to_owned()].into());
        assert!(d.replaced.is_empty() && d.redeploy.is_empty());
        let d = diff_of(
            BASE,
            &BASE.replace("deployment/web", "statefulset/web"),
            &all(),
        );
        assert_eq!(d.replaced, ["frontend".to_owned()].into());
        assert!(d.refollow.is_empty());
    }

    #[test]
    fn helm_settings_redeploy_the_release() {
        let new = BASE.replace(
            "values = [\"values.yaml\"]",
            "values = [\"values.yaml\"]\nset = { replicas = \"2\" }",
        );
        let d = diff_of(BASE, &new, &all());
        assert_eq!(d.redeploy, names(&all()));
    }

    /// Issue 27, shape 5: with two releases, a change of one redeploys its resources only.
    #[test]
    fn a_change_of_one_release_redeploys_its_resources_only() {
        let two = |set: &str| {
            BASE.replace(
                "[deploy.helm]\nchart = \"chart\"\nvalues = [\"values.yaml\"]\n[[deploy.helm.images]]\nimage = \"api\"\nrepository = \"api.repository\"\ntag = \"api.tag\"\n[[deploy.helm.images]]",
                &format!("[[deploy.helm]]\nchart = \"chart\"\nrelease = \"api\"\nvalues = [\"values.yaml\"]\n[[deploy.helm.images]]\nimage = \"api\"\nrepository = \"api.repository\"\ntag = \"api.tag\"\n[[deploy.helm]]\nchart = \"chart\"\nrelease = \"web\"\n{set}[[deploy.helm.images]]"),
            )
            .replace("workload = \"deployment/api\"", "workload = \"deployment/api\"\nrelease = \"api\"")
            .replace("workload = \"deployment/web\"", "workload = \"deployment/web\"\nrelease = \"web\"")
        };
        let released: crate::project::Released = [
            ("backend".to_owned(), "api".to_owned()),
            ("frontend".to_owned(), "web".to_owned()),
        ]
        .into();
        let d = diff_of(&two(""), &two("set = { replicas = \"2\" }\n"), &released);
        assert_eq!(d.redeploy, BTreeSet::from(["frontend".to_owned()]));
    }

    #[test]
    fn cluster_and_page_settings_need_a_new_up() {
        let new = format!("[cluster]\ncpus = 2\n[web]\nport = 10999\n{BASE}");
        let d = diff_of(BASE, &new, &all());
        assert_eq!(d.restart, ["[cluster]", "[web] port"]);
        assert!(d.is_empty());
    }
}
