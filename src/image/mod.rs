//! Image builds: the content-hash tag of a build context and the command line of each
//! builder (docker with Minikube's docker-env, buildah, podman, `minikube image build`, or a
//! custom command).
//!
//! Owns what goes into an image and how it is named. Must not deploy, and must not touch the
//! user's shell environment: a builder's environment is given to that process only.

pub mod context;
pub mod run;

use std::path::Path;

use crate::config::{BuilderKind, Config, Image, Provider};

/// The environment variable through which a custom builder learns the reference to produce.
pub const IMAGE_ENV: &str = "DEVENV_IMAGE";
/// Tilt's name for the same thing, so existing custom build scripts keep working.
pub const TILT_IMAGE_ENV: &str = "EXPECTED_REF";

/// The full reference an image is built as: `name:tag`, or `registry/name:tag` when the
/// cluster pulls from a registry.
pub fn reference(cfg: &Config, image: &Image, tag: &str) -> String {
    format!("{}:{tag}", repository(cfg, image))
}

/// The repository part of [`reference`].
pub fn repository(cfg: &Config, image: &Image) -> String {
    match (&cfg.cluster.provider, &cfg.cluster.registry) {
        (Provider::Existing, Some(reg)) => format!("{}/{}", reg.trim_end_matches('/'), image.name),
        _ => image.name.clone(),
    }
}

