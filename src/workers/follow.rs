//! What follows a deployed resource: its port-forwards, NodePort URLs and links, its pod
//! counts for the page, and its pods' logs. A failure of any of them is the resource's
//! warning, said once, and never stops the rest.

use std::sync::Arc;

use super::Prepared;
use super::narrate::{Told, tell};
use crate::config;
use crate::deploy;
use crate::engine::driver::Logs;
use crate::engine::log::Verb;
use crate::out;

/// What following a resource tells the engine: for each of its live-updated images, its
/// ready containers (the engine catches new ones up).
pub struct Keep {
    pub events: tokio::sync::mpsc::UnboundedSender<crate::engine::state::Event>,
    pub cfg: Arc<config::Config>,
    pub live_images: Vec<String>,
}

/// Follows `r` until the task is aborted (when `r` leaves the config, or devenv stops): the
/// tasks it starts end with it. `bound` are its forward ports bound at bring-up, if it was
/// there then.
pub async fn follow_one(
    r: config::Resource,
    prepared: &Prepared,
    bound: Option<Vec<super::bringup::Bound>>,
    pods: deploy::pods::Pods,
    logs: Logs,
    keep: Keep,
) {
    // Dropped (and so aborted) when this task is.
    let mut tasks = tokio::task::JoinSet::new();
    if !keep.live_images.is_empty() {
        tasks.spawn(super::live::tell_containers(
            keep.cfg.clone(),
            r.name.clone(),
            keep.live_images.clone(),
            pods.clone(),
            keep.events.clone(),
        ));
    }
    // Ports bound at bring-up, or (a resource added by a reload) bound now.
    reach(&r, prepared, bound, &pods, &logs, &keep.events, &mut tasks).await;
    // Pod counts, kept current in the engine's state (the page, `status`, the summary).
    {
        let pods = pods.clone();
        let name = r.name.clone();
        let events = keep.events.clone();
        tasks.spawn(async move {
            let mut changed = pods.changed.clone();
            let mut last = None;
            loop {
                let (c, names) = pods.counts();
                if last.as_ref() != Some(&(c, names.clone())) {
                    let _ = events.send(crate::engine::state::Event::Pods {
                        resource: name.clone(),
                        pods: super::pods_of(c),
                        names: Some(names.clone()),
                    });
                    last = Some((c, names));
                }
                if changed.changed().await.is_err() {
                    break;
                }
            }
        });
    }
    let name = r.name.clone();
    let report = warn(&r.name, Verb::Logs, &logs, &keep.events);
    tasks.spawn(deploy::logs::follow(
        pods,
        move |l| {
            let source = format!("{}/{}", l.pod, l.container);
            out::output(&name, &source, &l.text);
            logs.push_at(
                &name,
                l.time_ms.unwrap_or_else(crate::host::now_ms),
                &source,
                &l.text,
            );
        },
        report,
    ));
    while tasks.join_next().await.is_some() {}
}

/// Serves `r`'s forwards (on the ports bring-up took, or binds them again after a reload),
/// finds its NodePort and LoadBalancer addresses, and tells where it is reached: once on the
/// terminal, and as engine state for the page and the API.
async fn reach(
    r: &config::Resource,
    prepared: &Prepared,
    bound: Option<Vec<super::bringup::Bound>>,
    pods: &deploy::pods::Pods,
    logs: &Logs,
    events: &tokio::sync::mpsc::UnboundedSender<crate::engine::state::Event>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let target = &prepared.target;
    let report = warn(&r.name, Verb::Follow, logs, events);
    let listeners = match bound {
        Some(l) => l,
        None => {
            let mut l = Vec::new();
            for pf in &r.port_forwards {
                match listen_again(pf.local, &prepared.proc_root).await {
                    Ok(listener) => l.push((pf.local, pf.remote, listener)),
                    Err(e) => report(format!("{e}\n  hint: {}", e.hint())),
                }
            }
            l
        }
    };
    // Where the resource is reached from the host: the engine's state has it for the page,
    // the API and `status`; the terminal says each once.
    let mut urls = Vec::new();
    for (local, remote, listener) in listeners {
        urls.push(format!("http://127.0.0.1:{local}"));
        out::say(
            "forward",
            format!(
                "{}: http://127.0.0.1:{local} -> {}:{remote}",
                r.name, r.workload
            ),
        );
        tasks.spawn(deploy::forward::serve(
            listener,
            pods.clone(),
            remote,
            warn(&r.name, Verb::Forward, logs, events),
        ));
    }
    if let Some(ip) = &prepared.node_ip {
        // Its Services are found by the labels its pods get.
        pods.seen().await;
        let api: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(target.client.clone(), &r.namespace);
        match api.list(&Default::default()).await {
            Ok(l) => {
                for url in deploy::forward::node_urls(&l.items, &pods.template_labels(), ip) {
                    out::say("url", format!("{}: {url}", r.name));
                    urls.push(url);
                }
            }
            Err(e) => report(format!("cannot list the Services in {}: {e}", r.namespace)),
        }
    }
    for link in &r.links {
        out::say("link", format!("{}: {link}", r.name));
        urls.push(link.clone());
    }
    let _ = events.send(crate::engine::state::Event::Urls {
        resource: r.name.clone(),
        urls,
    });
}

/// Binds a forward's port after a reload: this devenv's own earlier listener of the port may
/// still be closing (its task was aborted a moment ago), so that holder is waited out.
async fn listen_again(
    port: u16,
    proc_root: &std::path::Path,
) -> Result<tokio::net::TcpListener, deploy::forward::ForwardError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match deploy::forward::listen(port, proc_root).await {
            Err(deploy::forward::ForwardError::Busy {
                holder: Some((pid, _)),
                ..
            }) if pid == std::process::id() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Where a failure of a resource's log stream or port-forward goes: the terminal (`label`
/// line), the resource's log, and its warning in the engine's state (the status API, the
/// page).
fn warn(
    resource: &str,
    label: Verb,
    logs: &Logs,
    events: &tokio::sync::mpsc::UnboundedSender<crate::engine::state::Event>,
) -> impl Fn(String) + Send + Sync + Clone + 'static {
    let (name, logs, events) = (resource.to_owned(), logs.clone(), events.clone());
    move |message: String| {
        tell(
            &logs,
            std::slice::from_ref(&name),
            Told {
                verb: label,
                subject: &name,
                text: &message,
                source: label.word(),
            },
        );
        let _ = events.send(crate::engine::state::Event::Warning {
            resource: name.clone(),
            message,
        });
    }
}
