//! devenv: bootstraps and runs a local Kubernetes development environment.
//!
//! The pipeline, one module per stage: `cli` parses and dispatches; `session` runs one `up`
//! (lock, signals, page, engine, watcher, reload); `engine` is the pure state machine and
//! `workers` its hands; `views` and `web` show its state; `config` reads and validates
//! devenv.toml and `reload` says what an edit of it changes; `doctor` checks the machine;
//! `project` reads what a project is made of once (the manifests' objects, the images each
//! resource runs, the engine's graph); `plan` is the dry-run, a run of the engine's reducer
//! over that graph; `cluster` guards where devenv writes; `image` names and builds images;
//! `deploy` puts them in the cluster; `watch` decides what to watch. At the bottom: `exec` runs every external command, `out` prints the
//! terminal's lines, `host` knows the machine, `objects` reads Kubernetes YAML, and `pattern`
//! is the .dockerignore language. tests/layering.rs keeps the layers apart.

mod check;
mod cli;
mod cluster;
mod config;
mod deploy;
mod dockerfile;
mod doctor;
mod engine;
mod exec;
mod host;
mod image;
mod init;
mod live;
mod objects;
mod order;
mod out;
mod pattern;
mod plan;
mod project;
mod reload;
mod session;
mod tree;
mod views;
mod watch;
mod web;
mod workers;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = cli::run();
    // No child process outlives devenv, whatever happened.
    exec::kill_all();
    match result {
        Ok(code) => code,
        Err(err) => {
            // Config diagnostics are already complete reports; everything else gets its cause chain.
            if let Some(config::ConfigError::Invalid { .. }) =
                err.downcast_ref::<config::ConfigError>()
            {
                eprintln!("{}", crate::out::printable(&err.to_string()));
            } else {
                eprintln!("error: {}", crate::out::printable(&err.to_string()));
                // Many messages already end with their cause: each is said once.
                let mut said = err.to_string();
                for cause in err.chain().skip(1) {
                    let text = cause.to_string();
                    if !said.contains(&text) {
                        eprintln!("  caused by: {}", crate::out::printable(&text));
                        said.push_str(&text);
                    }
                }
            }
            ExitCode::FAILURE
        }
    }
}
