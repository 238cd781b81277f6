//! Image builds for the engine: output to the terminal and to the logs of the resources that
//! run the image, and devenv's account of each build (see [`super::narrate`]).

use crate::cluster::minikube::ImageStore;
use crate::config::Config;
use crate::engine::driver::Logs;
use crate::engine::log::Verb;
use crate::exec::{Cancel, ExecError};
use crate::image::{self, run::BuildError};
use crate::out;

use super::narrate::{Told, tell};

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
    let told = |verb, subject, text: &str| {
        tell(
            logs,
            users,
            Told {
                verb,
                subject,
                text,
                source: "build",
            },
        )
    };
    told(Verb::Building, name, "");
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
            match b.outcome {
                image::run::Outcome::Built => {
                    let took = format!("{} ({:.1}s)", b.reference, b.duration.as_secs_f64());
                    told(Verb::Built, "", &took);
                }
                image::run::Outcome::Present => told(
                    Verb::Present,
                    "",
                    &format!("{} (nothing to build)", b.reference),
                ),
            }
            Ok(b.reference)
        }
        Err(BuildError::Exec(ExecError::Cancelled { .. })) => Err(Failure::Cancelled),
        Err(e) => {
            told(Verb::Failed, name, &e.to_string());
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
