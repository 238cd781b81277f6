//! One command in one container through the API server's `pods/exec` WebSocket, spoken here
//! rather than through kube-rs's `AttachedProcess`.
//!
//! Owns the channel protocol of an exec: stdin on channel 0, stdout 1, stderr 2, the answer (a
//! `Status`) on 3, and the v5 subprotocol's close signal (255, 0) that ends the container's
//! stdin while the answer can still come. Two things need the protocol in hand: a program
//! that reads its input to the end before it exits (busybox's `tar` drains it after the
//! archive) must see stdin close, and the answer must be read whatever happens to stdin (a
//! container that fails at once stops reading it). On the v4 subprotocol (API servers before
//! 1.30) stdin cannot be closed without closing the stream, so it stays open until the answer.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use tokio_tungstenite::tungstenite::Message;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
/// Stdin goes in frames of this size.
const FRAME: usize = 64 * 1024;
/// What is kept of stdout and of stderr.
const KEEP: usize = 64 * 1024;

/// What the container answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `Success`, or `Failure` with the runtime's message (a missing program, an exit code).
    pub status: Status,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    pub fn success(&self) -> bool {
        self.status.status.as_deref() == Some("Success")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The API server refused the exec or could not reach the container.
    #[error("{0}")]
    Refused(String),
    /// The stream ended before the container's answer: whether the command ran is not known.
    #[error("no answer from the container ({0})")]
    NoAnswer(String),
    /// No answer within the time given.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Runs `command` in `container` of `pod`, with `stdin` when given (closed once sent where the
/// subprotocol allows), and returns its answer. Bounded by `timeout`.
pub async fn run(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Answer, ExecError> {
    tokio::time::timeout(timeout, exchange(api, pod, container, command, stdin))
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
}

async fn exchange(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: Option<&[u8]>,
) -> Result<Answer, ExecError> {
    let params = AttachParams::default()
        .container(container)
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let mut req = kube::core::Request::new(api.resource_url())
        .exec(pod, command, &params)
        .map_err(|e| ExecError::Refused(e.to_string()))?;
    req.extensions_mut().insert("exec");
    let client: kube::Client = api.clone().into();
    let conn = client
        .connect(req)
        .await
        .map_err(|e| ExecError::Refused(crate::cluster::kube::explain(&e).0))?;
    let closes = conn.supports_stream_close();
    let (mut tx, mut rx) = conn.into_stream().split();
    let write = async {
        if let Some(data) = stdin {
            for chunk in data.chunks(FRAME) {
                let mut frame = Vec::with_capacity(chunk.len() + 1);
                frame.push(STDIN);
                frame.extend_from_slice(chunk);
                if tx.send(Message::binary(frame)).await.is_err() {
                    // The container stopped reading (it failed at once): its answer says why.
                    return futures::future::pending().await;
                }
            }
            if closes {
                let _ = tx.send(Message::binary(vec![CLOSE, STDIN])).await;
            }
        }
        futures::future::pending::<()>().await
    };
    let read = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        loop {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let keep = |buf: &mut Vec<u8>| {
                        let room = KEEP.saturating_sub(buf.len());
                        buf.extend_from_slice(&b[1..b.len().min(room + 1)]);
                    };
                    match b[0] {
                        STDOUT => keep(&mut out),
                        STDERR => keep(&mut err),
                        STATUS => {
                            let status: Status = serde_json::from_slice(&b[1..]).map_err(|e| {
                                ExecError::NoAnswer(format!("an unreadable answer: {e}"))
                            })?;
                            return Ok(Answer {
                                status,
                                stdout: String::from_utf8_lossy(&out).into_owned(),
                                stderr: String::from_utf8_lossy(&err).into_owned(),
                            });
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ExecError::NoAnswer(e.to_string())),
                None => return Err(ExecError::NoAnswer("the connection ended".into())),
            }
        }
    };
    let answer = tokio::select! {
        a = read => a,
        () = write => unreachable_write(),
    };
    // The answer is in: the stream is done with (dropping it closes the connection).
    answer
}

/// The writer never ends by itself (it waits forever once stdin is sent).
fn unreachable_write() -> Result<Answer, ExecError> {
    Err(ExecError::NoAnswer("the writer ended".into()))
}
