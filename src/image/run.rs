//! Running builds: skip an image whose content tag already exists in the cluster's image
//! store, else run its builder (in its own process group, output streamed line by line) and
//! deliver the result (Minikube image load, or registry push for an existing cluster).
//!
//! Minikube's docker-env reaches the builder's processes and no others.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::context::{self, ContextError};
use super::{delivery, extra_env, reference};
use crate::cluster::minikube::ImageStore;
use crate::config::{BuilderKind, Config, Image, Provider};
use crate::exec::{self, Cancel, Cmd, ExecError};

/// A build may take long; a stuck one is still stopped eventually.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);
/// Deadline of an "is this image there?" query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many of a failed build's last lines are shown.
const ERROR_LINES: usize = 15;

/// Where a build goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// Where the cluster runs images from: Minikube's image store (its Docker daemon, given
    /// here, or an archive it loads) or, for an existing cluster, the registry.
    Cluster(Option<&'a ImageStore>),
    /// The builder's own store only: `devenv build` with no cluster to load into.
    Local,
}

impl<'a> Destination<'a> {
    fn store(self) -> Option<&'a ImageStore> {
        match self {
            Destination::Cluster(s) => s,
            Destination::Local => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Built (and delivered) now.
    Built,
    /// Already in the image store with this tag: nothing to do.
    Present,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub reference: String,
    pub outcome: Outcome,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The context could not be hashed.
    #[error("image `{image}`: {source}")]
    Context {
        image: String,
        #[source]
        source: ContextError,
    },
    /// The builder failed; its last lines and the Dockerfile step are kept.
    #[error("image `{image}`: `{command}` failed (exit {code}){}\n{}", step.as_ref().map_or(String::new(), |s| format!(" at step: {s}")), last_lines.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n"))]
    Failed {
        image: String,
        command: String,
        code: String,
        step: Option<String>,
        last_lines: Vec<String>,
    },
    /// Delivering the image (load or push) failed.
    #[error("image `{image}`: `{command}` failed: {detail}")]
    Deliver {
        image: String,
        command: String,
        detail: String,
    },
    /// A builder needs Minikube's image store, and none was given.
    #[error("image `{image}`: {why}")]
    NoStore { image: String, why: String },
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// The builder that really runs: a docker build on a cluster without a Docker daemon becomes
/// `minikube image build`.
pub fn effective_builder(image: &Image, store: Option<&ImageStore>) -> BuilderKind {
    match (image.builder, store) {
        (BuilderKind::Docker, Some(ImageStore::MinikubeImageBuild { .. })) => BuilderKind::Minikube,
        (b, _) => b,
    }
}

/// Environment for the build process: Minikube's docker-env where the build talks to a Docker
/// daemon, a custom builder's target reference, and plain BuildKit progress for docker.
pub fn build_env(
    cfg: &Config,
    image: &Image,
    builder: BuilderKind,
    store: Option<&ImageStore>,
    reference: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    if matches!(builder, BuilderKind::Docker | BuilderKind::Custom)
        && let Some(ImageStore::DockerEnv(vars)) = store
    {
        env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if builder == BuilderKind::Docker {
        env.push(("BUILDKIT_PROGRESS".into(), "plain".into()));
    }
    let mut as_built = image.clone();
    as_built.builder = builder;
    env.extend(extra_env(cfg, &as_built, reference));
    env
}

/// The command that tells whether `reference` is already in the store the cluster uses (or,
/// with `local`, in the builder's own).
fn exists_command(cfg: &Config, builder: BuilderKind, reference: &str, local: bool) -> Cmd {
    let own = local || cfg.cluster.provider == Provider::Existing;
    let with = |kind: BuilderKind, args: &[&str]| {
        let argv = super::tool(cfg, kind);
        Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .args(args.iter().map(|a| (*a).to_owned()))
    };
    match builder {
        BuilderKind::Buildah if own => with(
            BuilderKind::Buildah,
            &["inspect", "--type", "image", reference],
        ),
        BuilderKind::Podman if own => with(BuilderKind::Podman, &["image", "exists", reference]),
        // Images that Minikube loads or builds itself are looked up in Minikube.
        BuilderKind::Buildah | BuilderKind::Podman | BuilderKind::Minikube => Cmd::new("minikube")
            .args([
                "-p",
                &cfg.cluster.profile,
                "image",
                "ls",
                "--format",
                "table",
            ]),
        BuilderKind::Docker | BuilderKind::Custom => {
            Cmd::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference])
        }
    }
    .timeout(QUERY_TIMEOUT)
}

/// Whether `minikube image ls --format table` lists `reference` (it prints full names, like
/// `docker.io/library/hello:devenv-…`).
pub fn listed_in_minikube(table: &str, reference: &str) -> bool {
    let parsed = crate::objects::ImageRef::parse(reference);
    let (repo, tag) = (parsed.repository, parsed.tag_or_latest());
    let full = parsed.full_repository();
    table.lines().any(|l| {
        let cells: Vec<&str> = l
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let line_match = l
            .split_whitespace()
            .any(|w| w == reference || w == format!("{full}:{tag}"));
        let table_match =
            cells.len() >= 2 && (cells[0] == full || cells[0] == repo) && cells[1] == tag;
        line_match || table_match
    })
}

fn exists(
    cfg: &Config,
    builder: BuilderKind,
    env: &[(String, String)],
    reference: &str,
    cancel: Option<&Cancel>,
    local: bool,
) -> Result<bool, ExecError> {
    let mut cmd = exists_command(cfg, builder, reference, local);
    cmd.cancel = cancel.cloned();
    if cmd.program == "docker" {
        cmd.env = env
            .iter()
            .filter(|(k, _)| k.starts_with("DOCKER_") || k == "MINIKUBE_ACTIVE_DOCKERD")
            .cloned()
            .collect();
    }
    let f = exec::run(&cmd)?;
    Ok(if cmd.program == "minikube" {
        f.code == Some(0) && listed_in_minikube(&f.stdout, reference)
    } else {
        f.code == Some(0)
    })
}

/// The Dockerfile step a failed build stopped at, from BuildKit's (`> [stage 3/5] RUN …`),
/// the legacy builder's (`Step 3/5 : RUN …`) or buildah's and podman's output: `STEP 3/5:
/// RUN …` for one stage, `[2/2] STEP 3/3: COPY …` for several, told with the stage's number
/// and name (from its `FROM … AS name` step).
pub fn failed_step(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    if let Some(l) = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("> [") && l.ends_with(':'))
    {
        return Some(l.trim_start_matches("> ").trim_end_matches(':').to_owned());
    }
    // buildah and podman with several stages: `[k/n] STEP i/m: …`.
    let staged = |l: &str| -> Option<(String, String)> {
        let rest = l.strip_prefix('[')?;
        let (stage, step) = rest.split_once("] ")?;
        (stage.contains('/') && step.starts_with("STEP "))
            .then(|| (stage.to_owned(), step.to_owned()))
    };
    if let Some((stage, step)) = lines.iter().rev().find_map(|l| staged(l)) {
        let name = lines
            .iter()
            .filter_map(|l| staged(l))
            .find(|(s, st)| s == &stage && st.contains(": FROM "))
            .and_then(|(_, st)| {
                let words: Vec<&str> = st.split_whitespace().collect();
                let i = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
                words.get(i + 1).map(|n| format!(" `{n}`"))
            })
            .unwrap_or_default();
        return Some(format!("stage {stage}{name}, {step}"));
    }
    lines
        .iter()
        .rev()
        .find(|l| {
            (l.starts_with("STEP ") || l.starts_with("Step "))
                && l.split_whitespace().nth(1).is_some_and(|n| n.contains('/'))
                || (l.starts_with('#') && l.contains(" [") && l.contains('/'))
        })
        .map(|l| (*l).to_owned())
}

