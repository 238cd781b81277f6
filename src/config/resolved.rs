//! The validated, resolved form of `devenv.toml`: absolute paths, every default filled in.
//! Everything after config loading works from this form only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use super::model::{BuilderKind, Provider, Restart, TriggerMode};
pub use super::units::PortForward;

pub const DEFAULT_CPUS: u32 = 4;
pub const DEFAULT_MEMORY_MB: u64 = 8192;
pub const DEFAULT_PROFILE: &str = "minikube";
pub const DEFAULT_WEB_PORT: u16 = 10350;
pub const DEFAULT_LOG_BUFFER_MB: u64 = 1;
pub const MAX_LOG_BUFFER_MB: u64 = 1024;
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_NAMESPACE: &str = "default";
/// minikube refuses to start with less memory than this.
pub const MINIKUBE_MIN_MEMORY_MB: u64 = 1800;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Absolute path of the config file.
    pub file: PathBuf,
    /// The directory every relative path in the file is resolved against.
    pub root: PathBuf,
    pub project: String,
    pub cluster: Cluster,
    pub images: Vec<Image>,
    pub secrets: Vec<Secret>,
    pub deploy: Deploy,
    pub resources: Vec<Resource>,
    pub locals: Vec<LocalResource>,
    pub web: Web,
    pub watch: Watch,
    pub builders: Builders,
    /// Images that no manifest's `image:` and no `[[deploy.helm.images]]` entry uses: built,
    /// they run nowhere (`config check` warns, `up --ci` fails).
    pub undeployed_images: Vec<String>,
    /// Where values sit in the file, for problems found after loading.
    #[serde(skip)]
    pub places: Places,
}

/// Where the config's values sit in its file, so that problems found after loading (the
/// chart's checks) are told with the file, line and column like any config error. Keys:
/// `resource.NAME.workload`, `image.NAME.target`, `secret.NAME`, `secret.NAME.keys.KEY`,
/// and of each Helm release N (0 for the first): `helm.N.chart`, `helm.N.image.M` (and
/// `.repository`, `.tag`, `.value`), `helm.N.values_from_env.KEY` (see [`Helm::place`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    /// The file as the user named it.
    pub shown: PathBuf,
    pub source: String,
    pub spans: BTreeMap<String, std::ops::Range<usize>>,
}

