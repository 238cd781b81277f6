//! Log following: every container of a resource's pods, new pods and restarted containers
//! picked up as they appear, line by line with Kubernetes' own time stamps.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;

use super::pods::Pods;
use crate::cluster::kube::{Trouble, explain};

/// One line a container wrote.
#[derive(Debug, Clone)]
pub struct PodLine {
    pub pod: String,
    pub container: String,
    /// Milliseconds since the Unix epoch, from the kubelet's time stamp.
    pub time_ms: Option<u64>,
    pub text: String,
}

/// Splits a `timestamps=true` log line into its time (ms since the epoch) and text.
pub fn split_timestamp(line: &str) -> (Option<u64>, &str) {
    let Some((stamp, text)) = line.split_once(' ') else {
        return (None, line);
    };
    match stamp.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => (u64::try_from(t.as_millisecond()).ok(), text),
        Err(_) => (None, line),
    }
}

/// Containers (init ones too) that have started: `(name, restart count)`.
fn started(p: &Pod) -> Vec<(String, i32)> {
    let Some(st) = &p.status else {
        return Vec::new();
    };
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .filter(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .map(|c| (c.name.clone(), c.restart_count))
        .collect()
}

/// Says each kind of failure once, until things work again: a resource with many pods and
/// containers that all fail the same way gets one line, not one per container.
#[derive(Clone, Default)]
pub struct Once {
    said: Arc<Mutex<HashSet<Trouble>>>,
}

impl Once {
    /// True the first time `t` is seen since the last [`Once::recovered`].
    pub fn first(&self, t: Trouble) -> bool {
        crate::host::lock(&self.said).insert(t)
    }

    pub fn recovered(&self) {
        crate::host::lock(&self.said).clear();
    }
}

/// Follows the logs of every started container of `pods` until the task is dropped. A
/// stream that cannot be opened is told to `report` as a sentence with a hint, once per
/// kind of failure until a stream opens again.
pub async fn follow(
    pods: Pods,
    sink: impl Fn(PodLine) + Send + Sync + Clone + 'static,
    report: impl Fn(String) + Send + Sync + Clone + 'static,
) {
    let mut seen: HashSet<(String, String, i32)> = HashSet::new();
    let mut changed = pods.changed.clone();
    let once = Once::default();
    loop {
        for pod in pods.store.state() {
            let (Some(name), Some(uid)) = (pod.metadata.name.clone(), pod.metadata.uid.clone())
            else {
                continue;
            };
            for (container, restarts) in started(&pod) {
                if !seen.insert((uid.clone(), container.clone(), restarts)) {
                    continue;
                }
                let api = pods.api.clone();
                let sink = sink.clone();
                let report = report.clone();
                let once = once.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let params = LogParams {
                        container: Some(container.clone()),
                        follow: true,
                        timestamps: true,
                        ..LogParams::default()
                    };
                    let stream = match api.log_stream(&name, &params).await {
                        Ok(s) => {
                            once.recovered();
                            s
                        }
                        Err(e) => {
                            let (why, trouble) = explain(&e);
                            if once.first(trouble) {
                                report(format!(
                                    "cannot follow the logs of pod {name}, container {container}: {why}{}",
                                    trouble.hint_line()
                                ));
                            }
                            return;
                        }
                    };
                    let mut lines = stream.lines();
                    while let Ok(Some(line)) = lines.try_next().await {
                        let (time_ms, text) = split_timestamp(&line);
                        sink(PodLine {
                            pod: name.clone(),
                            container: container.clone(),
                            time_ms,
                            text: text.to_owned(),
                        });
                    }
                });
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_time_stamps_are_split_off() {
        assert_eq!(
            split_timestamp("2026-01-01T00:00:01.500000000Z INFO: started"),
            (Some(1_767_225_601_500), "INFO: started")
        );
        assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
        assert_eq!(split_timestamp("single"), (None, "single"));
    }
}
