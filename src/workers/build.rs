//! Image builds for the engine: output to the terminal and to the logs of the resources that
//! run the image.

use crate::cluster::minikube::ImageStore;
use crate::config::Config;
use crate::engine::driver::Logs;
use crate::exec::{Cancel, ExecError};
use crate::image::{self, run::BuildError};
use crate::out;

/// Builds `name` (unless its tag is present); the reference, or the error as the user reads it.
pub fn build_image(
    cfg: &Config,
    name: &str,
    store: Option<&ImageStore>,
    cancel: &Cancel,
    logs: &Logs,
    users: &[String],
) -> Result<String, Failure> {
    let Some(image) = cfg.images.iter().find(|i| i.name == name) else {
        return Err(Failure::Failed(format!("no image `{name}` in the config")));
    };
    out::say_for("building", name, "");
    for u in users {
        logs.push(u, "build", &format!("building {name}"));
    }
    let to = image::run::Destination::Cluster(store);
    let r = image::run::build_one(cfg, image, to, Some(cancel), &mut |l| {
        out::tool(name, l);
        for u in users {
            logs.push(u, "build", l);
        }
    });
    match r {
        // Superseded as it ended: the build that replaces it is the one to tell of.
        Ok(_) if cancel.is_cancelled() => Err(Failure::Cancelled),
        Ok(b) => {
            let text = match b.outcome {
                image::run::Outcome::Built => {
                    let text = format!("{} ({:.1}s)", b.reference, b.duration.as_secs_f64());
                    out::say("built", &text);
                    text
                }
                image::run::Outcome::Present => {
                    out::say("present", format!("{} (nothing to build)", b.reference));
                    format!("{} (already present)", b.reference)
                }
            };
            for u in users {
                logs.push(u, "build", &format!("built {text}"));
            }
            Ok(b.reference)
        }
        Err(BuildError::Exec(ExecError::Cancelled { .. })) => Err(Failure::Cancelled),
        Err(e) => {
            out::say_for("failed", name, &format!("{e}"));
            for u in users {
                for l in e.to_string().lines() {
                    logs.push(u, "build", l);
                }
            }
            Err(Failure::Failed(e.to_string()))
        }
    }
}

/// Why a build gave no image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A newer build, or devenv stopping, cancelled it: nothing to report, the engine has
    /// moved on.
    Cancelled,
    /// It failed, with the error to show.
    Failed(String),
}
