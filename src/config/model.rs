//! The serde model of `devenv.toml`, exactly as written in the file: read by the config
//! check, and written by `devenv init` (which serialises these same types, so what init
//! writes cannot drift from what is read).
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

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<RawProject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RawCluster>,
    #[serde(default, rename = "image", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<RawImage>,
    #[serde(default, rename = "secret", skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<RawSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<RawDeploy>,
    #[serde(default, rename = "resource", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<RawResource>,
    #[serde(default, rename = "local", skip_serializing_if = "Vec::is_empty")]
    pub locals: Vec<RawLocal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<RawWeb>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<RawWatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builders: Option<RawBuilders>,
}

/// `[builders.buildah]`, `[builders.podman]`, `[builders.docker]`: settings of each builder.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuilders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<RawBuilder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildah: Option<RawBuilder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podman: Option<RawBuilder>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuilder {
    /// More arguments to the build command (`buildah bud`, `podman build`, `docker build`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Spanned<String>>>,
    /// Environment of the build process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    /// buildah: `BUILDAH_ISOLATION` (`oci`, `rootless`, `chroot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Spanned<String>>,
    /// buildah, podman: `--storage-driver` for every command (`vfs`, `overlay`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_driver: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// Paths outside the project that builds and watches may use all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_outside: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Minikube,
    Existing,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Spanned<Provider>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Spanned<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Spanned<Megabytes>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<Spanned<Megabytes>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_flags: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addons: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<Spanned<DurationValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_contexts: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Spanned<String>>,
    /// Push to `registry` over plain HTTP (a registry on 127.0.0.1 or localhost always is).
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub name: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_args: Option<BTreeMap<String, Scalar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<Spanned<BuilderKind>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<String>>,
    /// Saved files go into the running containers instead of a new image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_update: Option<Spanned<bool>>,
    /// The image's CMD for development (`["uvicorn", "main:app", "--reload"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Explicit `local -> remote` pairs, instead of the Dockerfile's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<Vec<Spanned<RawSync>>>,
    /// Commands to run in the container when given files changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Vec<Spanned<RawRun>>>,
    /// Files whose change always means a full build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall_back_on: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub local: Spanned<String>,
    pub remote: Spanned<String>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub cmd: Spanned<String>,
    pub on: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub name: Spanned<String>,
    pub env_files: Spanned<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Spanned<String>>,
    /// More Secret keys, each taking the value of a .env key: `{ "database-url" = "DATABASE_URL" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmReleases>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Spanned<String>>>,
}

/// `[deploy.helm]` (one release) or `[[deploy.helm]]` (several, each with its own chart,
/// values, images and namespace).
#[derive(Debug, Default)]
pub struct HelmReleases(pub Vec<RawHelm>);

/// One release is written `[deploy.helm]`, several `[[deploy.helm]]`.
impl serde::Serialize for HelmReleases {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            all => all.serialize(s),
        }
    }
}

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

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelm {
    pub chart: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<String, Scalar>>,
    /// .env files that `values_from_env` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_files: Option<Spanned<Vec<Spanned<String>>>>,
    /// Chart values taken from .env keys: `{ "secret.jwtSecret" = "JWT_SECRET" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_from_env: Option<BTreeMap<String, Spanned<String>>>,
    /// The release's namespace (default: `[deploy] namespace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Spanned<RawHelmImage>>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelmImage {
    pub image: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub name: Spanned<String>,
    pub workload: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Spanned<String>>,
    /// The Helm release that renders its workload (needed with several releases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_forwards: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_timeout: Option<Spanned<DurationValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Spanned<TriggerMode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    pub name: Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serve_cmd: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Spanned<Restart>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deps: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Spanned<Scalar>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<Spanned<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Spanned<TriggerMode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Spanned<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_browser: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_buffer: Option<Spanned<Megabytes>>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Spanned<DurationValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Vec<Spanned<String>>>,
}

/// A size in megabytes, written as a whole number of MB (`8192`) or a string with a unit
/// (`"8g"`, `"8192mb"`, `"20GiB"`), the forms `minikube start --memory` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Megabytes(pub u64);

/// As a string with a unit: whole gigabytes as `"8g"`, else `"1500mb"`.
impl serde::Serialize for Megabytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 > 0 && self.0.is_multiple_of(1024) {
            s.serialize_str(&format!("{}g", self.0 / 1024))
        } else {
            s.serialize_str(&format!("{}mb", self.0))
        }
    }
}

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

/// As a string with a unit (`"5m"`, `"30s"`, `"50ms"`), as it is read.
impl serde::Serialize for DurationValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_duration(self.0))
    }
}

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

/// As the string it is kept as.
impl serde::Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

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