impl Config {
    /// An error about the value at `place` (see [`Places`]); the file alone when the place
    /// is unknown.
    pub fn error_at(&self, place: &str, message: impl Into<String>) -> super::Diagnostic {
        super::Diagnostic::at(
            &self.places.shown,
            &self.places.source,
            self.places.spans.get(place).cloned(),
            message.into(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub provider: Provider,
    pub profile: String,
    pub cpus: u32,
    pub memory_mb: u64,
    pub disk_mb: Option<u64>,
    pub driver: Option<String>,
    pub kubernetes_version: Option<String>,
    pub container_runtime: Option<String>,
    pub start_flags: Vec<String>,
    pub addons: Vec<String>,
    pub start_timeout: Duration,
    /// The kube context devenv uses: the profile's for Minikube, the configured one otherwise.
    pub context: String,
    /// Contexts devenv may write to besides local ones: the Minikube profile's, and those the
    /// config lists in `allowed_contexts`.
    pub allowed_contexts: Vec<String>,
    pub registry: Option<String>,
    /// Pushes go to the registry over plain HTTP: it is on this machine (127.0.0.1,
    /// localhost, ::1), as Docker treats such registries, or `insecure_registry = true`.
    pub insecure_registry: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub name: String,
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub watch: Vec<PathBuf>,
    /// Extra patterns (`.dockerignore` syntax, relative to the context) whose changes never
    /// trigger a rebuild and do not count in the content tag.
    pub ignore: Vec<String>,
    pub builder: BuilderKind,
    pub command: Option<String>,
    /// Live update, when on: saved files go into the running containers.
    pub live_update: Option<LiveUpdate>,
    /// The CMD the image is built with for development, if any (like Tilt's `entrypoint`):
    /// the app's own reloader then picks up synced files.
    pub dev_command: Vec<String>,
}

/// What the config says of live update beside the Dockerfile (which gives the sync map).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveUpdate {
    /// Explicit `local -> remote` pairs (local relative to the context); when given, they
    /// replace the Dockerfile's copies.
    pub sync: Vec<(String, String)>,
    /// `(command, patterns)`: run in the container when one of the patterns changed.
    pub run: Vec<(String, Vec<String>)>,
    /// Patterns (relative to the context) whose change means a full build.
    pub fall_back_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub name: String,
    pub namespace: String,
    pub env_files: Vec<PathBuf>,
    /// More Secret keys, each taking the value of a .env key (Secret key -> .env key); the
    /// .env's own keys stay.
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deploy {
    pub namespace: String,
    /// The Helm releases, in the config's order (none, one, or several).
    pub helm: Vec<Helm>,
    /// Manifest files, globs expanded, in a stable order.
    pub manifests: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Helm {
    pub chart: PathBuf,
    pub release: String,
    /// Where the release goes (`[deploy] namespace` unless the release names its own).
    pub namespace: String,
    pub values: Vec<PathBuf>,
    pub set: BTreeMap<String, String>,
    /// The .env files `values_from_env` reads (later ones override earlier ones).
    pub env_files: Vec<PathBuf>,
    /// Chart values taken from .env keys (values key -> .env key). They reach helm in a
    /// values file only the user can read, never on a command line.
    pub values_from_env: BTreeMap<String, String>,
    pub images: Vec<HelmImage>,
}

impl Helm {
    /// The key of `what` (`chart`, `image.M.tag`, …) of the release numbered `n` among the
    /// config's releases, in [`Places`].
    pub fn place(n: usize, what: &str) -> String {
        format!("helm.{n}.{what}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelmImage {
    pub image: String,
    pub keys: HelmImageKeys,
}

/// Which chart values receive an image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HelmImageKeys {
    /// `<repository>=name` and `<tag>=devenv-…`, the layout `helm create` generates.
    RepositoryAndTag { repository: String, tag: String },
    /// One key that takes the whole `name:tag` reference.
    Reference { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl WorkloadKind {
    pub const ALL: [(&'static str, WorkloadKind); 4] = [
        ("deployment", WorkloadKind::Deployment),
        ("statefulset", WorkloadKind::StatefulSet),
        ("daemonset", WorkloadKind::DaemonSet),
        ("job", WorkloadKind::Job),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::Job => "job",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub name: String,
    pub workload: Workload,
    pub namespace: String,
    /// The Helm release the config says renders its workload (with one release, a workload
    /// no manifest holds is that release's without saying so; see `project::released`).
    pub release: Option<String>,
    /// Images this workload runs; `None` means "find out from the rendered manifests".
    pub images: Option<Vec<String>>,
    pub port_forwards: Vec<PortForward>,
    pub depends_on: Vec<String>,
    pub readiness_timeout: Duration,
    pub trigger: TriggerMode,
    pub links: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalResource {
    pub name: String,
    pub cmd: Option<String>,
    pub serve_cmd: Option<String>,
    /// When the serve command is started again.
    pub restart: Restart,
    pub deps: Vec<PathBuf>,
    pub workdir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub trigger: TriggerMode,
    pub links: Vec<String>,
}

/// Settings of each builder (`[builders.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Builders {
    pub docker: BuilderSettings,
    pub buildah: BuilderSettings,
    pub podman: BuilderSettings,
}

impl Builders {
    /// The settings of `kind` (custom and minikube builders take none).
    pub fn of(&self, kind: BuilderKind) -> Option<&BuilderSettings> {
        match kind {
            BuilderKind::Docker => Some(&self.docker),
            BuilderKind::Buildah => Some(&self.buildah),
            BuilderKind::Podman => Some(&self.podman),
            BuilderKind::Minikube | BuilderKind::Custom => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuilderSettings {
    /// More arguments to the build command.
    pub args: Vec<String>,
    /// Environment of the build process (`BUILDAH_ISOLATION` from `isolation` included).
    pub env: BTreeMap<String, String>,
    /// `--storage-driver` for every command of buildah or podman.
    pub storage_driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Web {
    pub port: u16,
    pub open_browser: bool,
    /// How much log each resource keeps (the oldest lines go first), in bytes.
    pub log_buffer: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    pub debounce: Duration,
    /// Patterns relative to the project root whose changes never trigger anything.
    pub ignore: Vec<String>,
}

impl Image {
    /// Whether this image's builder talks to a Docker daemon (and so, on Minikube, needs its
    /// docker-env): docker builds, and custom commands, which are given that environment.
    pub fn uses_docker_daemon(&self) -> bool {
        matches!(self.builder, BuilderKind::Docker | BuilderKind::Custom)
    }
}

impl Config {
    /// The namespaces devenv deploys into: `[deploy] namespace` first, then the others that
    /// secrets and resources name, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut extra: Vec<String> = self
            .secrets
            .iter()
            .map(|s| &s.namespace)
            .chain(self.resources.iter().map(|r| &r.namespace))
            .chain(self.deploy.helm.iter().map(|h| &h.namespace))
            .filter(|ns| **ns != self.deploy.namespace)
            .cloned()
            .collect();
        extra.sort_unstable();
        extra.dedup();
        std::iter::once(self.deploy.namespace.clone())
            .chain(extra)
            .collect()
    }

    /// `path` relative to the project root when it lies inside it, for display and plans.
    pub fn rel(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(p) if p.as_os_str().is_empty() => ".".to_owned(),
            Ok(p) => p.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// Whether anything needs a Kubernetes cluster (and so Docker/Minikube) at all.
    pub fn needs_cluster(&self) -> bool {
        !self.images.is_empty()
            || !self.resources.is_empty()
            || !self.secrets.is_empty()
            || !self.deploy.helm.is_empty()
            || !self.deploy.manifests.is_empty()
    }

    /// The Helm release named `name`.
    pub fn release(&self, name: &str) -> Option<&Helm> {
        self.deploy.helm.iter().find(|h| h.release == name)
    }
}
