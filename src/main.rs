//! devenv: bootstraps and runs a local Kubernetes development environment.
//!
//! The pipeline, one module per stage: `cli` parses and dispatches; `config` reads and
//! validates devenv.toml; `plan` turns it into the ordered steps of `up`; `build` names and
//! builds images; `deploy` puts them in the cluster. `pattern` is the .dockerignore language
//! they share.

mod build;
mod cli;
mod config;
mod deploy;
mod pattern;
mod plan;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            // Config diagnostics are already complete reports; everything else gets its cause chain.
            if let Some(config::ConfigError::Invalid { .. }) =
                err.downcast_ref::<config::ConfigError>()
            {
                eprintln!("{err}");
            } else {
                eprintln!("error: {err}");
                for cause in err.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
