//! The ordered plan `devenv up` carries out: a run of the engine's own reducer over the
//! project's graph (`project`), every command succeeding at once, each command turned into
//! the steps that carry it out.
//!
//! Pure apart from reading the files the config names (to hash build contexts, to read the
//! manifests): no process is started and nothing is contacted, so `devenv up --dry-run` shows
//! what `up` will do, in its order, and tests can pin it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::units::format_duration;
use crate::config::{BuilderKind, Config, Image, Provider, TriggerMode};
use crate::deploy::helm;
use crate::doctor::Needs;
use crate::engine::state::{Command, Event, State};
use crate::image;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub project: String,
    /// The config file, relative to the directory devenv was started in when below it.
    pub config: String,
    pub steps: Vec<Step>,
    /// The engine's commands the steps come from, in the order `up` issues them
    /// ([`crate::engine::state::Command::summary`]).
    pub commands: Vec<String>,
    /// What the plan was computed from: the manifests read once, for `config check` and
    /// the bring-up.
    #[serde(skip)]
    pub shape: std::sync::Arc<crate::project::Shape>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Machine checks that must pass before anything is touched.
    Doctor {
        checks: Vec<String>,
    },
    /// Bring the Minikube profile up at the configured size.
    Cluster {
        profile: String,
        command: Vec<String>,
        cpus: u32,
        memory_mb: u64,
    },
    /// Enable the addons that are off.
    Addons {
        profile: String,
        addons: Vec<String>,
    },
    /// Read Minikube's Docker environment for build processes.
    DockerEnv {
        command: Vec<String>,
    },
    /// The kube context every write goes to, and the contexts allowed.
    Context {
        context: String,
        allowed: Vec<String>,
    },
    Namespace {
        name: String,
        /// The chart renders this Namespace: `up` makes it with the metadata Helm adopts, and
        /// Helm owns it (and removes it with the release).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        for_helm: bool,
    },
    /// A Secret made from .env files; values are never shown.
    Secret {
        name: String,
        namespace: String,
        env_files: Vec<String>,
    },
    Build {
        image: String,
        tag: String,
        reference: String,
        builder: BuilderKind,
        command: Vec<String>,
        /// Files and bytes in the context after `.dockerignore`.
        files: usize,
        bytes: u64,
        /// True when Minikube's docker-env is given to the build process.
        docker_env: bool,
        /// Further environment for the build process (a custom builder's target reference).
        env: BTreeMap<String, String>,
        /// `[[local]]` steps that run before this build and feed it: the tag is the
        /// context's now, and what they write into it can change the tag `up` builds.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fed_by: Vec<String>,
    },
    /// Make a built image available to the cluster (image load or registry push).
    Deliver {
        image: String,
        commands: Vec<Vec<String>>,
    },
    /// Render the chart first (to see what it creates), then install or upgrade it.
    Helm {
        release: String,
        render: Vec<String>,
        command: Vec<String>,
    },
    /// Server-side apply through the Kubernetes API (devenv's own client, field manager
    /// `devenv`), not a kubectl command: what `up` really does.
    Apply {
        /// The resources whose objects these are; none for what is no resource's workload
        /// (applied with the first deploy).
        resources: Vec<String>,
        /// `Kind/name` of each object.
        objects: Vec<String>,
        files: Vec<String>,
        /// Image repository -> reference it is rewritten to.
        images: BTreeMap<String, String>,
        context: String,
        namespace: String,
    },
    /// Wait for a workload to be ready, after the resources it depends on.
    Wait {
        resource: String,
        workload: String,
        namespace: String,
        timeout: String,
        after: Vec<String>,
        trigger: TriggerMode,
    },
    /// Run a local resource.
    Local {
        resource: String,
        cmd: Option<String>,
        serve_cmd: Option<String>,
        workdir: String,
        after: Vec<String>,
        trigger: TriggerMode,
    },
    PortForward {
        resource: String,
        workload: String,
        namespace: String,
        local: u16,
        remote: u16,
    },
    Web {
        url: String,
    },
    Watch {
        paths: Vec<String>,
        debounce: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// An image's build context could not be hashed.
    #[error("image `{image}`: {source}")]
    Context {
        image: String,
        #[source]
        source: image::context::ContextError,
    },
    /// An ignore file the watcher reads could not be read or parsed.
    #[error("{0}")]
    Watch(image::context::ContextError),
    /// The manifests could not be read.
    #[error("{0}")]
    Project(crate::project::ProjectError),
}

