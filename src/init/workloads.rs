//! What `init` reads from rendered objects (a chart's or plain manifests'): the workloads
//! with their containers and ports, the Services that select them, the Secrets their pods
//! read, and which workload's init container waits for another's Service.

use std::collections::BTreeMap;

use serde_norway::Value;

/// Kinds `[[resource]]` can wait for.
pub const KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub ports: Vec<u16>,
    /// Its command and args, joined (what an init container waits for).
    pub command: String,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    /// `(secret, key)`: a key read through `secretKeyRef`, or `None` for the whole Secret
    /// (`envFrom`, a volume). Optional references are left out.
    pub secrets: Vec<(String, Option<String>)>,
}

impl Workload {
    /// `deployment/name`, as `[[resource]] workload` takes it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    /// `(port, targetPort when a number)`.
    pub ports: Vec<(u16, Option<u16>)>,
}

/// What the objects hold.
#[derive(Debug, Default)]
pub struct Objects {
    pub workloads: Vec<Workload>,
    pub services: Vec<Service>,
    /// Secrets and Namespaces made by the objects themselves.
    pub secrets: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Objects {
    /// Adds the objects of another chart.
    pub fn extend(&mut self, other: Objects) {
        self.workloads.extend(other.workloads);
        self.services.extend(other.services);
        for s in other.secrets {
            if !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        for n in other.namespaces {
            if !self.namespaces.contains(&n) {
                self.namespaces.push(n);
            }
        }
    }
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.as_str()?.to_owned(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn port(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

/// The ports a container spec listens on: its `containerPort`s (any protocol) and the
/// numbered ports of its probes. What pairs it with a Dockerfile that EXPOSEs one.
pub fn listens_on(c: &Value) -> Vec<u16> {
    let mut out: Vec<u16> = c
        .get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|p| port(p.get("containerPort")))
        .collect();
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        for how in ["httpGet", "tcpSocket", "grpc"] {
            out.extend(port(
                c.get(probe)
                    .and_then(|p| p.get(how))
                    .and_then(|h| h.get("port")),
            ));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn container(c: &Value) -> Option<Container> {
    let image = c.get("image").and_then(Value::as_str)?.to_owned();
    let ports = c
        .get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter(|p| {
            p.get("protocol")
                .and_then(Value::as_str)
                .is_none_or(|pr| pr.eq_ignore_ascii_case("tcp"))
        })
        .filter_map(|p| port(p.get("containerPort")))
        .collect();
    let mut command = Vec::new();
    for key in ["command", "args"] {
        for w in c
            .get(key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(s) = w.as_str() {
                command.push(s.to_owned());
            }
        }
    }
    Some(Container {
        name: c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        image,
        ports,
        command: command.join(" "),
    })
}

/// Reads the objects.
pub fn read(docs: &[Value]) -> Objects {
    let mut out = Objects::default();
    for d in docs {
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
        let meta = d.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind {
            "Secret" => out.secrets.push(name),
            "Namespace" => out.namespaces.push(name),
            "Service" => {
                let spec = d.get("spec");
                out.services.push(Service {
                    name,
                    selector: strings(spec.and_then(|s| s.get("selector"))),
                    ports: spec
                        .and_then(|s| s.get("ports"))
                        .and_then(Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(|p| Some((port(p.get("port"))?, port(p.get("targetPort")))))
                        .collect(),
                });
            }
            k if KINDS.contains(&k) => {
                let template = d.get("spec").and_then(|s| s.get("template"));
                let spec = template.and_then(|t| t.get("spec"));
                let list = |key: &str| -> Vec<Container> {
                    spec.and_then(|s| s.get(key))
                        .and_then(Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(container)
                        .collect()
                };
                // Optional ones are left out: the pod starts without them.
                let mut secrets: Vec<(String, Option<String>)> = spec
                    .map(crate::objects::secret_references)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| !r.optional)
                    .map(|r| (r.name, r.key))
                    .collect();
                secrets.sort();
                secrets.dedup();
                out.workloads.push(Workload {
                    kind: k.to_owned(),
                    name,
                    namespace: meta
                        .and_then(|m| m.get("namespace"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    labels: strings(
                        template
                            .and_then(|t| t.get("metadata"))
                            .and_then(|m| m.get("labels")),
                    ),
                    containers: list("containers"),
                    init_containers: list("initContainers"),
                    secrets,
                });
            }
            _ => {}
        }
    }
    out
}

impl Objects {
    /// The Services that select `w`'s pods.
    pub fn services_of<'a>(&'a self, w: &Workload) -> Vec<&'a Service> {
        self.services
            .iter()
            .filter(|s| {
                !s.selector.is_empty() && s.selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
            })
            .collect()
    }

    /// The ports `w` listens on: its containers', else its Services' target ports.
    pub fn ports_of(&self, w: &Workload) -> Vec<u16> {
        let mut ports: Vec<u16> = w.containers.iter().flat_map(|c| c.ports.clone()).collect();
        if ports.is_empty() {
            for s in self.services_of(w) {
                ports.extend(s.ports.iter().map(|(p, t)| t.unwrap_or(*p)));
            }
        }
        let mut seen = Vec::new();
        ports.retain(|p| {
            let new = !seen.contains(p);
            seen.push(*p);
            new
        });
        ports
    }

    /// The other workloads whose Service one of `w`'s init containers names (waits for).
    pub fn waited_for(&self, w: &Workload) -> Vec<String> {
        let mut out = Vec::new();
        for other in &self.workloads {
            if other.name == w.name && other.kind == w.kind {
                continue;
            }
            let named = self.services_of(other).iter().any(|s| {
                w.init_containers
                    .iter()
                    .any(|c| mentions(&c.command, &s.name))
            });
            if named {
                out.push(other.name.clone());
            }
        }
        out
    }
}

/// Whether `text` names the host `name` as a word (`http://name:8000`, `name.ns.svc`).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        before.is_none_or(|c| !word(c)) && after.is_none_or(|c| !word(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_mentioned_only_as_a_whole_host() {
        assert!(mentions(
            "until wget -q http://todo-backend:8000/ready; do",
            "todo-backend"
        ));
        assert!(mentions("nc -z db.todo.svc 5432", "db"));
        assert!(!mentions(
            "until wget http://todo-backend-2:8000",
            "todo-backend"
        ));
        assert!(!mentions("echo mydb", "db"));
    }
}
