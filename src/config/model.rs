//! The serde model of `devenv.toml`, exactly as written in the file.
//!
//! Every table denies unknown keys so a typo is an error, never a silently ignored setting.
//! Values that later checks must point at carry their byte span (`Spanned`), so semantic
//! errors can name the line and column just like syntax errors do.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

use super::units;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub project: Option<RawProject>,
    pub cluster: Option<RawCluster>,
    #[serde(default, rename = "image")]
    pub images: Vec<RawImage>,
    #[serde(default, rename = "secret")]
    pub secrets: Vec<RawSecret>,
    pub deploy: Option<RawDeploy>,
    #[serde(default, rename = "resource")]
    pub resources: Vec<RawResource>,
    #[serde(default, rename = "local")]
    pub locals: Vec<RawLocal>,
    pub web: Option<RawWeb>,
    pub watch: Option<RawWatch>,
    pub builders: Option<RawBuilders>,
}

/// `[builders.buildah]`, `[builders.podman]`, `[builders.docker]`: settings of each builder.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuilders {
    pub docker: Option<RawBuilder>,
    pub buildah: Option<RawBuilder>,
    pub podman: Option<RawBuilder>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuilder {
    /// More arguments to the build command (`buildah bud`, `podman build`, `docker build`).
    pub args: Option<Vec<Spanned<String>>>,
    /// Environment of the build process.
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    /// buildah: `BUILDAH_ISOLATION` (`oci`, `rootless`, `chroot`).
    pub isolation: Option<Spanned<String>>,
    /// buildah, podman: `--storage-driver` for every command (`vfs`, `overlay`).
    pub storage_driver: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Option<Spanned<String>>,
    /// Paths outside the project that builds and watches may use all the same.
    pub allow_outside: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Minikube,
    Existing,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub provider: Option<Spanned<Provider>>,
    pub profile: Option<Spanned<String>>,
    pub cpus: Option<Spanned<i64>>,
    pub memory: Option<Spanned<Megabytes>>,
    pub disk: Option<Spanned<Megabytes>>,
    pub driver: Option<Spanned<String>>,
    pub kubernetes_version: Option<Spanned<String>>,
    pub container_runtime: Option<Spanned<String>>,
    pub start_flags: Option<Vec<Spanned<String>>>,
    pub addons: Option<Vec<Spanned<String>>>,
    pub start_timeout: Option<Spanned<DurationValue>>,
    pub context: Option<Spanned<String>>,
    pub allowed_contexts: Option<Vec<Spanned<String>>>,
    pub registry: Option<Spanned<String>>,
    /// Push to `registry` over plain HTTP (a registry on 127.0.0.1 or localhost always is).
    pub insecure_registry: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    Docker,
    Buildah,
    Podman,
    Minikube,
    Custom,
}

impl BuilderKind {
    /// The name as written in devenv.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderKind::Docker => "docker",
            BuilderKind::Buildah => "buildah",
            BuilderKind::Podman => "podman",
            BuilderKind::Minikube => "minikube",
            BuilderKind::Custom => "custom",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub name: Spanned<String>,
    pub context: Option<Spanned<String>>,
    pub dockerfile: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub build_args: Option<BTreeMap<String, Scalar>>,
    pub watch: Option<Vec<Spanned<String>>>,
    pub ignore: Option<Vec<Spanned<String>>>,
    pub builder: Option<Spanned<BuilderKind>>,
    pub command: Option<Spanned<String>>,
    /// Saved files go into the running containers instead of a new image.
    pub live_update: Option<Spanned<bool>>,
    /// The image's CMD for development (`["uvicorn", "main:app", "--reload"]`).
    pub dev_command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Explicit `local -> remote` pairs, instead of the Dockerfile's.
    pub sync: Option<Vec<Spanned<RawSync>>>,
    /// Commands to run in the container when given files changed.
    pub run: Option<Vec<Spanned<RawRun>>>,
    /// Files whose change always means a full build.
    pub fall_back_on: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub local: Spanned<String>,
    pub remote: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub cmd: Spanned<String>,
    pub on: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub name: Spanned<String>,
    pub env_files: Spanned<Vec<Spanned<String>>>,
    pub namespace: Option<Spanned<String>>,
    /// More Secret keys, each taking the value of a .env key: `{ "database-url" = "DATABASE_URL" }`.
    pub keys: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    pub namespace: Option<Spanned<String>>,
    pub helm: Option<HelmReleases>,
    pub manifests: Option<Vec<Spanned<String>>>,
}