/// Builds one image unless its tag is already present. `on_line` receives the builder's output.
/// A `cancel` stops the build (the builder's whole process group) and ends it with
/// [`ExecError::Cancelled`].
pub fn build_one(
    cfg: &Config,
    image: &Image,
    to: Destination<'_>,
    cancel: Option<&Cancel>,
    on_line: &mut dyn FnMut(&str),
) -> Result<Built, BuildError> {
    let store = to.store();
    let local = matches!(to, Destination::Local);
    let started = Instant::now();
    let digest = context::digest(image).map_err(|source| BuildError::Context {
        image: image.name.clone(),
        source,
    })?;
    let reference = reference(cfg, image, &digest.tag);
    let builder = effective_builder(image, store);
    if cfg.cluster.provider == Provider::Minikube
        && !local
        && matches!(builder, BuilderKind::Docker | BuilderKind::Custom)
        && store.is_none()
    {
        return Err(BuildError::NoStore {
            image: image.name.clone(),
            why: "this build needs Minikube's Docker daemon; run `devenv up`, or pick builder = \"buildah\" or \"podman\"".into(),
        });
    }
    let env = build_env(cfg, image, builder, store, &reference);
    let done = |outcome| Built {
        reference: reference.clone(),
        outcome,
        duration: started.elapsed(),
    };
    let mut as_image = image.clone();
    as_image.builder = builder;
    if exists(cfg, builder, &env, &reference, cancel, local)? {
        // Built before, but a registry may not have it yet: a push of present layers is cheap.
        if cfg.cluster.provider == Provider::Existing && !local {
            deliver(cfg, &as_image, &reference, cancel, on_line)?;
        }
        return Ok(done(Outcome::Present));
    }
    super::write_dev_dockerfile(cfg, image).map_err(|e| BuildError::Context {
        image: image.name.clone(),
        source: ContextError::Io {
            path: image.dockerfile.clone(),
            source: e,
        },
    })?;
    let argv = super::command(cfg, &as_image, &reference);
    let mut cmd = Cmd::new(argv[0].clone())
        .args(argv[1..].iter().cloned())
        .timeout(BUILD_TIMEOUT);
    cmd.env = env;
    cmd.dir = Some(cfg.root.clone());
    cmd.cancel = cancel.cloned();
    let f = exec::run_lines(&cmd, |l| on_line(l))?;
    if f.code != Some(0) {
        let lines: Vec<String> = f.stdout.lines().map(str::to_owned).collect();
        return Err(BuildError::Failed {
            image: image.name.clone(),
            command: cmd.display(),
            code: f.code.map_or("signal".into(), |c| c.to_string()),
            step: failed_step(&f.stdout),
            last_lines: lines[lines.len().saturating_sub(ERROR_LINES)..].to_vec(),
        });
    }
    if !local {
        deliver(cfg, &as_image, &reference, cancel, on_line)?;
    }
    Ok(done(Outcome::Built))
}

