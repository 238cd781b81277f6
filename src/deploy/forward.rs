//! Port-forwards: `127.0.0.1:<local>` to a port of a resource's pods, through the API
//! server's pods/portforward (kube-rs). Every connection goes to the newest ready pod at the
//! moment it opens, so a forward keeps working when the pod behind it is replaced or restarts.
//! Binds the loopback address only.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use tokio::net::{TcpListener, TcpStream};

use super::pods::Pods;
use crate::cluster::kube::{Trouble, explain};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("port {port} on 127.0.0.1 is already in use{}", holder.as_ref().map_or(String::new(), |(pid, comm)| format!(" by `{comm}` (pid {pid})")))]
    Busy {
        port: u16,
        holder: Option<(u32, String)>,
    },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl ForwardError {
    pub fn hint(&self) -> &'static str {
        match self {
            ForwardError::Busy { .. } => {
                "stop what holds the port, or change the local side of the resource's port_forwards in devenv.toml"
            }
            ForwardError::Listen { .. } => "check that the loopback interface is up",
        }
    }
}

/// Binds `127.0.0.1:port`; a busy port names its holder (read from `proc_root`) when it can.
pub async fn listen(port: u16, proc_root: &Path) -> Result<TcpListener, ForwardError> {
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ForwardError::Busy {
            port,
            holder: crate::host::port_holder(proc_root, port),
        }),
        Err(source) => Err(ForwardError::Listen { port, source }),
    }
}

/// Accepts connections on `listener` for ever and carries each to port `remote` of the
/// newest ready pod. A failure goes to `report` as a sentence (with a hint where there is
/// one), once per kind of failure until a connection is carried again.
pub async fn serve(
    listener: TcpListener,
    pods: Pods,
    remote: u16,
    report: impl Fn(String) + Send + Sync + Clone + 'static,
) {
    let once = super::logs::Once::default();
    let local = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let pods = pods.clone();
        let report = report.clone();
        let once = once.clone();
        tokio::spawn(async move {
            match carry(conn, &pods, remote).await {
                Ok(()) => once.recovered(),
                Err((trouble, why)) => {
                    if once.first(trouble) {
                        report(format!(
                            "cannot forward 127.0.0.1:{local} to port {remote}: {why}{}",
                            trouble.hint_line()
                        ));
                    }
                }
            }
        });
    }
}

/// How long a connection waits for a ready pod: at `up` the pods may not be listed yet, and a
/// rollout may be replacing the pod that served.
const WAIT_FOR_POD: std::time::Duration = std::time::Duration::from_secs(30);

/// A ready pod of `pods` other than those in `tried`, waited for until `deadline`.
async fn ready_pod(
    pods: &Pods,
    tried: &[String],
    deadline: tokio::time::Instant,
) -> Option<std::sync::Arc<k8s_openapi::api::core::v1::Pod>> {
    let mut changed = pods.changed.clone();
    let wait = async {
        loop {
            if let Some(p) = pods
                .ready_pod()
                .filter(|p| !tried.iter().any(|t| Some(t) == p.metadata.name.as_ref()))
            {
                return Some(p);
            }
            if changed.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout_at(deadline, wait).await.ok().flatten()
}

async fn carry(mut conn: TcpStream, pods: &Pods, remote: u16) -> Result<(), (Trouble, String)> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_POD;
    // A pod that just went away (a rollout replaced it) may still be listed: its forward
    // fails, and the next ready pod is tried until the deadline.
    let mut tried: Vec<String> = Vec::new();
    let mut last: Option<(Trouble, String)> = None;
    let (name, mut pf) = loop {
        let Some(pod) = ready_pod(pods, &tried, deadline).await else {
            return Err(last.unwrap_or_else(|| {
                (
                    Trouble::NotFound,
                    format!(
                        "no pod ({}) became ready within {} s, so the connection was closed",
                        pods.selector().unwrap_or_else(|| pods.workload.to_string()),
                        WAIT_FOR_POD.as_secs()
                    ),
                )
            }));
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        match pods.api.portforward(&name, &[remote]).await {
            Ok(pf) => break (name, pf),
            Err(e) => {
                let (why, trouble) = explain(&e);
                let failed = (trouble, format!("pod {name}: {why}"));
                // Only a pod that is gone is worth passing over; anything else is told now.
                if trouble != Trouble::NotFound {
                    return Err(failed);
                }
                last = Some(failed);
                tried.push(name);
            }
        }
    };
    let Some(mut upstream) = pf.take_stream(remote) else {
        return Err((
            Trouble::Other,
            format!("pod {name}: the API server opened no stream for the port"),
        ));
    };
    let copied = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    let _ = pf.join().await;
    match copied {
        Ok(_) => Ok(()),
        // The client or the pod hung up: normal for HTTP clients.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Ok(())
        }
        Err(e) => Err((Trouble::Other, format!("pod {name}: {e}"))),
    }
}

/// Addresses the host reaches a workload at through its NodePort and LoadBalancer Services
/// (those whose selector picks the workload's pods): `http://<node ip>:<nodePort>`, as
/// `minikube service --url` prints them.
pub fn node_urls(
    services: &[k8s_openapi::api::core::v1::Service],
    template_labels: &std::collections::BTreeMap<String, String>,
    node_ip: &str,
) -> Vec<String> {
    let mut urls = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if !matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
            continue;
        }
        let selects = spec.selector.as_ref().is_some_and(|sel| {
            !sel.is_empty() && sel.iter().all(|(k, v)| template_labels.get(k) == Some(v))
        });
        if !selects {
            continue;
        }
        for port in spec.ports.iter().flatten() {
            if let Some(np) = port.node_port {
                urls.push(format!("http://{node_ip}:{np}"));
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_come_from_the_services_that_select_the_pods() {
        let svc = |name: &str, ty: &str, app: &str, node_port: Option<i32>| {
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"type": ty, "selector": {"app": app},
                         "ports": [{"port": 80, "nodePort": node_port}]}
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let labels = [
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "fe".to_owned()),
        ]
        .into_iter()
        .collect();
        let services = [
            svc("web", "NodePort", "web", Some(30080)),
            svc("web-internal", "ClusterIP", "web", None),
            svc("api", "NodePort", "api", Some(30081)),
            svc("web-lb", "LoadBalancer", "web", Some(31000)),
        ];
        assert_eq!(
            node_urls(&services, &labels, "192.168.49.2"),
            ["http://192.168.49.2:30080", "http://192.168.49.2:31000"]
        );
    }

    #[tokio::test]
    async fn a_busy_port_is_a_clear_error() {
        let held = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = held.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        let err = listen(port, Path::new("/proc"))
            .await
            .err()
            .unwrap_or_else(|| panic!("bound a busy port"));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("port {port} on 127.0.0.1 is already in use by `")),
            "{text}"
        );
        assert!(matches!(err, ForwardError::Busy { .. }));
    }
}
