//! The proposal as devenv.toml text: one table per part, each after a comment that says
//! where it came from. The same proposal always gives the same text.

use std::fmt::Write as _;
use std::path::Path;

use super::{DeployOut, Keys, Proposal, rel};

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `text` as `#` lines of at most 92 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 92 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
}

fn r(p: &Proposal, path: &Path) -> String {
    rel(&p.root, path)
}

/// The config text.
pub fn toml(p: &Proposal) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        &format!(
            "devenv.toml for `{}`, written by `devenv init` from what the repository holds. Each part says where it came from; change anything (docs/config.md), then `devenv up`.",
            p.project
        ),
    );
    let _ = writeln!(out, "\n[project]\nname = {}\n", q(&p.project));
    comment(
        &mut out,
        "A local Minikube of devenv's default size; images are built in its Docker daemon, no registry.",
    );
    out.push_str("[cluster]\nprovider = \"minikube\"\ncpus = 4\nmemory = \"8g\"\n");
    for img in &p.images {
        let f = &img.found;
        out.push('\n');
        let mut why = format!(
            "{}: context `{}` ({}).",
            r(p, &f.dockerfile),
            r(p, &f.context),
            f.context_why
        );
        if !f.stages.is_empty() {
            let _ = write!(why, " Stages {}.", f.stages.join(", "));
        }
        if let (Some(t), Some(w)) = (&f.target, &f.target_why) {
            let _ = write!(why, " Target `{t}`: {w}.");
        }
        if let Some(n) = &img.name_why {
            let _ = write!(why, " Named so because {n}.");
        }
        let _ = write!(
            why,
            " Live update {}: {}.",
            if f.live_update { "on" } else { "off" },
            f.live_why
        );
        comment(&mut out, &why);
        let _ = writeln!(out, "[[image]]\nname = {}", q(&img.name));
        let _ = writeln!(out, "context = {}", q(&r(p, &f.context)));
        if f.dockerfile != f.context.join("Dockerfile") {
            let _ = writeln!(out, "dockerfile = {}", q(&r(p, &f.dockerfile)));
        }
        if let Some(t) = &f.target {
            let _ = writeln!(out, "target = {}", q(t));
        }
        if f.live_update {
            out.push_str("live_update = true\n");
        }
        if !f.dev_command.is_empty() {
            let _ = writeln!(out, "dev_command = {}", list(&f.dev_command));
        }
    }
    for s in &p.secrets {
        out.push('\n');
        let mut why = format!(
            "{} read{} Secret `{}`, which nothing here makes: devenv makes it from {}",
            s.readers.join(", "),
            if s.readers.len() == 1 { "s" } else { "" },
            s.name,
            r(p, &s.env_file)
        );
        if let Some(ex) = &s.example {
            let _ = write!(why, " (made by devenv init from {})", r(p, ex));
        }
        why.push('.');
        if !s.keys.is_empty() {
            why.push_str(" The pods read keys the .env spells otherwise: `keys` gives them.");
        }
        comment(&mut out, &why);
        let _ = writeln!(
            out,
            "[[secret]]\nname = {}\nenv_files = {}",
            q(&s.name),
            list(&[r(p, &s.env_file)])
        );
        if !s.keys.is_empty() {
            let pairs: Vec<String> = s
                .keys
                .iter()
                .map(|(k, v)| format!("{} = {}", q(k), q(v)))
                .collect();
            let _ = writeln!(out, "keys = {{ {} }}", pairs.join(", "));
        }
    }
    out.push('\n');
    comment(
        &mut out,
        &format!("Namespace `{}`: {}.", p.namespace, p.namespace_why),
    );
    let _ = writeln!(out, "[deploy]\nnamespace = {}", q(&p.namespace));
    match &p.deploy {
        Some(DeployOut::Helm(charts)) => {
            // One chart is `[deploy.helm]`; several are `[[deploy.helm]]`, each with the
            // `[[deploy.helm.images]]` that follow it.
            let table = if charts.len() == 1 {
                "[deploy.helm]"
            } else {
                "[[deploy.helm]]"
            };
            for h in charts {
                out.push('\n');
                let mut why = format!(
                    "The Helm chart `{}` in {}, released as `{}`",
                    h.chart_name,
                    r(p, &h.chart),
                    h.release
                );
                if h.values.is_empty() {
                    why.push_str(" with its own values.");
                } else {
                    let v: Vec<String> = h.values.iter().map(|v| r(p, v)).collect();
                    let _ = write!(why, " with the development values in {}.", v.join(", "));
                }
                comment(&mut out, &why);
                let _ = writeln!(
                    out,
                    "{table}\nchart = {}\nrelease = {}",
                    q(&r(p, &h.chart)),
                    q(&h.release)
                );
                if !h.values.is_empty() {
                    let v: Vec<String> = h.values.iter().map(|v| r(p, v)).collect();
                    let _ = writeln!(out, "values = {}", list(&v));
                }
                if let Some(f) = &h.from_env {
                    comment(
                        &mut out,
                        &format!(
                            "The chart makes {} from these values; each comes from the .env key of its name. devenv gives them to helm in a values file only you can read, never on a command line.",
                            f.secrets
                                .iter()
                                .map(|s| format!("Secret `{s}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    let pairs: Vec<String> = f
                        .keys
                        .iter()
                        .map(|(k, e)| format!("{} = {}", q(k), q(e)))
                        .collect();
                    let _ = writeln!(
                        out,
                        "env_files = {}\nvalues_from_env = {{ {} }}",
                        list(&[r(p, &f.env_file)]),
                        pairs.join(", ")
                    );
                }
                for (image, keys, seen) in &h.entries {
                    out.push('\n');
                    comment(
                        &mut out,
                        &format!(
                            "Found by rendering the chart with a marker in each value: {} take{} the image from {}.",
                            seen.join(", "),
                            if seen.len() == 1 { "s" } else { "" },
                            match keys {
                                Keys::RepositoryAndTag { repository, tag } =>
                                    format!("`{repository}` and `{tag}`"),
                                Keys::Reference(k) => format!("`{k}`"),
                            }
                        ),
                    );
                    let _ = writeln!(out, "[[deploy.helm.images]]\nimage = {}", q(image));
                    match keys {
                        Keys::RepositoryAndTag { repository, tag } => {
                            let _ =
                                writeln!(out, "repository = {}\ntag = {}", q(repository), q(tag));
                        }
                        Keys::Reference(k) => {
                            let _ = writeln!(out, "value = {}", q(k));
                        }
                    }
                }
            }
        }
        Some(DeployOut::Manifests(files)) => {
            comment(
                &mut out,
                "Plain manifests, applied with devenv's builds in place of their images.",
            );
            let _ = writeln!(out, "manifests = {}", list(files));
        }
        None => {}
    }
    for res in &p.resources {
        out.push('\n');
        let mut why = res.workload.clone();
        if res.images.is_empty() {
            why.push_str(": runs no image built here");
        } else {
            let _ = write!(why, ": runs {}", res.images.join(", "));
        }
        if !res.forwards.is_empty() {
            let ports: Vec<String> = res.forwards.iter().map(|(_, r)| r.to_string()).collect();
            let _ = write!(
                why,
                "; listens on {} (forwarded from free local ports)",
                ports.join(", ")
            );
        }
        why.push('.');
        if !res.waits_in_release.is_empty() {
            let _ = write!(
                why,
                " Its init container waits for {}; one helm upgrade deploys both, and the chart orders them, so no depends_on.",
                res.waits_in_release.join(", ")
            );
        }
        if !res.said_deps.is_empty() {
            let _ = write!(
                why,
                " The Tiltfile's resource_deps: {} first.",
                res.said_deps.join(", ")
            );
        }
        let waits: Vec<&String> = res
            .depends_on
            .iter()
            .filter(|d| !res.said_deps.contains(d))
            .collect();
        if !waits.is_empty() {
            let _ = write!(
                why,
                " Its init container waits for {}: depends_on.",
                waits
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        comment(&mut out, &why);
        let _ = writeln!(
            out,
            "[[resource]]\nname = {}\nworkload = {}",
            q(&res.name),
            q(&res.workload)
        );
        if let Some(ns) = &res.namespace {
            let _ = writeln!(out, "namespace = {}", q(ns));
        }
        if let Some(release) = &res.release {
            let _ = writeln!(out, "release = {}", q(release));
        }
        if !res.images.is_empty() {
            let _ = writeln!(out, "images = {}", list(&res.images));
        }
        if !res.forwards.is_empty() {
            let f: Vec<String> = res
                .forwards
                .iter()
                .map(|(l, r)| format!("{l}:{r}"))
                .collect();
            let _ = writeln!(out, "port_forwards = {}", list(&f));
        }
        if !res.depends_on.is_empty() {
            let _ = writeln!(out, "depends_on = {}", list(&res.depends_on));
        }
    }
    for l in &p.locals {
        out.push('\n');
        let why = match &l.from {
            Some(from) => format!(
                "{from}: run on the host when its deps change{}.",
                if l.serve_cmd.is_some() {
                    ", and its serve command kept running"
                } else {
                    ""
                }
            ),
            None => format!(
                "Tests in {}, run on demand (the page's button, or `devenv trigger {}`).",
                r(p, &l.workdir),
                l.name
            ),
        };
        comment(&mut out, &why);
        let _ = writeln!(out, "[[local]]\nname = {}", q(&l.name));
        if let Some(cmd) = &l.cmd {
            let _ = writeln!(out, "cmd = {}", q(cmd));
        }
        if let Some(cmd) = &l.serve_cmd {
            let _ = writeln!(out, "serve_cmd = {}", q(cmd));
        }
        let deps: Vec<String> = l.deps.iter().map(|d| r(p, d)).collect();
        let _ = writeln!(out, "workdir = {}", q(&r(p, &l.workdir)));
        if !deps.is_empty() {
            let _ = writeln!(out, "deps = {}", list(&deps));
        }
        if !l.depends_on.is_empty() {
            let _ = writeln!(out, "depends_on = {}", list(&l.depends_on));
        }
        if l.manual {
            out.push_str("trigger = \"manual\"\n");
        }
    }
    if let Some(port) = p.web_port {
        out.push('\n');
        comment(&mut out, "Port 10350 was taken when devenv init ran.");
        let _ = writeln!(out, "[web]\nport = {port}");
    }
    out
}