/// Makes a built image available to the cluster: an archive hand-off into Minikube, or a push.
fn deliver(
    cfg: &Config,
    image: &Image,
    reference: &str,
    cancel: Option<&Cancel>,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let Some(d) = delivery(cfg, image, reference) else {
        return Ok(());
    };
    if let Some(dir) = d.archive.as_ref().and_then(|a| a.parent()) {
        let _ = crate::host::private_dir(dir);
    }
    let result = d.commands.iter().try_for_each(|argv| {
        let mut cmd = Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .timeout(BUILD_TIMEOUT);
        cmd.cancel = cancel.cloned();
        let f = exec::run_lines(&cmd, |l| on_line(l))?;
        if f.code == Some(0) {
            Ok(())
        } else {
            Err(BuildError::Deliver {
                image: image.name.clone(),
                command: cmd.display(),
                detail: f
                    .stdout
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
                    .to_owned(),
            })
        }
    });
    if let Some(a) = &d.archive {
        let _ = std::fs::remove_file(a);
    }
    result
}

/// How many builds run at once by default: half the CPUs, at least two. Builds spend much of
/// their time writing layers and archives, and the images of one Helm release deploy once all
/// are built: one after the other, a fast image waited for a slow one's whole build (the todo
/// sample's backend for its frontend's, on a real node).
pub fn default_parallelism() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(2)
}

/// Builds `images` with up to `limit` builds at a time. `on_line(image, line)` receives every
/// builder's output as it comes; the results come back in the order of `images`.
pub fn build_all(
    cfg: &Config,
    images: &[&Image],
    to: Destination<'_>,
    limit: usize,
    on_line: &(dyn Fn(&str, &str) + Sync),
) -> Vec<Result<Built, BuildError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Built, BuildError>>>> =
        std::sync::Mutex::new((0..images.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..limit.max(1).min(images.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(img) = images.get(i) else { break };
                    let r = build_one(cfg, img, to, None, &mut |l| on_line(&img.name, l));
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(BuildError::NoStore {
                    image: "?".into(),
                    why: "a build worker stopped early".into(),
                })
            })
        })
        .collect()
}