fn rel_to(base: &Path, p: &Path) -> String {
    match p.strip_prefix(base) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
        Ok(r) => r.display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

/// `buildah` or `podman` with the storage driver of `[builders.NAME]`, if any: every
/// command of that tool (build, inspect, push, save) must use the same store.
pub fn tool(cfg: &Config, kind: BuilderKind) -> Vec<String> {
    let name = match kind {
        BuilderKind::Buildah => "buildah",
        BuilderKind::Podman => "podman",
        _ => "docker",
    };
    let mut argv = vec![name.to_owned()];
    if let Some(d) = cfg
        .builders
        .of(kind)
        .and_then(|s| s.storage_driver.as_ref())
    {
        argv.extend(["--storage-driver".to_owned(), d.clone()]);
    }
    argv
}

/// The lines a `dev_command` adds to the Dockerfile: it becomes the ENTRYPOINT and the CMD is
/// emptied, so that an ENTRYPOINT of the image cannot take it as arguments (Tilt's
/// `entrypoint` replaces both the same way).
pub fn dev_cmd_line(cmd: &[String]) -> String {
    format!(
        "ENTRYPOINT {}\nCMD []",
        serde_json::to_string(cmd).unwrap_or_else(|_| "[]".into())
    )
}

/// The stage an image with a `dev_command` and a `target` is built to: a stage added after
/// the Dockerfile's, `FROM` the target, that sets the command (lines added at the end would
/// go to the Dockerfile's last stage, which is not the one built).
pub const DEV_STAGE: &str = "devenv-dev-command";

/// Where the Dockerfile of an image with a `dev_command` is written: the project's state
/// directory (the project's own files are never touched).
pub fn dev_dockerfile_path(cfg: &Config, image: &Image) -> Option<std::path::PathBuf> {
    if image.dev_command.is_empty() {
        return None;
    }
    crate::host::project_state_dir(&cfg.file).map(|d| {
        d.join("dockerfiles")
            .join(format!("{}.Dockerfile", image.name.replace('/', "_")))
    })
}

/// Writes the development Dockerfile of `image`: its own, with the `dev_command` as the last
/// line (its ignore file beside it, when it has one of its own), and returns its path.
pub fn write_dev_dockerfile(
    cfg: &Config,
    image: &Image,
) -> std::io::Result<Option<std::path::PathBuf>> {
    let Some(path) = dev_dockerfile_path(cfg, image) else {
        return Ok(None);
    };
    if let Some(dir) = path.parent() {
        crate::host::private_dir(dir)?;
    }
    let mut text = crate::tree::read_capped(&image.dockerfile, crate::tree::MAX_FILE)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# devenv: the image's dev_command\n");
    if let Some(t) = &image.target {
        text.push_str(&format!("FROM {t} AS {DEV_STAGE}\n"));
    }
    text.push_str(&dev_cmd_line(&image.dev_command));
    text.push('\n');
    crate::host::write_private(&path, text)?;
    let own_ignore =
        std::path::PathBuf::from(format!("{}.dockerignore", image.dockerfile.display()));
    let copy = std::path::PathBuf::from(format!("{}.dockerignore", path.display()));
    if own_ignore.is_file() {
        // Read as any file of the project devenv reads, written as any of its own.
        let text = crate::tree::read_capped(&own_ignore, crate::tree::MAX_FILE)?;
        crate::host::write_private(&copy, text)?;
    } else {
        let _ = std::fs::remove_file(&copy);
    }
    Ok(Some(path))
}

/// The builder's argv, run from the project root.
pub fn command(cfg: &Config, image: &Image, reference: &str) -> Vec<String> {
    let ctx = cfg.rel(&image.context);
    let dockerfile = dev_dockerfile_path(cfg, image)
        .map_or_else(|| cfg.rel(&image.dockerfile), |p| p.display().to_string());
    let common = |argv: &mut Vec<String>| {
        argv.extend([
            "-t".into(),
            reference.to_owned(),
            "-f".into(),
            dockerfile.clone(),
        ]);
        if let Some(t) = &image.target {
            let t = if image.dev_command.is_empty() {
                t.clone()
            } else {
                DEV_STAGE.to_owned()
            };
            argv.extend(["--target".into(), t]);
        }
        for (k, v) in &image.build_args {
            argv.extend(["--build-arg".into(), format!("{k}={v}")]);
        }
        argv.push(ctx.clone());
    };
    let settings = cfg.builders.of(image.builder);
    let extra = |argv: &mut Vec<String>| {
        // The builder's own arguments come before the context, which is last.
        if let (Some(s), Some(ctx)) = (settings, argv.pop()) {
            argv.extend(s.args.iter().cloned());
            argv.push(ctx);
        }
    };
    match image.builder {
        BuilderKind::Docker => {
            let mut argv = vec!["docker".into(), "build".into()];
            common(&mut argv);
            extra(&mut argv);
            argv
        }
        BuilderKind::Podman => {
            let mut argv = tool(cfg, BuilderKind::Podman);
            argv.push("build".into());
            common(&mut argv);
            extra(&mut argv);
            argv
        }
        BuilderKind::Buildah => {
            let mut argv = tool(cfg, BuilderKind::Buildah);
            argv.extend(["bud".into(), "--layers".into()]);
            common(&mut argv);
            extra(&mut argv);
            argv
        }
        BuilderKind::Minikube => {
            let mut argv: Vec<String> = ["minikube", "-p", &cfg.cluster.profile, "image", "build"]
                .map(String::from)
                .into();
            argv.extend([
                "-t".into(),
                reference.to_owned(),
                "-f".into(),
                rel_to(&image.context, &image.dockerfile),
            ]);
            if let Some(t) = &image.target {
                argv.push(format!("--build-opt=target={t}"));
            }
            for (k, v) in &image.build_args {
                argv.push(format!("--build-opt=build-arg={k}={v}"));
            }
            argv.push(ctx);
            argv
        }
        BuilderKind::Custom => vec![
            "sh".into(),
            "-c".into(),
            image.command.clone().unwrap_or_default(),
        ],
    }
}

/// Environment variables given to the build process besides Minikube's docker-env: a custom
/// builder's target reference, and the environment of `[builders.NAME]`.
pub fn extra_env(cfg: &Config, image: &Image, reference: &str) -> Vec<(String, String)> {
    match image.builder {
        BuilderKind::Custom => vec![
            (IMAGE_ENV.to_owned(), reference.to_owned()),
            (TILT_IMAGE_ENV.to_owned(), reference.to_owned()),
        ],
        kind => cfg
            .builders
            .of(kind)
            .map(|s| s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// How a built image reaches the cluster: commands to run after the build, and the archive
/// file they pass the image through, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub archive: Option<std::path::PathBuf>,
    pub commands: Vec<Vec<String>>,
}

/// Where image archives are handed from a local builder to Minikube.
pub fn archive_path(image: &Image, tag: &str) -> std::path::PathBuf {
    let base = directories::ProjectDirs::from("", "", "devenv")
        .map_or_else(std::env::temp_dir, |d| d.cache_dir().to_path_buf());
    base.join("images")
        .join(format!("{}-{tag}.tar", image.name.replace('/', "_")))
}

/// What must happen after a build so the cluster can run the image, if anything.
pub fn delivery(cfg: &Config, image: &Image, reference: &str) -> Option<Delivery> {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    match (cfg.cluster.provider, image.builder) {
        // docker (with docker-env) and `minikube image build` build inside Minikube already;
        // a custom command is given docker-env and is trusted to do the same.
        (Provider::Minikube, BuilderKind::Docker | BuilderKind::Minikube | BuilderKind::Custom) => {
            None
        }
        // buildah and podman keep images in their own store: hand them over as an archive.
        (Provider::Minikube, b @ (BuilderKind::Buildah | BuilderKind::Podman)) => {
            let tag = crate::objects::ImageRef::parse(reference).tag_or_latest();
            let archive = archive_path(image, tag);
            let tar = archive.display().to_string();
            let mut save = tool(cfg, b);
            if b == BuilderKind::Buildah {
                save.extend(strings(&[
                    "push",
                    reference,
                    &format!("docker-archive:{tar}:{reference}"),
                ]));
            } else {
                save.extend(strings(&[
                    "save",
                    "--format",
                    "docker-archive",
                    "-o",
                    &tar,
                    reference,
                ]));
            }
            let load = strings(&[
                "minikube",
                "-p",
                &cfg.cluster.profile,
                "image",
                "load",
                &tar,
            ]);
            Some(Delivery {
                archive: Some(archive),
                commands: vec![save, load],
            })
        }
        (Provider::Existing, b) => {
            let mut push = tool(cfg, b);
            push.push("push".into());
            // buildah and podman verify TLS unless told; a registry on this machine speaks
            // plain HTTP (Docker's daemon treats loopback registries so by itself).
            if cfg.cluster.insecure_registry
                && matches!(b, BuilderKind::Buildah | BuilderKind::Podman)
            {
                push.push("--tls-verify=false".into());
            }
            push.push(reference.to_owned());
            Some(Delivery {
                archive: None,
                commands: vec![push],
            })
        }
    }
}