/// The checks `devenv doctor` runs before `up` for this config (what doctor needs decides).
pub fn doctor_checks(cfg: &Config) -> Vec<String> {
    let needs = Needs::of(Some(cfg));
    let mut checks = vec!["config".to_owned()];
    let tools: Vec<&str> = [
        (needs.docker_client, "docker"),
        (needs.minikube, "minikube"),
        (needs.cluster, "kubectl"),
        (needs.helm, "helm"),
        (needs.buildah, "buildah"),
        (needs.podman, "podman"),
    ]
    .into_iter()
    .filter_map(|(needed, tool)| needed.then_some(tool))
    .collect();
    if !tools.is_empty() {
        checks.push(format!("tools ({})", tools.join(", ")));
    }
    if needs.docker_daemon {
        checks.push("docker daemon".into());
    }
    if needs.minikube {
        checks.push(format!(
            "host resources for {} CPUs / {} MB",
            cfg.cluster.cpus, cfg.cluster.memory_mb
        ));
        checks.push(format!("minikube profile `{}`", cfg.cluster.profile));
    }
    if needs.cluster {
        checks.push(format!("kube context `{}`", cfg.cluster.context));
    }
    checks.push("inotify limits".into());
    let mut ports: Vec<u16> = cfg
        .resources
        .iter()
        .flat_map(|r| r.port_forwards.iter().map(|p| p.local))
        .collect();
    // Port 0 is "any free port" (the page's, in tests): nothing to check.
    ports.push(cfg.web.port);
    ports.retain(|p| *p != 0);
    ports.sort_unstable();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    match ports.len() {
        0 => {}
        1 => checks.push(format!("port {} free", ports[0])),
        _ => checks.push(format!("ports {} free", ports.join(", "))),
    }
    checks
}

/// The engine's commands on a run of `graph` where every command succeeds at once, in the
/// order the reducer issues them (answered first in, first out).
pub fn engine_commands(graph: crate::engine::state::Graph) -> Vec<Command> {
    use std::collections::VecDeque;
    use std::time::Duration;
    // Each command is answered once; the bound stops a reducer that would never settle.
    let limit = 8 * (graph.resources.len() + graph.images.len()) + 16;
    let mut s = State::new(graph);
    let mut at = 0u64;
    let mut next = |s: &mut State, ev: Event| {
        at += 1;
        s.reduce(Duration::from_millis(at), ev)
    };
    let mut queue: VecDeque<Command> = next(&mut s, Event::Start).into();
    let mut seen = Vec::new();
    while let Some(c) = queue.pop_front() {
        if seen.len() == limit {
            break;
        }
        let answers: Vec<Event> = match &c {
            Command::Doctor => vec![Event::DoctorDone { result: Ok(()) }],
            Command::PrepareCluster => vec![Event::ClusterReady],
            Command::Build { image, generation } => vec![Event::BuildDone {
                image: image.clone(),
                generation: *generation,
                result: Ok(format!("{image}:planned")),
            }],
            Command::Deploy { generation, .. } => vec![Event::DeployDone {
                generation: *generation,
                result: Ok(()),
            }],
            Command::Wait { resources } => resources
                .iter()
                .map(|r| Event::Ready {
                    resource: r.clone(),
                })
                .collect(),
            Command::Run {
                resource,
                generation,
            } => vec![Event::RunDone {
                resource: resource.clone(),
                generation: *generation,
                result: Ok(()),
            }],
            _ => Vec::new(),
        };
        seen.push(c);
        for ev in answers {
            queue.extend(next(&mut s, ev));
        }
    }
    seen
}