/// The images to build: all, or those named (unknown names are an error listing the known).
pub fn select<'a>(cfg: &'a Config, names: &[String]) -> Result<Vec<&'a Image>, String> {
    if names.is_empty() {
        return Ok(cfg.images.iter().collect());
    }
    let known: BTreeMap<&str, &Image> = cfg.images.iter().map(|i| (i.name.as_str(), i)).collect();
    names
        .iter()
        .map(|n| {
            known.get(n.as_str()).copied().ok_or_else(|| {
                format!(
                    "no image `{n}` in the config; images: {}",
                    known.keys().copied().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minikube_image_ls_matches_normalised_names() {
        let table = "|-----------------------------------------|---------------|---------------|--------|\n|                  Image                  |      Tag      |   Image ID    |  Size  |\n|-----------------------------------------|---------------|---------------|--------|\n| docker.io/library/hello                 | devenv-abc123 | 4a2f8e1b9c0d  | 19B    |\n| registry.k8s.io/pause                   | 3.10          | 873ed7510279  | 736kB  |\n";
        assert!(listed_in_minikube(table, "hello:devenv-abc123"));
        assert!(!listed_in_minikube(table, "hello:devenv-zzz"));
        assert!(listed_in_minikube(table, "registry.k8s.io/pause:3.10"));
        assert!(listed_in_minikube(
            "docker.io/library/hello:devenv-abc123\n",
            "hello:devenv-abc123"
        ));
    }

    /// A registry's port is no tag (issue 25 point 5: references are taken apart by
    /// `objects::ImageRef` alone): `localhost:5000/app` is listed under tag `latest`.
    #[test]
    fn a_registry_port_is_no_tag_when_looking_an_image_up() {
        let table = "| localhost:5000/app | latest | 4a2f8e1b9c0d | 19B |\n";
        assert!(listed_in_minikube(table, "localhost:5000/app"));
        assert!(listed_in_minikube(table, "localhost:5000/app:latest"));
        assert!(!listed_in_minikube(table, "localhost:5000/app:1"));
    }

    #[test]
    fn failed_steps_in_each_builders_output() {
        let buildkit = "#7 [builder 3/4] RUN pip install -r requirements.txt\n#7 0.412 ERROR: No matching distribution\n------\n > [builder 3/4] RUN pip install -r requirements.txt:\n------\nERROR: failed to solve: process \"/bin/sh -c pip install -r requirements.txt\" did not complete successfully: exit code: 1\n";
        assert_eq!(
            failed_step(buildkit).as_deref(),
            Some("[builder 3/4] RUN pip install -r requirements.txt")
        );
        let legacy = "Step 1/3 : FROM scratch\n ---> \nStep 2/3 : COPY missing.txt /\nCOPY failed: file not found in build context\n";
        assert_eq!(
            failed_step(legacy).as_deref(),
            Some("Step 2/3 : COPY missing.txt /")
        );
        let buildah = "STEP 1/2: FROM scratch\nSTEP 2/2: COPY missing.txt /\nError: building at STEP \"COPY missing.txt /\": checking on sources under \"/ctx\": copier: stat: \"/missing.txt\": no such file or directory\n";
        assert_eq!(
            failed_step(buildah).as_deref(),
            Some("STEP 2/2: COPY missing.txt /")
        );
        // buildah and podman with several stages (captured from buildah 1.28).
        let multi = "[1/2] STEP 1/2: FROM scratch AS deps\n[1/2] STEP 2/2: COPY a.txt /a.txt\n[2/2] STEP 1/3: FROM scratch AS runner\n[2/2] STEP 2/3: COPY --from=deps /a.txt /a.txt\n[2/2] STEP 3/3: COPY public ./public\nError: building at STEP \"COPY public ./public\": checking on sources under \"/tmp/ms\": copier: stat: \"/public\": no such file or directory\n";
        assert_eq!(
            failed_step(multi).as_deref(),
            Some("stage 2/2 `runner`, STEP 3/3: COPY public ./public")
        );
        let unnamed = "[1/2] STEP 1/1: FROM scratch\n[2/2] STEP 1/2: FROM scratch\n[2/2] STEP 2/2: COPY x /\n";
        assert_eq!(
            failed_step(unnamed).as_deref(),
            Some("stage 2/2, STEP 2/2: COPY x /")
        );
        assert_eq!(failed_step("nothing useful\n"), None);
    }
}
