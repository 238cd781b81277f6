//! Log following: every container of a resource's pods, new pods and restarted containers
//! picked up as they appear, line by line with Kubernetes' own time stamps.

use std::collections::HashSet;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;

use super::pods::Pods;

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

/// Follows the logs of every started container of `pods` until the task is dropped.
pub async fn follow(pods: Pods, sink: impl Fn(PodLine) + Send + Sync + Clone + 'static) {
    let mut seen: HashSet<(String, String, i32)> = HashSet::new();
    let mut changed = pods.changed.clone();
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
                let name = name.clone();
                tokio::spawn(async move {
                    let params = LogParams {
                        container: Some(container.clone()),
                        follow: true,
                        timestamps: true,
                        ..LogParams::default()
                    };
                    let stream = match api.log_stream(&name, &params).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!("logs of {name}/{container}: {e}");
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
