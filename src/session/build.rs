//! `devenv build`: builds the configured images once, several at a time, and prints
//! `name:tag` with `built` or `present`. Builds go where `up` would put them when the cluster
//! is there to take them (Minikube's running profile, or the registry of an existing
//! cluster). With buildah or podman and no running profile (or no minikube at all), they stay
//! in the builder's own store, and that is said: `devenv up` loads them.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;

use crate::cluster::minikube::{ImageStore, Minikube, ProfileState};
use crate::config::{self, BuilderKind, Config};
use crate::image::{self, run::Destination};
use crate::out;

/// `devenv build [NAME...]`: `cfg` has the builder `--builder` chose already.
pub fn run(cfg: &Config, names: &[String], jobs: Option<usize>) -> Result<ExitCode> {
    // In the config's order, each once, whatever order and repeats the names came in.
    let chosen = image::run::select(cfg, names).map_err(anyhow::Error::msg)?;
    let selected: Vec<&config::Image> = cfg
        .images
        .iter()
        .filter(|i| chosen.iter().any(|c| c.name == i.name))
        .collect();
    let (store, local) = destination(cfg, &selected)?;
    let to = match (&store, &local) {
        (_, Some(_)) => Destination::Local,
        (s, None) => Destination::Cluster(s.as_ref()),
    };
    let jobs = jobs.unwrap_or_else(image::run::default_parallelism);
    let Some(refs) = run_builds(cfg, &selected, to, jobs) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(why) = local {
        for (name, r) in &refs {
            let builder = cfg
                .images
                .iter()
                .find(|i| &i.name == name)
                .map_or("the builder", |i| i.builder.as_str());
            out::say(
                "local",
                format!(
                    "{r} is in {builder}'s own store only, loaded into no cluster: {why}; `devenv up` loads what it runs"
                ),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the builds go: `(Minikube's store for docker builds, Some(why) when they stay in
/// the builder's own store)`.
fn destination(
    cfg: &Config,
    images: &[&config::Image],
) -> Result<(Option<ImageStore>, Option<String>)> {
    if cfg.cluster.provider != config::Provider::Minikube {
        // An existing cluster pulls from the registry: the builds are pushed there.
        return Ok((None, None));
    }
    let needs_daemon = images.iter().any(|i| i.uses_docker_daemon());
    let local_only = images
        .iter()
        .all(|i| matches!(i.builder, BuilderKind::Buildah | BuilderKind::Podman));
    let mk = Minikube {
        cfg,
        query_timeout: std::time::Duration::from_secs(60),
    };
    let profile = &cfg.cluster.profile;
    match mk.state() {
        Ok(ProfileState::Running) if needs_daemon => Ok((Some(mk.image_store()?), None)),
        Ok(ProfileState::Running) => Ok((None, None)),
        Ok(other) if local_only => Ok((
            None,
            Some(format!(
                "minikube profile `{profile}` is not running ({})",
                other.describe()
            )),
        )),
        Err(e) if local_only => Ok((None, Some(format!("minikube is not available here ({e})")))),
        Ok(other) => anyhow::bail!(
            "minikube profile `{profile}` is not running ({}): images built with docker go into its Docker daemon\n  hint: `devenv up` starts it; or build with --builder buildah (or podman), which needs no cluster",
            other.describe()
        ),
        Err(e) => anyhow::bail!(
            "{e}\n  hint: images built with docker go into Minikube's Docker daemon; build with --builder buildah (or podman), which needs no cluster"
        ),
    }
}

/// Builds the named images (several at once, up to half the CPUs and at least two), streaming each builder's
/// output to stderr with the image's name in front, and prints `name:tag` and the outcome of
/// each to stdout. Returns each image's reference, or None when a build failed.
fn run_builds(
    cfg: &Config,
    images: &[&config::Image],
    to: Destination<'_>,
    jobs: usize,
) -> Option<BTreeMap<String, String>> {
    let results = image::run::build_all(cfg, images, to, jobs, &|image, line| {
        out::tool(image, line);
    });
    let mut ok = true;
    let mut references = BTreeMap::new();
    for (img, r) in images.iter().zip(results) {
        match r {
            Ok(b) => {
                match b.outcome {
                    image::run::Outcome::Built => out::say(
                        "built",
                        format!("{} ({:.1}s)", b.reference, b.duration.as_secs_f64()),
                    ),
                    image::run::Outcome::Present => {
                        out::say("present", format!("{} (nothing to build)", b.reference))
                    }
                }
                references.insert(img.name.clone(), b.reference);
            }
            Err(e) => {
                ok = false;
                eprintln!("error: {}", crate::out::printable(&e.to_string()));
            }
        }
    }
    ok.then_some(references)
}