/// `[deploy.helm]` (one release) or `[[deploy.helm]]` (several, each with its own chart,
/// values, images and namespace).
#[derive(Debug, Default)]
pub struct HelmReleases(pub Vec<RawHelm>);

impl<'de> Deserialize<'de> for HelmReleases {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HelmReleases;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [deploy.helm] table, or [[deploy.helm]] tables")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HelmReleases, A::Error> {
                let one = RawHelm::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(HelmReleases(vec![one]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<HelmReleases, A::Error> {
                Vec::<RawHelm>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(HelmReleases)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelm {
    pub chart: Spanned<String>,
    pub release: Option<Spanned<String>>,
    pub values: Option<Vec<Spanned<String>>>,
    pub set: Option<BTreeMap<String, Scalar>>,
    /// .env files that `values_from_env` reads.
    pub env_files: Option<Spanned<Vec<Spanned<String>>>>,
    /// Chart values taken from .env keys: `{ "secret.jwtSecret" = "JWT_SECRET" }`.
    pub values_from_env: Option<BTreeMap<String, Spanned<String>>>,
    /// The release's namespace (default: `[deploy] namespace`).
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub images: Vec<Spanned<RawHelmImage>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelmImage {
    pub image: Spanned<String>,
    pub repository: Option<Spanned<String>>,
    pub tag: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerMode {
    Auto,
    Manual,
}

/// When a `[[local]]`'s serve command is started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Each time the resource runs again (a change under its deps, a trigger).
    #[default]
    OnChange,
    /// Also when it exits on its own, after a back-off.
    Always,
    /// Never while it runs: a later run leaves it running (one that exited starts again).
    Never,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub name: Spanned<String>,
    pub workload: Spanned<String>,
    pub namespace: Option<Spanned<String>>,
    /// The Helm release that renders its workload (needed with several releases).
    pub release: Option<Spanned<String>>,
    pub images: Option<Vec<Spanned<String>>>,
    pub port_forwards: Option<Vec<Spanned<String>>>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub readiness_timeout: Option<Spanned<DurationValue>>,
    pub trigger: Option<Spanned<TriggerMode>>,
    pub links: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    pub name: Spanned<String>,
    pub cmd: Option<Spanned<String>>,
    pub serve_cmd: Option<Spanned<String>>,
    pub restart: Option<Spanned<Restart>>,
    pub deps: Option<Vec<Spanned<String>>>,
    pub workdir: Option<Spanned<String>>,
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub trigger: Option<Spanned<TriggerMode>>,
    pub links: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub port: Option<Spanned<i64>>,
    pub open_browser: Option<bool>,
    pub log_buffer: Option<Spanned<Megabytes>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub debounce: Option<Spanned<DurationValue>>,
    pub ignore: Option<Vec<Spanned<String>>>,
}

/// A size in megabytes, written as a whole number of MB (`8192`) or a string with a unit
/// (`"8g"`, `"8192mb"`, `"20GiB"`), the forms `minikube start --memory` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Megabytes(pub u64);

impl<'de> Deserialize<'de> for Megabytes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Megabytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: a whole number of megabytes (8192) or a string with a unit (\"8g\", \"8192mb\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Megabytes, E> {
                u64::try_from(v)
                    .map(Megabytes)
                    .map_err(|_| E::custom(format!("size must not be negative, found {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Megabytes, E> {
                Ok(Megabytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Megabytes, E> {
                units::parse_megabytes(v).map(Megabytes).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as a string with a unit: `"50ms"`, `"2s"`, `"5m"`, `"1m30s"`.
/// A bare number is refused: "50" could mean milliseconds or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub std::time::Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, like \"50ms\", \"30s\" or \"5m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{v}ms\" or \"{v}s\", not {v}"
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                self.visit_i64(v as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                units::parse_duration(v)
                    .map(DurationValue)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar written as a string, integer, float or boolean, kept as the text Helm, a build
/// argument or an environment variable will receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
