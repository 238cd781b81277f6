//! `devenv up --dry-run` on the todo sample: the plan is pinned by a checked-in copy, and a
//! change to one Dockerfile changes exactly that image's tag.
//!
//! To accept an intended change of the plan: `DEVENV_BLESS=1 cargo test --test plan`.

mod common;

use std::path::Path;

use common::{Project, stderr, stdout};

/// The todo sample with a .env, and with file modes fixed so the content tags do not depend on
/// the umask of the checkout (modes are part of what a build copies into the image).
fn todo() -> Project {
    let p = Project::example("todo");
    let example = p.read(".env.example");
    p.write(".env", &example);
    normalize_modes(p.path());
    p
}

#[cfg(unix)]
fn normalize_modes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let mode = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|err| panic!("chmod {:?}: {err}", e.path()));
        if is_dir {
            normalize_modes(&e.path());
        }
    }
}

#[cfg(not(unix))]
fn normalize_modes(_dir: &Path) {}

/// The plan as text, with the project's state directory (where the development Dockerfile
/// of an image with a `dev_command` goes) written as `<state>`: it differs per machine.
fn plan_text(p: &Project) -> String {
    let out = p.devenv(&["up", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state =
        regex::Regex::new(r"/[^ ]*/projects/[0-9a-f]{16}/").unwrap_or_else(|e| panic!("{e}"));
    state.replace_all(&stdout(&out), "<state>/").into_owned()
}

fn plan_json(p: &Project) -> serde_json::Value {
    let out = p.devenv(&["up", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan is not JSON: {e}"))
}

fn tag_of(plan: &serde_json::Value, image: &str) -> String {
    plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"] == "build" && s["image"] == image)
        .and_then(|s| s["tag"].as_str())
        .unwrap_or_else(|| panic!("no build step for {image}"))
        .to_owned()
}

#[test]
fn dry_run_plan_matches_the_checked_in_plan() {
    let p = todo();
    let actual = plan_text(&p);
    let expected_path = common::repo_root().join("tests/expected/todo-plan.txt");
    if std::env::var_os("DEVENV_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        actual, expected,
        "the plan changed; if that is intended, run DEVENV_BLESS=1 cargo test --test plan"
    );
}

#[test]
fn a_dockerfile_change_changes_exactly_that_images_tag() {
    let p = todo();
    let before_text = plan_text(&p);
    let before = plan_json(&p);
    let dockerfile = p.read("backend/Dockerfile");
    p.write("backend/Dockerfile", &format!("{dockerfile}# a change\n"));
    let after_text = plan_text(&p);
    let after = plan_json(&p);

    let (old_backend, new_backend) = (
        tag_of(&before, "todo-backend"),
        tag_of(&after, "todo-backend"),
    );
    assert_ne!(old_backend, new_backend, "the backend's tag must change");
    assert_eq!(
        tag_of(&before, "todo-frontend"),
        tag_of(&after, "todo-frontend")
    );
    // Nothing else in the plan moves: with the backend tag swapped back, the plans are equal.
    assert_eq!(after_text.replace(&new_backend, &old_backend), before_text);
}

#[test]
fn a_file_the_build_ignores_does_not_change_the_plan() {
    let p = todo();
    let before = plan_text(&p);
    p.write("backend/README.md", "ignored by backend/.dockerignore\n");
    p.write("backend/app/__pycache__/main.cpython-311.pyc", "x");
    assert_eq!(plan_text(&p), before);
    p.write("backend/app/extra.py", "X = 1\n");
    assert_ne!(plan_text(&p), before);
}

#[test]
fn dry_run_refuses_an_invalid_config_and_starts_nothing() {
    let p = todo();
    std::fs::remove_file(p.path().join(".env")).unwrap_or_else(|e| panic!("{e}"));
    let out = p.devenv(&["up", "--dry-run"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("env file `.env` not found"), "{err}");
    assert!(err.contains("cp .env.example .env"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn the_plan_orders_waits_by_dependency_and_never_shows_secret_values() {
    let p = todo();
    p.write(
        ".env",
        "SECRET_KEY=hunter2-very-secret\nDATABASE_URL=postgres://u:pw-secret@db/x\n",
    );
    let text = plan_text(&p);
    assert!(
        !text.contains("hunter2") && !text.contains("pw-secret"),
        "{text}"
    );
    let backend = text.find("wait       backend:").unwrap_or(usize::MAX);
    let frontend = text.find("wait       frontend:").unwrap_or(0);
    assert!(
        backend < frontend,
        "backend must be waited for first:\n{text}"
    );
}

#[test]
fn the_repo_root_config_runs_the_todo_sample() {
    let root = common::repo_root();
    let out = std::process::Command::new(common::devenv_bin())
        .args(["config", "check", "--config"])
        .arg(root.join("devenv.toml"))
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = stderr(&out);
    // On a fresh clone examples/todo/.env does not exist yet: that is the one allowed error.
    if out.status.success() {
        let text = stdout(&out);
        assert!(text.contains("project    todo"), "{text}");
        assert!(
            text.contains("helm release `todo` from examples/todo/helm/todo-app"),
            "{text}"
        );
    } else {
        assert!(
            err.contains("env file `examples/todo/.env` not found"),
            "{err}"
        );
        assert!(err.contains("1 error and 0 warnings"), "{err}");
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let p = Project::new();
    for (shell, marker) in [
        ("bash", "_devenv()"),
        ("zsh", "#compdef devenv"),
        ("fish", "complete -c devenv"),
    ] {
        let out = p.devenv(&["completions", shell]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..text.len().min(200)]
        );
        assert!(text.contains("doctor"), "{shell} completes subcommands");
    }
}

/// Issue 28 point 11: a FIFO in a build context hung `config check`, `up --dry-run` and `up`
/// (hashing the context read it, and a read of a FIFO waits for a writer forever). It counts
/// by its kind and is never read: both end, within a bound, and its presence is part of the
/// image's tag as any file's is.
#[test]
fn a_fifo_in_a_build_context_is_never_read() {
    let p = todo();
    common::mkfifo(&p.path().join("backend/app/pipe"));
    for args in [&["config", "check"][..], &["up", "--dry-run"][..]] {
        let mut cmd = std::process::Command::new(common::devenv_bin());
        cmd.args(args)
            .current_dir(p.path())
            .env("DEVENV_WEB_PORT", "0");
        let out =
            common::output_within(cmd, std::time::Duration::from_secs(60)).unwrap_or_else(|| {
                panic!("`devenv {}` hangs on a FIFO in the context", args.join(" "))
            });
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
}

/// Issue 28 point 20: with the page on any free port (`DEVENV_WEB_PORT=0`) and no forward,
/// the plan said "ports 0 free".
#[test]
fn a_plan_checks_no_port_zero() {
    let p = Project::example("hello");
    let cfg = p
        .read("devenv.toml")
        .replace("port_forwards = [\"8080:8080\"]\n", "");
    p.write("devenv.toml", &cfg);
    let out = std::process::Command::new(common::devenv_bin())
        .args(["up", "--dry-run"])
        .current_dir(p.path())
        .env("DEVENV_WEB_PORT", "0")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(!text.contains("ports 0 free"), "{text}");
    assert!(!text.contains(" 0 free"), "{text}");
}

/// Issue 25 point 9: devenv's own config file inside a build context (examples/hello's
/// context is `.`) was part of the image's content tag: a comment added to devenv.toml
/// rebuilt the image. It counts only when the Dockerfile copies it by name.
#[test]
fn the_config_file_in_a_build_context_is_not_part_of_the_content_tag() {
    let p = Project::example("hello");
    let before = tag_of(&plan_json(&p), "hello");
    p.write(
        "devenv.toml",
        &format!("{}\n# a comment\n", p.read("devenv.toml")),
    );
    assert_eq!(tag_of(&plan_json(&p), "hello"), before);
    // A file the build context really uses still counts.
    p.write("hello.txt", "changed\n");
    let changed = tag_of(&plan_json(&p), "hello");
    assert_ne!(changed, before);

    // A Dockerfile that copies it by name makes it part of the image again.
    p.write(
        "Dockerfile",
        &format!("{}COPY devenv.toml /devenv.toml\n", p.read("Dockerfile")),
    );
    let copied = tag_of(&plan_json(&p), "hello");
    p.write(
        "devenv.toml",
        &format!("{}\n# another comment\n", p.read("devenv.toml")),
    );
    assert_ne!(tag_of(&plan_json(&p), "hello"), copied);
}

/// Issue 25 point 7: the plan's watch line named only build contexts: not a Dockerfile kept
/// outside its context (whose edit rebuilds), nor the config and manifests `up` reloads; and
/// with no image it printed `watch      (debounce 50ms)`. It now names what `up` watches.
#[test]
fn the_plans_watch_line_names_what_up_watches() {
    let p = Project::new();
    p.write("docker/api.Dockerfile", "FROM scratch\nCOPY a /a\n")
        .write("src/a", "a\n")
        .write(
            "k8s.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
        )
        .write(
            "devenv.toml",
            "[project]\nname = \"w\"\n\n[[image]]\nname = \"api\"\ncontext = \"src\"\ndockerfile = \"docker/api.Dockerfile\"\n\n[deploy]\nnamespace = \"w\"\nmanifests = [\"k8s.yaml\"]\n",
        );
    let text = plan_text(&p);
    assert!(
        text.contains(
            "watch      devenv.toml, docker/api.Dockerfile, k8s.yaml, src (debounce 50ms)"
        ),
        "{text}"
    );
}

/// Issue 25 point 6: the dry-run printed `kubectl apply --server-side …`, which `up` never
/// runs (it applies through the API itself), listed a `[[local]]` that a resource depends
/// on after that resource's build, though `up` runs it first, and gave a tag as the one `up`
/// builds though that local writes into the context first.
#[test]
fn the_plan_says_what_up_does_apply_through_the_api_and_a_feeding_local_before_the_build() {
    let p = Project::example("hello");
    p.write(
        "devenv.toml",
        &format!(
            "{}depends_on = [\"gen\"]\n\n[[local]]\nname = \"gen\"\ncmd = \"date > stamp.txt\"\n",
            p.read("devenv.toml")
        ),
    );
    let text = plan_text(&p);
    assert!(!text.contains("kubectl apply"), "{text}");
    assert!(
        text.contains(
            "deploy     hello: apply Deployment/hello from k8s/deployment.yaml in hello (context `minikube`)"
        ),
        "{text}"
    );
    assert!(
        text.contains("server-side apply through the Kubernetes API (field manager `devenv`)"),
        "{text}"
    );
    let local = text.find("local      gen:").unwrap_or(usize::MAX);
    let build = text.find("build      hello:").unwrap_or(0);
    assert!(
        local < build,
        "the local runs before the build it feeds:\n{text}"
    );
    assert_eq!(text.matches("local      gen:").count(), 1, "{text}");
    // gen writes into the build context after the plan hashed it: the plan says its tag is
    // the context's now, not the one `up` will build.
    assert!(
        text.contains(
            "tag from the context as it is now: gen runs first and what it writes into it changes the tag"
        ),
        "{text}"
    );
}
