//! Bad configs through the real binary: each must fail `devenv config check` with exit code 1,
//! name the file, line and column of the value at fault, and say what was wrong and what to do.

mod common;

use common::{Project, stderr, stdout};

/// A project with the files a valid config refers to: an image context with a Dockerfile,
/// a .env (and .env.example), a chart and a manifest.
fn project(config: &str) -> Project {
    let p = Project::new();
    p.write("app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .write("app/main.py", "print('hi')\n")
        .write(".env.example", "KEY=value\n")
        .write(".env", "KEY=value\n")
        .write("chart/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n")
        .write(
            "k8s/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app\n",
        )
        .write("devenv.toml", config);
    p
}

/// The valid base most cases change one thing in (line numbers below count from here).
const BASE: &str = r#"[[image]]
name = "app"
context = "app"

[deploy]
namespace = "dev"
manifests = ["k8s/*.yaml"]

[[resource]]
name = "app"
workload = "deployment/app"
port_forwards = ["8000:8000"]
"#;

/// Runs `config check`, expects failure, and checks location and texts. Returns stderr.
#[track_caller]
fn fails(config: &str, location: &str, texts: &[&str]) -> String {
    let p = project(config);
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1\n{err}");
    assert!(
        err.contains(&format!("--> devenv.toml:{location}\n")),
        "expected location devenv.toml:{location}\n{err}"
    );
    for t in texts {
        assert!(err.contains(t), "expected {t:?} in\n{err}");
    }
    assert!(err.contains("nothing was started"), "{err}");
    err
}

#[test]
fn the_base_config_is_valid() {
    let p = project(BASE);
    let out = p.devenv(&["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("devenv.toml: valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn typo_in_a_key_suggests_the_right_one() {
    let cfg = BASE.replace("context = \"app\"", "contxt = \"app\"");
    fails(
        &cfg,
        "3:1",
        &[
            "error: unknown key `contxt` in [[image]]",
            "hint: did you mean `context`?",
            "expected: one of name, context, dockerfile",
        ],
    );
}

#[test]
fn typo_in_a_table_name() {
    let cfg = BASE.replace("[[resource]]", "[[resources]]");
    fails(
        &cfg,
        "9:3",
        &[
            "unknown key `resources` in the top level",
            "did you mean `resource`?",
        ],
    );
}

#[test]
fn unknown_key_without_a_close_match_says_what_to_do() {
    let cfg = format!("{BASE}\n[web]\nport = 9000\nzzz = true\n");
    fails(
        &cfg,
        "16:1",
        &[
            "unknown key `zzz` in [web]",
            "expected: one of port, open_browser",
            "hint: remove it",
        ],
    );
}

#[test]
fn wrong_type_names_key_found_and_expected() {
    let cfg = format!("[cluster]\ncpus = \"four\"\n\n{BASE}");
    fails(
        &cfg,
        "2:8",
        &[
            "wrong type for `cpus`: found string \"four\"",
            "expected: an integer",
        ],
    );
}

#[test]
fn cpus_below_one() {
    let cfg = format!("[cluster]\ncpus = 0\n\n{BASE}");
    fails(&cfg, "2:8", &["cpus must be at least 1, found 0"]);
    // Issue 28 point 16: i64::MAX was "valid" and planned as --cpus=4294967295.
    let cfg = format!("[cluster]\ncpus = 9223372036854775807\n\n{BASE}");
    fails(
        &cfg,
        "2:8",
        &["cpus must be at most 1024, found 9223372036854775807"],
    );
}

#[test]
fn bad_memory_unit() {
    let cfg = format!("[cluster]\nmemory = \"8gx\"\n\n{BASE}");
    fails(
        &cfg,
        "2:10",
        &["invalid size \"8gx\"", "like \"8g\", \"8Gi\" or \"8192mb\""],
    );
}

#[test]
fn memory_below_minikubes_minimum() {
    let cfg = format!("[cluster]\nmemory = 1024\n\n{BASE}");
    fails(
        &cfg,
        "2:10",
        &["memory 1024 MB is below minikube's minimum of 1800 MB"],
    );
}

#[test]
fn unknown_provider_suggests_the_closest() {
    let cfg = format!("[cluster]\nprovider = \"minikub\"\n\n{BASE}");
    fails(
        &cfg,
        "2:12",
        &[
            "unknown value \"minikub\" for `provider`",
            "expected: minikube or existing",
            "did you mean \"minikube\"?",
        ],
    );
}

#[test]
fn existing_provider_needs_context_and_registry_and_refuses_minikube_keys() {
    let cfg = format!("[cluster]\nprovider = \"existing\"\ncpus = 2\n\n{BASE}");
    let err = fails(
        &cfg,
        "2:12",
        &[
            "provider = \"existing\" needs `context` in [cluster]",
            "needs `registry`",
        ],
    );
    assert!(err.contains("--> devenv.toml:3:8"), "{err}");
    assert!(
        err.contains("`cpus` only applies with provider = \"minikube\""),
        "{err}"
    );
}

#[test]
fn duration_without_unit() {
    let cfg = format!("{BASE}\n[watch]\ndebounce = 50\n");
    fails(
        &cfg,
        "15:12",
        &["a duration needs a unit: write \"50ms\" or \"50s\""],
    );
}

#[test]
fn missing_required_key_points_at_its_table() {
    let cfg = BASE.replace("name = \"app\"\ncontext", "context");
    fails(
        &cfg,
        "1:1",
        &[
            "missing required key `name` in [[image]]",
            "hint: add `name = ...`",
        ],
    );
}

#[test]
fn toml_syntax_error() {
    let cfg = BASE.replace("namespace = \"dev\"", "namespace = \"dev");
    fails(&cfg, "6:17", &["invalid basic string"]);
}

#[test]
fn duplicate_key_is_named() {
    let cfg = BASE.replace(
        "namespace = \"dev\"",
        "namespace = \"dev\"\nnamespace = \"x\"",
    );
    fails(&cfg, "7:1", &["duplicate key `namespace`"]);
}

#[test]
fn missing_dockerfile() {
    let cfg = BASE.replace(
        "context = \"app\"",
        "context = \"app\"\ndockerfile = \"app/Dockerfile.dev\"",
    );
    fails(
        &cfg,
        "4:14",
        &[
            "Dockerfile `app/Dockerfile.dev` not found",
            "relative to the config file's directory",
        ],
    );
}

#[test]
fn missing_default_dockerfile_points_at_the_context() {
    let cfg = BASE.replace("context = \"app\"", "context = \"k8s\"");
    fails(&cfg, "3:11", &["Dockerfile `k8s/Dockerfile` not found"]);
}

#[test]
fn missing_build_context() {
    let cfg = BASE.replace("context = \"app\"", "context = \"backend\"");
    fails(&cfg, "3:11", &["build context `backend` does not exist"]);
}

#[test]
fn duplicate_image_names() {
    let cfg = format!("[[image]]\nname = \"app\"\ncontext = \"app\"\n\n{BASE}");
    fails(
        &cfg,
        "6:8",
        &["duplicate image name `app`", "first defined on line 2"],
    );
}

#[test]
fn image_name_with_a_tag() {
    let cfg = BASE.replace("name = \"app\"\ncontext", "name = \"app:1.0\"\ncontext");
    fails(
        &cfg,
        "2:8",
        &[
            "image name \"app:1.0\" has a tag",
            "devenv tags images by content",
        ],
    );
}

#[test]
fn depends_on_unknown_resource_suggests() {
    let cfg = format!("{BASE}depends_on = [\"ap\"]\n");
    fails(
        &cfg,
        "13:15",
        &[
            "`app` depends on unknown resource `ap`",
            "did you mean `app`?",
        ],
    );
}

#[test]
fn dependency_cycle_is_named() {
    let cfg = format!(
        "{BASE}depends_on = [\"worker\"]\n\n[[local]]\nname = \"worker\"\ncmd = \"true\"\ndepends_on = [\"app\"]\n"
    );
    fails(
        &cfg,
        "18:15",
        &[
            "dependency cycle: app -> worker -> app",
            "remove one of these depends_on entries",
        ],
    );
}

#[test]
fn self_dependency() {
    let cfg = format!("{BASE}depends_on = [\"app\"]\n");
    fails(&cfg, "13:15", &["`app` depends on itself"]);
}

#[test]
fn bad_port_string() {
    let cfg = BASE.replace("\"8000:8000\"", "\"80a0:8000\"");
    fails(
        &cfg,
        "12:18",
        &["invalid port forward \"80a0:8000\": \"80a0\" is not a port number"],
    );
}

#[test]
fn port_out_of_range() {
    let cfg = BASE.replace("\"8000:8000\"", "\"70000:80\"");
    fails(&cfg, "12:18", &["port 70000 is outside 1-65535"]);
}

#[test]
fn port_collision_between_resources() {
    let cfg = format!(
        "{BASE}\n[[resource]]\nname = \"other\"\nworkload = \"deployment/other\"\nport_forwards = [\"9000:90\", \"8000:80\"]\n"
    );
    fails(
        &cfg,
        "17:29",
        &[
            "local port 8000 is used twice",
            "resource `app` (line 12) already uses it",
        ],
    );
}

#[test]
fn port_collision_with_the_web_port() {
    let cfg = format!("[web]\nport = 8000\n\n{BASE}");
    fails(
        &cfg,
        "15:18",
        &[
            "local port 8000 is used twice",
            "[web] port (line 2) already uses it",
        ],
    );
}

#[test]
fn missing_env_file_names_the_example_to_copy() {
    let cfg =
        format!("[[secret]]\nname = \"app-secrets\"\nenv_files = [\"config/.env\"]\n\n{BASE}");
    let p = project(&cfg);
    p.write("config/.env.example", "A=1\n");
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--> devenv.toml:3:14"), "{err}");
    assert!(err.contains("env file `config/.env` not found"), "{err}");
    assert!(
        err.contains("hint: copy the example and fill it in: cp config/.env.example config/.env"),
        "{err}"
    );
}

#[test]
fn missing_chart_yaml() {
    let cfg = BASE.replace(
        "manifests = [\"k8s/*.yaml\"]",
        "\n[deploy.helm]\nchart = \"charts/app\"",
    );
    fails(&cfg, "9:9", &["no Chart.yaml in `charts/app`"]);
}

#[test]
fn helm_image_entry_for_unknown_image() {
    let cfg = BASE.replace(
        "manifests = [\"k8s/*.yaml\"]",
        "\n[deploy.helm]\nchart = \"chart\"\n\n[[deploy.helm.images]]\nimage = \"ap\"\nrepository = \"image.repository\"\ntag = \"image.tag\"",
    );
    fails(&cfg, "12:9", &["unknown image `ap`", "did you mean `app`?"]);
}

#[test]
fn helm_image_entry_needs_both_keys() {
    let cfg = BASE.replace(
        "manifests = [\"k8s/*.yaml\"]",
        "\n[deploy.helm]\nchart = \"chart\"\n\n[[deploy.helm.images]]\nimage = \"app\"\nrepository = \"image.repository\"",
    );
    fails(
        &cfg,
        "13:14",
        &["helm image `app` needs `repository` and `tag`, or `value`"],
    );
}

#[test]
fn manifest_glob_matching_nothing() {
    let cfg = BASE.replace("k8s/*.yaml", "deploy/*.yaml");
    fails(&cfg, "7:14", &["`deploy/*.yaml` matches no manifest file"]);
}

#[test]
fn unknown_workload_kind_suggests() {
    let cfg = BASE.replace("deployment/app", "deploymnet/app");
    fails(
        &cfg,
        "11:12",
        &[
            "unknown workload kind \"deploymnet\"",
            "did you mean \"deployment\"?",
        ],
    );
}

#[test]
fn local_resource_without_a_command() {
    let cfg = format!("{BASE}\n[[local]]\nname = \"lint\"\ndeps = [\"app\"]\n");
    fails(
        &cfg,
        "15:8",
        &[
            "local resource `lint` has nothing to run",
            "expected: `cmd`, `serve_cmd` or both",
        ],
    );
}

#[test]
fn duplicate_names_across_resource_and_local() {
    let cfg = format!("{BASE}\n[[local]]\nname = \"app\"\ncmd = \"make\"\n");
    fails(
        &cfg,
        "15:8",
        &["duplicate resource name `app`", "first defined on line 10"],
    );
}

#[test]
fn custom_builder_needs_a_command() {
    let cfg = BASE.replace(
        "context = \"app\"",
        "context = \"app\"\nbuilder = \"custom\"",
    );
    fails(
        &cfg,
        "4:11",
        &["builder = \"custom\" needs `command`", "$DEVENV_IMAGE"],
    );
}

#[test]
fn link_must_be_a_url() {
    let cfg = format!("{BASE}links = [\"localhost:8000\"]\n");
    fails(
        &cfg,
        "13:10",
        &["invalid link \"localhost:8000\": expected an http:// or https:// URL"],
    );
}

#[test]
fn every_error_is_reported_in_one_run() {
    let cfg = format!(
        "[cluster]\ncpus = 0\n\n{}",
        BASE.replace("\"8000:8000\"", "\"x\"")
    );
    let err = fails(
        &cfg,
        "2:8",
        &["cpus must be at least 1", "invalid port forward \"x\""],
    );
    assert!(err.contains("2 errors and 0 warnings"), "{err}");
}

#[test]
fn an_image_nothing_deploys_is_a_warning_not_an_error() {
    let cfg = format!("{BASE}\n[[image]]\nname = \"unused\"\ncontext = \"app\"\n");
    let p = project(&cfg);
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: image `unused` is built but nothing deploys it"),
        "{err}"
    );
    assert!(err.contains("--> devenv.toml:15:8"), "{err}");
}

#[test]
fn no_config_anywhere_says_how_to_point_at_one() {
    let p = Project::new();
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no devenv.toml found in"), "{err}");
    assert!(err.contains("--config PATH"), "{err}");
}

#[test]
fn the_config_is_found_in_a_parent_directory() {
    let p = project(BASE);
    let out = std::process::Command::new(common::devenv_bin())
        .args(["config", "check"])
        .current_dir(p.path().join("app"))
        .env_remove("DEVENV_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resource   app = deployment/app, ports 8000:8000"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_log_buffer_outside_its_range_is_refused_with_the_default() {
    let cfg = format!("[web]\nlog_buffer = \"2g\"\n\n{BASE}");
    fails(
        &cfg,
        "2:14",
        &[
            "log_buffer of 2048 MB is outside 1-1024 MB",
            "hint: each resource keeps this much log in memory; the default is \"1mb\"",
        ],
    );
    let ok = project(&format!("[web]\nlog_buffer = \"16mb\"\n\n{BASE}"));
    let out = ok.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 16, points 8 and 10: the config file must be a regular file of sane size in UTF-8;
/// a device, a FIFO or a huge file is refused at once, and each error says its cause once.
#[test]
fn the_config_file_must_be_a_regular_utf8_file_of_sane_size() {
    let p = Project::new();
    let fifo = p.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(made.success());
    p.write("big.toml", &"# padding\n".repeat(120_000));
    std::fs::write(
        p.path().join("latin1.toml"),
        b"[project]\nname = \"caf\xe9\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (file, says) in [
        (
            "/dev/zero".to_owned(),
            "/dev/zero is a device, not a regular file",
        ),
        (
            fifo.display().to_string(),
            "fifo.toml is a FIFO, not a regular file",
        ),
        (
            "big.toml".to_owned(),
            "big.toml is 1200000 bytes; a devenv.toml is at most 1048576",
        ),
        (
            "latin1.toml".to_owned(),
            "latin1.toml:2:12: the file is not UTF-8 text",
        ),
    ] {
        let out = p.devenv(&["config", "check", "--config", &file]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(says), "{file}: {err}");
        assert!(err.contains("hint: "), "{file}: {err}");
        assert!(!err.contains("caused by"), "{file}: {err}");
    }
}

/// Issue 16, point 2: a built or watched path outside the project is an error at its value
/// (`deps = ["/"]` watched the whole machine), unless `[project] allow_outside` names it.
#[test]
fn paths_outside_the_project_are_refused_unless_allowed() {
    let local = |deps: &str| {
        format!("{BASE}\n[[local]]\nname = \"gen\"\ncmd = \"true\"\ndeps = [{deps}]\n")
    };
    fails(
        &local("\"/\""),
        "17:9",
        &[
            "deps path `/` is outside the project",
            "[project] allow_outside",
        ],
    );
    fails(
        &local("\"../../../../\""),
        "17:9",
        &["deps path `../../../../` is outside the project"],
    );
    fails(
        &BASE.replace("context = \"app\"", "context = \"/etc\""),
        "3:11",
        &["build context `/etc` is outside the project"],
    );
    // A symlink that leads out is outside too.
    let p = project(&local("\"link\""));
    std::os::unix::fs::symlink("/etc", p.path().join("link")).unwrap_or_else(|e| panic!("{e}"));
    let out = p.devenv(&["config", "check"]);
    assert!(
        stderr(&out).contains("deps path `link` is outside the project"),
        "{}",
        stderr(&out)
    );
    // Named outside directories are allowed; `/` is not.
    let sibling = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = sibling.path().display().to_string();
    let allowed = format!(
        "[project]\nallow_outside = [\"{s}\"]\n\n{}",
        local(&format!("\"{s}\""))
    );
    let p = project(&allowed);
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fails(
        &format!("[project]\nallow_outside = [\"/\"]\n\n{BASE}"),
        "2:18",
        &["allow_outside may not name `/`"],
    );
}

/// Issue 16, point 7: values that would fail or overflow later are refused at check time, at
/// their line and column: environment names with `=` or NUL, NUL in a command, a 2 MB
/// command (echoed whole by every error), sizes and durations past any sane bound.
#[test]
fn values_that_would_fail_or_overflow_later_are_refused_at_check_time() {
    let local =
        |extra: &str| format!("{BASE}\n[[local]]\nname = \"gen\"\ncmd = \"true\"\n{extra}\n");
    fails(
        &local("env = { \"A=B\" = \"x\" }"),
        "17:17",
        &["`A=B` is no environment variable name"],
    );
    fails(
        &local("env = { \"A\\u0000B\" = \"x\" }"),
        "17:22",
        &["is no environment variable name"],
    );
    fails(
        &local("env = { A = \"x\\u0000y\" }"),
        "17:13",
        &["the value of `A` holds a NUL byte"],
    );
    let err = fails(
        &format!(
            "{BASE}\n[[local]]\nname = \"gen\"\ncmd = \"{}\"\n",
            "x".repeat(500_000)
        ),
        "16:7",
        &["the command is 500000 bytes long; at most 16384 are allowed"],
    );
    assert!(
        err.len() < 20_000,
        "the error does not echo the command: {} bytes",
        err.len()
    );
    fails(
        &local("").replace("cmd = \"true\"", "cmd = \"echo \\u0000\""),
        "16:7",
        &["the command holds a NUL byte"],
    );
    fails(
        &format!("[cluster]\nmemory = \"99999999999999999999g\"\n\n{BASE}"),
        "2:10",
        &["is larger than 1 TiB"],
    );
    fails(
        &format!("{BASE}readiness_timeout = \"99999999999999999h\"\n"),
        "13:21",
        &["is longer than 24h"],
    );
}

/// Issue 14 point 4: `depends_on` between two workloads of one Helm release is said at
/// check time, with how to order them instead.
#[test]
fn depends_on_inside_one_helm_release_is_a_warning_with_the_way_to_order_them() {
    let p = common::Project::example("todo");
    p.write(".env", "SECRET_KEY=x\nDATABASE_URL=y\n");
    let cfg = p.read("devenv.toml").replace(
        "port_forwards = [\"3000:3000\"]\n",
        "port_forwards = [\"3000:3000\"]\ndepends_on = [\"backend\"]\n",
    );
    p.write("devenv.toml", &cfg);
    let out = p.devenv(&["config", "check"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: `frontend` depends on `backend`, but both are workloads of the Helm release `todo`"),
        "{err}"
    );
    let line = cfg
        .lines()
        .position(|l| l.starts_with("depends_on = [\"backend\"]"))
        .map_or(0, |i| i + 1);
    assert!(err.contains(&format!("--> devenv.toml:{line}:15")), "{err}");
    assert!(
        err.contains(
            "hint: to order them in the cluster, give `frontend`'s pods an init container"
        ),
        "{err}"
    );
}

/// Issue 16, point 10: a 20,000-part dotted table header said only "recursion limit", with no
/// position; a key nested as deep, the same.
#[test]
fn a_very_deep_dotted_key_is_told_at_its_place() {
    let header = format!("{BASE}\n[{}]\nx = 1\n", vec!["a"; 20_000].join("."));
    fails(
        &header,
        "14:1",
        &["a key or table header of 20000 dotted parts", "at most 64"],
    );
    let key = format!("{BASE}\n{} = 1\n", vec!["k"; 5_000].join("."));
    fails(
        &key,
        "14:1",
        &["a key or table header of 5000 dotted parts"],
    );
    // A dotted URL in a multi-line string is text, not a key.
    let text = format!(
        "{BASE}\n[[local]]\nname = \"docs\"\ncmd = \"\"\"\necho {}\n\"\"\"\n",
        vec!["x"; 100].join(".")
    );
    let p = project(&text);
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 28 point 8: a `dockerfile` and `env_files` outside the project were accepted, while
/// contexts, deps and watch paths outside it were refused.
#[test]
fn a_dockerfile_or_an_env_file_outside_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.path().join(".env"), "KEY=value\n").unwrap_or_else(|e| panic!("{e}"));
    let df = outside.path().join("Dockerfile").display().to_string();
    let cfg = BASE.replace(
        "context = \"app\"\n",
        &format!("context = \"app\"\ndockerfile = \"{df}\"\n"),
    );
    fails(
        &cfg,
        "4:14",
        &[&format!("dockerfile `{df}` is outside the project")],
    );
    let env = outside.path().join(".env").display().to_string();
    let cfg = format!("{BASE}\n[[secret]]\nname = \"app-env\"\nenv_files = [\"{env}\"]\n");
    fails(
        &cfg,
        "16:14",
        &[&format!("env file `{env}` is outside the project")],
    );
}

/// Issue 25 point 3: a resource in namespace `api` whose Deployment names no namespace passed
/// `config check` (an object without one matched any resource's namespace), though the deploy
/// puts it into [deploy] namespace and `up` then waited for it in `api` until the timeout.
#[test]
fn a_workload_the_deploy_puts_in_another_namespace_than_the_resource_says_is_an_error() {
    let config = BASE.replace(
        "workload = \"deployment/app\"\n",
        "workload = \"deployment/app\"\nnamespace = \"api\"\n",
    );
    fails(
        &config,
        "11:12",
        &[
            "resource `app`: deployment/app (from k8s/app.yaml) is not in namespace `api`: it names no namespace, so it is deployed into [deploy] namespace `dev`",
            "hint: set the resource's namespace to `dev`, or give the object metadata.namespace: api",
        ],
    );
}

/// Issue 26: a serve command's restart policy is one of three words, and only for a serve
/// command.
#[test]
fn a_restart_policy_needs_a_serve_command_and_one_of_its_words() {
    fails(
        "[[local]]\nname = \"gen\"\ncmd = \"make\"\nrestart = \"always\"\n",
        "4:11",
        &[
            "`restart` is for a serve command, and local resource `gen` has none",
            "add serve_cmd",
        ],
    );
    fails(
        "[[local]]\nname = \"web\"\nserve_cmd = \"npm run dev\"\nrestart = \"sometimes\"\n",
        "4:11",
        &["on-change", "always", "never"],
    );
    let p =
        project("[[local]]\nname = \"web\"\nserve_cmd = \"npm run dev\"\nrestart = \"never\"\n");
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Two Helm releases (`[[deploy.helm]]`, issue 27 shape 5): each resource whose workload no
/// manifest holds says which release renders it, names a release that exists, and each
/// release has a name of its own.
const TWO_RELEASES: &str = r#"[[image]]
name = "app"
context = "app"

[deploy]
namespace = "dev"

[[deploy.helm]]
chart = "chart"
release = "api"

[[deploy.helm]]
chart = "chart"
release = "web"

[[resource]]
name = "app"
workload = "deployment/app"
release = "api"

[[resource]]
name = "site"
workload = "deployment/site"
release = "web"
"#;

#[test]
fn several_helm_releases_parse_and_each_resource_names_its_own() {
    let p = project(TWO_RELEASES);
    p.write(
        "chart/templates/workloads.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: site\nspec:\n  template:\n    spec:\n      containers:\n      - name: site\n        image: site\n",
    );
    let out = p.devenv(&["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("deploy     helm release `api` from chart in dev")
            && shown.contains("deploy     helm release `web` from chart in dev"),
        "{shown}"
    );
    fails(
        &TWO_RELEASES.replace(
            "workload = \"deployment/site\"\nrelease = \"web\"\n",
            "workload = \"deployment/site\"\n",
        ),
        "22:8",
        &[
            "resource `site` does not say which Helm release renders `deployment/site`, and there are 2",
            "add release = \"api\"",
        ],
    );
    fails(
        &TWO_RELEASES.replace(
            "workload = \"deployment/site\"\nrelease = \"web\"",
            "workload = \"deployment/site\"\nrelease = \"webs\"",
        ),
        "24:11",
        &["no Helm release `webs`", "did you mean `web`?"],
    );
    fails(
        &TWO_RELEASES.replace(
            "release = \"web\"\n\n[[resource]]",
            "release = \"api\"\n\n[[resource]]",
        ),
        "14:11",
        &["duplicate Helm release `api`"],
    );
    fails(
        &TWO_RELEASES.replace(
            "chart = \"chart\"\nrelease = \"web\"\n",
            "chart = \"chart\"\n",
        ),
        "13:9",
        &["the release of chart `chart` has no name, and there are several releases"],
    );
}

/// Issue 28, item 18: `config check` called a `.env` that does not parse valid (and `up`
/// then failed on it), and a non-UTF-8 `.env` gave no line. Both are errors of `config
/// check` now, at the `[[secret]]`, naming the file and the line, never its text.
#[test]
fn an_env_file_that_does_not_parse_is_an_error_with_its_line_and_no_text() {
    let config = format!("{BASE}\n[[secret]]\nname = \"app-env\"\nenv_files = [\".env\"]\n");
    let p = project(&config);
    p.write(".env", "GOOD=1\nzqhiddenfragment without an equals sign\n");
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(".env:2: expected KEY=value"), "{err}");
    assert!(!err.contains("zqhidden"), "{err}");
    let bytes: &[u8] = b"A=1\nB=2\nC=\xff\xfe\n";
    std::fs::write(p.path().join(".env"), bytes).unwrap_or_else(|e| panic!("{e}"));
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(".env:3: not UTF-8 text"), "{err}");
}

/// Issue 28, item 11: a FIFO as the values file stalled every deploy for 120 s (helm waited
/// on it). A values file must be a regular file: `config check` says so at its entry, at
/// once.
#[test]
fn a_values_file_that_is_not_a_regular_file_is_an_error() {
    let config = "[[image]]\nname = \"app\"\ncontext = \"app\"\n\n[deploy]\nnamespace = \"dev\"\n\n[deploy.helm]\nchart = \"chart\"\nvalues = [\"values-dev.yaml\"]\n";
    let p = project(config);
    common::mkfifo(&p.path().join("values-dev.yaml"));
    let mut cmd = std::process::Command::new(common::devenv_bin());
    cmd.args(["config", "check"]).current_dir(p.path());
    let out = common::output_within(cmd, std::time::Duration::from_secs(30))
        .unwrap_or_else(|| panic!("config check hung on a FIFO"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--> devenv.toml:10:11"), "{err}");
    assert!(
        err.contains("values file `values-dev.yaml` is not a regular file"),
        "{err}"
    );
    // The chart's own values.yaml too.
    std::fs::remove_file(p.path().join("values-dev.yaml")).unwrap_or_else(|e| panic!("{e}"));
    p.write("values-dev.yaml", "a: 1\n");
    std::os::unix::fs::symlink("/dev/zero", p.path().join("chart/values.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = std::process::Command::new(common::devenv_bin());
    cmd.args(["config", "check"]).current_dir(p.path());
    let out = common::output_within(cmd, std::time::Duration::from_secs(30))
        .unwrap_or_else(|| panic!("config check hung on /dev/zero"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the values.yaml of chart `chart` is not a regular file"),
        "{err}"
    );
}

/// Issue 28, item 20: `config check` of a config of local resources only said
/// "cluster    minikube profile `minikube`: 4 CPUs, 8192 MB", though nothing needs one.
#[test]
fn a_local_only_config_names_no_cluster() {
    let p = common::Project::new();
    p.write(
        "devenv.toml",
        "[project]\nname = \"lo\"\n\n[[local]]\nname = \"gen\"\ncmd = \"true\"\n",
    );
    let out = p.devenv(&["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("minikube"), "{text}");
    assert!(
        text.contains("cluster    none: the config runs local resources only"),
        "{text}"
    );
}

/// Issue 28, item 20: a hint names `--config` only when `--config` was given. A devenv.toml
/// found by the search that is too large to be a config said "check the path given to
/// --config" to a user who had given none.
#[test]
fn a_hint_names_the_config_flag_only_when_it_was_given() {
    let p = Project::new();
    p.write("devenv.toml", &"# padding\n".repeat(120_000));
    let found = p.devenv(&["config", "check"]);
    let err = stderr(&found);
    assert_eq!(found.status.code(), Some(1), "{err}");
    assert!(err.contains("devenv.toml is 1200000 bytes"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(!err.contains("--config"), "{err}");
    let given = p.devenv(&["config", "check", "--config", "devenv.toml"]);
    let err = stderr(&given);
    assert_eq!(given.status.code(), Some(1), "{err}");
    assert!(err.contains("--config"), "{err}");
}

/// Issue 28, item 20: when helm could not render the chart (it did not start, or outran
/// its time), the message named the command twice: "`helm template …`: cannot start
/// `helm template …`: …". The error names it once. The helm here cannot start as one being
/// installed cannot: the test holds it open for writing, so running it fails (ETXTBSY).
#[test]
fn a_helm_that_cannot_start_is_named_once() {
    let p = project(&BASE.replace(
        "manifests = [\"k8s/*.yaml\"]",
        "[deploy.helm]\nchart = \"chart\"",
    ));
    let bin = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let helm = bin.path().join("helm");
    std::fs::write(&helm, "#!/bin/sh\nexit 0\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let _writing = std::fs::OpenOptions::new()
        .append(true)
        .open(&helm)
        .unwrap_or_else(|e| panic!("{e}"));
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(common::devenv_bin())
        .args(["config", "check"])
        .current_dir(p.path())
        .env("PATH", path)
        .env_remove("DEVENV_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start `helm template"), "{err}");
    assert_eq!(err.matches("helm template").count(), 1, "{err}");
}

/// A .env file of 3 GiB (a wrong file, a log named `.env`) was read whole by `config check`
/// and `up` to look for its keys. A .env is read as a regular file of at most 1 MiB, and a
/// larger one is named as such, without its text.
#[test]
fn a_huge_env_file_is_refused_without_being_read() {
    let p = project(&format!(
        "{BASE}\n[[secret]]\nname = \"app-secrets\"\nenv_files = [\".env\"]\n"
    ));
    std::fs::File::create(p.path().join(".env"))
        .and_then(|f| f.set_len(3 << 30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = std::process::Command::new(common::devenv_bin());
    cmd.args(["config", "check"])
        .current_dir(p.path())
        .env_remove("DEVENV_CONFIG")
        .env("NO_COLOR", "1");
    let out = common::output_within(cmd, std::time::Duration::from_secs(60))
        .unwrap_or_else(|| panic!("config check did not end"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read .env: it is larger than 1 MiB"),
        "{err}"
    );
}

/// Issue 28, "What to build": every file devenv reads in a repository is read without
/// following a link out of it, as a regular file, with a size cap. A manifest that the
/// glob finds but that is a link to a file outside the project was read and applied; a
/// manifest of 20 MiB was read whole (past the 16 MiB a bundle of CRDs needs).
#[test]
fn a_manifest_that_leads_out_or_is_huge_is_refused() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secret = outside.path().join("stolen.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = project(BASE);
    std::os::unix::fs::symlink(&secret, p.path().join("k8s/stolen.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("manifest `k8s/stolen.yaml` (of `k8s/*.yaml`) leads out of the project"),
        "{err}"
    );

    let p = project(BASE);
    std::fs::File::create(p.path().join("k8s/huge.yaml"))
        .and_then(|f| f.set_len(20 << 20))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "manifest `k8s/huge.yaml` cannot be read as Kubernetes YAML: it is larger than 16 MiB"
        ),
        "{err}"
    );
}