/// `Kind/name` of a manifest object, control characters escaped.
fn object_name(doc: &serde_norway::Value) -> String {
    let field = |v: Option<&serde_norway::Value>| {
        crate::out::printable(v.and_then(serde_norway::Value::as_str).unwrap_or("?")).into_owned()
    };
    format!(
        "{}/{}",
        field(doc.get("kind")),
        field(doc.get("metadata").and_then(|m| m.get("name")))
    )
}

impl Plan {
    /// Marks the namespaces the chart renders (found by rendering it, see `check`).
    /// Marks the namespaces the charts render (`(namespace, release)`): made for Helm.
    pub fn namespaces_for_helm(&mut self, own: &[(String, String)]) {
        for s in &mut self.steps {
            if let Step::Namespace { name, for_helm } = s {
                *for_helm = own.iter().any(|(ns, _)| ns == name);
            }
        }
    }
}

/// Computes the plan for `cfg`. `config_shown` is how the config file is named in output.
pub fn compute(cfg: &Config, config_shown: &str) -> Result<Plan, PlanError> {
    let shape = crate::project::shape(cfg).map_err(PlanError::Project)?;
    compute_with(cfg, config_shown, std::sync::Arc::new(shape))
}

/// [`compute`] from the project's shape, read once for this config version.
pub fn compute_with(
    cfg: &Config,
    config_shown: &str,
    shape: std::sync::Arc<crate::project::Shape>,
) -> Result<Plan, PlanError> {
    let mut steps = vec![Step::Doctor {
        checks: doctor_checks(cfg),
    }];
    // What `up` does to bring the cluster up (Command::PrepareCluster).
    let mut bring_up = Vec::new();
    let minikube = cfg.cluster.provider == Provider::Minikube;
    if cfg.needs_cluster() {
        if minikube {
            bring_up.push(Step::Cluster {
                profile: cfg.cluster.profile.clone(),
                command: crate::cluster::minikube::start_command(cfg),
                cpus: cfg.cluster.cpus,
                memory_mb: cfg.cluster.memory_mb,
            });
            if !cfg.cluster.addons.is_empty() {
                bring_up.push(Step::Addons {
                    profile: cfg.cluster.profile.clone(),
                    addons: cfg.cluster.addons.clone(),
                });
            }
            let uses_docker_env = cfg.images.iter().any(Image::uses_docker_daemon);
            if uses_docker_env {
                bring_up.push(Step::DockerEnv {
                    command: [
                        "minikube",
                        "-p",
                        &cfg.cluster.profile,
                        "docker-env",
                        "--shell",
                        "none",
                        "-o",
                        "json",
                    ]
                    .map(String::from)
                    .into(),
                });
            }
        }
        bring_up.push(Step::Context {
            context: cfg.cluster.context.clone(),
            allowed: cfg.cluster.allowed_contexts.clone(),
        });
        bring_up.extend(cfg.namespaces().into_iter().map(|name| Step::Namespace {
            name,
            for_helm: false,
        }));
    }
    for s in &cfg.secrets {
        bring_up.push(Step::Secret {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            env_files: s.env_files.iter().map(|f| cfg.rel(f)).collect(),
        });
    }

    let locals: BTreeMap<&str, &crate::config::LocalResource> =
        cfg.locals.iter().map(|l| (l.name.as_str(), l)).collect();
    let resources: BTreeMap<&str, &crate::config::Resource> =
        cfg.resources.iter().map(|r| (r.name.as_str(), r)).collect();
    let local_step = |l: &crate::config::LocalResource| Step::Local {
        resource: l.name.clone(),
        cmd: l.cmd.clone(),
        serve_cmd: l.serve_cmd.clone(),
        workdir: cfg.rel(&l.workdir),
        after: l.depends_on.clone(),
        trigger: l.trigger,
    };
    // Each image's build, worked out once (its context hashed) for the step that builds it.
    let mut builds: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    // image name -> (repository, tag)
    let mut built: BTreeMap<String, (String, String)> = BTreeMap::new();
    for img in &cfg.images {
        let digest = image::context::digest(img).map_err(|source| PlanError::Context {
            image: img.name.clone(),
            source,
        })?;
        let reference = image::reference(cfg, img, &digest.tag);
        let mut these = vec![Step::Build {
            image: img.name.clone(),
            tag: digest.tag.clone(),
            reference: reference.clone(),
            builder: img.builder,
            command: image::command(cfg, img, &reference),
            files: digest.files,
            bytes: digest.bytes,
            docker_env: minikube && img.uses_docker_daemon(),
            env: image::extra_env(cfg, img, &reference).into_iter().collect(),
            fed_by: Vec::new(),
        }];
        if let Some(d) = image::delivery(cfg, img, &reference) {
            these.push(Step::Deliver {
                image: img.name.clone(),
                commands: d.commands,
            });
        }
        builds.insert(img.name.clone(), these);
        built.insert(img.name.clone(), (image::repository(cfg, img), digest.tag));
    }
    let images: BTreeMap<String, String> = built
        .iter()
        .map(|(name, (repo, tag))| (name.clone(), format!("{repo}:{tag}")))
        .collect();
    let apply = |docs: Vec<&crate::project::Doc>, resources: &[String]| -> Option<Step> {
        if docs.is_empty() {
            return None;
        }
        let mut files: Vec<String> = Vec::new();
        for d in &docs {
            if !files.contains(&d.file) {
                files.push(d.file.clone());
            }
        }
        Some(Step::Apply {
            resources: resources.to_vec(),
            objects: docs.iter().map(|d| object_name(&d.doc)).collect(),
            files,
            images: images.clone(),
            context: cfg.cluster.context.clone(),
            namespace: cfg.deploy.namespace.clone(),
        })
    };

    // The steps in the order `up` issues them: the engine's own reducer, run over the
    // project's graph with every command succeeding at once.
    let graph = crate::project::graph(cfg, &shape.resource_images, &shape.released);
    let mut ran_locals = BTreeSet::new();
    let issued = engine_commands(graph);
    let commands = issued.iter().map(Command::summary).collect();
    for command in issued {
        match command {
            Command::Doctor => {} // the first step, above
            Command::PrepareCluster => steps.append(&mut bring_up.clone()),
            Command::Run { resource, .. } => {
                if let Some(l) = locals.get(resource.as_str()) {
                    steps.push(local_step(l));
                    ran_locals.insert(resource);
                }
            }
            Command::Build { image, .. } => {
                // The locals that ran before it and that a resource running it waits for.
                let fed_by: Vec<String> = cfg
                    .resources
                    .iter()
                    .filter(|r| {
                        shape
                            .resource_images
                            .get(&r.name)
                            .is_some_and(|i| i.contains(&image))
                    })
                    .flat_map(|r| r.depends_on.iter())
                    .filter(|d| ran_locals.contains(*d))
                    .cloned()
                    .collect::<BTreeSet<String>>()
                    .into_iter()
                    .collect();
                for mut step in builds.get(&image).into_iter().flatten().cloned() {
                    if let Step::Build { fed_by: f, .. } = &mut step {
                        f.clone_from(&fed_by);
                    }
                    steps.push(step);
                }
            }
            Command::Deploy {
                resources: names,
                files,
                shared,
                ..
            } => {
                // As workers::deploy does it, by the same rule.
                let parts = crate::project::deploy_parts(
                    cfg,
                    &shape.docs,
                    &shape.released,
                    &names,
                    &files,
                    shared,
                );
                steps.extend(apply(parts.shared, &[]));
                for h in &parts.releases {
                    steps.push(Step::Helm {
                        release: h.release.clone(),
                        render: helm::template_command(cfg, h, &built),
                        command: helm::upgrade_command(cfg, h, &built),
                    });
                }
                steps.extend(apply(parts.own, &names));
            }
            Command::Wait { resources: names } => {
                for name in names {
                    if let Some(r) = resources.get(name.as_str()) {
                        steps.push(Step::Wait {
                            resource: r.name.clone(),
                            workload: r.workload.to_string(),
                            namespace: r.namespace.clone(),
                            timeout: format_duration(r.readiness_timeout),
                            after: r.depends_on.clone(),
                            trigger: r.trigger,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    // What runs only when triggered, after what `up` starts by itself.
    for l in cfg.locals.iter().filter(|l| !ran_locals.contains(&l.name)) {
        steps.push(local_step(l));
    }
    for r in &cfg.resources {
        for pf in &r.port_forwards {
            steps.push(Step::PortForward {
                resource: r.name.clone(),
                workload: r.workload.to_string(),
                namespace: r.namespace.clone(),
                local: pf.local,
                remote: pf.remote,
            });
        }
    }
    steps.push(Step::Web {
        url: format!("http://127.0.0.1:{}/", cfg.web.port),
    });
    // What the watcher of `up` watches, from its own rules.
    let paths: Vec<String> = crate::watch::Rules::new(cfg)
        .map_err(PlanError::Watch)?
        .paths()
        .iter()
        .map(|p| cfg.rel(p))
        .collect();
    steps.push(Step::Watch {
        paths,
        debounce: format_duration(cfg.watch.debounce),
    });
    Ok(Plan {
        project: cfg.project.clone(),
        config: config_shown.to_owned(),
        steps,
        commands,
        shape,
    })
}

/// Quotes one argument for a POSIX shell when it needs it, so printed commands can be pasted.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KB", n as f64 / (1u64 << 10) as f64),
        n => format!("{n} B"),
    }
}

impl Plan {
    /// The plan as numbered lines for a terminal: a verb, then the command or object.
    pub fn render(&self) -> String {
        let mut out = format!(
            "devenv up plan for project `{}` (config: {})\n\n",
            self.project, self.config
        );
        let indent = " ".repeat(16);
        for (i, step) in self.steps.iter().enumerate() {
            let (verb, text, notes) = describe(step);
            let _ = writeln!(out, "{:>3}. {verb:<10} {text}", i + 1);
            for n in notes {
                let _ = writeln!(out, "{indent}{n}");
            }
        }
        out
    }
}

fn describe(step: &Step) -> (&'static str, String, Vec<String>) {
    match step {
        Step::Doctor { checks } => (
            "doctor",
            checks.join("; "),
            vec!["stops here on any failure, before touching anything".into()],
        ),
        Step::Cluster {
            profile,
            command,
            cpus,
            memory_mb,
        } => (
            "cluster",
            shell_line(command),
            vec![format!(
                "only if profile `{profile}` is absent; a stopped profile is started as it is, and a running one must have {cpus} CPUs and {memory_mb} MB"
            )],
        ),
        Step::Addons { profile, addons } => (
            "addons",
            format!(
                "minikube -p {profile} addons enable <addon> for each of: {}",
                addons.join(", ")
            ),
            vec!["only those `minikube addons list -o json` shows disabled".into()],
        ),
        Step::DockerEnv { command } => (
            "docker-env",
            shell_line(command),
            vec!["given to build processes only; your shell is left alone".into()],
        ),
        Step::Context { context, allowed } => (
            "context",
            format!("kube context `{context}`"),
            vec![if allowed.is_empty() {
                "writes refused unless it is a local cluster's context".to_owned()
            } else {
                format!(
                    "writes refused unless it is a local cluster's context or one of: {}",
                    allowed.join(", ")
                )
            }],
        ),
        Step::Namespace {
            name,
            for_helm: false,
        } => ("namespace", format!("create `{name}` if missing"), vec![]),
        Step::Namespace {
            name,
            for_helm: true,
        } => (
            "namespace",
            format!("create `{name}` for Helm if missing"),
            vec![
                "the chart renders it: made with the metadata Helm adopts; the release owns it"
                    .into(),
            ],
        ),
        Step::Secret {
            name,
            namespace,
            env_files,
        } => (
            "secret",
            format!("{name} in {namespace} from {}", env_files.join(", ")),
            vec!["server-side apply; values are never shown".into()],
        ),
        Step::Build {
            reference,
            command,
            files,
            bytes,
            docker_env,
            env,
            fed_by,
            ..
        } => {
            let mut notes = vec![format!("context: {files} files, {}", human_bytes(*bytes))];
            if !fed_by.is_empty() {
                notes.push(format!(
                    "tag from the context as it is now: {} run{} first and what {} into it changes the tag",
                    fed_by.join(", "),
                    if fed_by.len() == 1 { "s" } else { "" },
                    if fed_by.len() == 1 { "it writes" } else { "they write" }
                ));
            }
            if *docker_env {
                notes.push("env: Minikube's docker-env".into());
            }
            for (k, v) in env {
                notes.push(format!("env: {k}={v}"));
            }
            notes.push("skipped when the image already exists with this tag".into());
            (
                "build",
                format!("{reference}  <-  {}", shell_line(command)),
                notes,
            )
        }
        Step::Deliver { commands, .. } => (
            "deliver",
            commands
                .iter()
                .map(|c| shell_line(c))
                .collect::<Vec<_>>()
                .join(" && "),
            vec![],
        ),
        Step::Helm {
            render, command, ..
        } => (
            "deploy",
            shell_line(command),
            vec![format!("rendered first with: {}", shell_line(render))],
        ),
        Step::Apply {
            resources,
            objects,
            files,
            images,
            context,
            namespace,
        } => {
            let mut notes = vec![
                "server-side apply through the Kubernetes API (field manager `devenv`); objects that name no namespace go to the deploy's".to_owned(),
            ];
            for (repo, r) in images {
                notes.push(format!("image {repo} -> {r}"));
            }
            let whose = if resources.is_empty() {
                String::new()
            } else {
                format!("{}: ", resources.join(", "))
            };
            (
                "deploy",
                format!(
                    "{whose}apply {} from {} in {namespace} (context `{context}`)",
                    objects.join(", "),
                    files.join(", ")
                ),
                notes,
            )
        }
        Step::Wait {
            resource,
            workload,
            namespace,
            timeout,
            after,
            trigger,
        } => {
            let mut text =
                format!("{resource}: {workload} in {namespace} ready (timeout {timeout})");
            if !after.is_empty() {
                text.push_str(&format!(", after {}", after.join(", ")));
            }
            let notes = match trigger {
                TriggerMode::Manual => vec!["trigger: manual".into()],
                TriggerMode::Auto => vec![],
            };
            ("wait", text, notes)
        }
        Step::Local {
            resource,
            cmd,
            serve_cmd,
            workdir,
            after,
            trigger,
        } => {
            let mut parts = Vec::new();
            if let Some(c) = cmd {
                parts.push(format!("run `{c}`"));
            }
            if let Some(s) = serve_cmd {
                parts.push(format!("serve `{s}`"));
            }
            let mut text = format!("{resource}: {} in {workdir}", parts.join(", then "));
            if !after.is_empty() {
                text.push_str(&format!(", after {}", after.join(", ")));
            }
            let notes = match trigger {
                TriggerMode::Manual => vec!["trigger: manual".into()],
                TriggerMode::Auto => vec![],
            };
            ("local", text, notes)
        }
        Step::PortForward {
            resource,
            workload,
            namespace,
            local,
            remote,
        } => (
            "forward",
            format!("127.0.0.1:{local} -> {workload}:{remote} in {namespace} ({resource})"),
            vec![],
        ),
        Step::Web { url } => ("web", url.clone(), vec![]),
        Step::Watch { paths, debounce } => (
            "watch",
            format!("{} (debounce {debounce})", paths.join(", ")),
            vec![],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan lists the checks doctor really runs: a kvm2 cluster with buildah images needs
    /// no host Docker at all.
    #[test]
    fn planned_checks_follow_what_doctor_needs() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("app"))?;
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n")?;
        let text = "[cluster]\ndriver = \"kvm2\"\n\n[[image]]\nname = \"app\"\ncontext = \"app\"\nbuilder = \"buildah\"\n";
        let file = dir.path().join("devenv.toml");
        let loaded = crate::config::parse(&file, &file, text).unwrap_or_else(|e| panic!("{e}"));
        let checks = doctor_checks(&loaded.config);
        assert_eq!(checks[1], "tools (minikube, kubectl, buildah)");
        assert!(!checks.iter().any(|c| c.contains("docker")), "{checks:?}");
        assert!(
            checks.contains(&"minikube profile `minikube`".to_owned()),
            "{checks:?}"
        );
        Ok(())
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a-b.c/d:e=f"), "a-b.c/d:e=f");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
