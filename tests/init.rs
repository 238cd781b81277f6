//! `devenv init` on repositories of different shapes (tests/fixtures/init/, and the todo
//! sample without its devenv.toml): the written config passes `config check`, plans with
//! `up --dry-run`, and says what the repository holds. The chart is rendered by the real
//! `helm` (scripts/install-test-tools.sh installs it); nothing reaches a cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{copy_dir, repo_root, stderr, stdout};

/// A copy of a repository in a directory of the project's name (init names the project
/// after its directory, as a checkout is named after its repository).
struct Repo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Repo {
    fn of(from: &Path, name: &str) -> Repo {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join(name);
        copy_dir(from, &dir);
        Repo { _tmp: tmp, dir }
    }

    fn fixture(name: &str) -> Repo {
        Repo::of(&repo_root().join("tests/fixtures/init").join(name), name)
    }

    fn devenv(&self, args: &[&str]) -> Output {
        Command::new(common::devenv_bin())
            .args(args)
            .current_dir(&self.dir)
            .env_remove("DEVENV_CONFIG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run devenv: {e}"))
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `devenv init` (with `args`), which must pass; its output.
    fn init(&self, args: &[&str]) -> String {
        let mut all = vec!["init"];
        all.extend(args);
        let out = self.devenv(&all);
        assert!(
            out.status.success(),
            "init failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `config check` and `up --dry-run` on what init wrote; the plan.
    fn checked_plan(&self) -> String {
        let check = self.devenv(&["config", "check"]);
        assert!(
            check.status.success(),
            "config check:\n{}\n{}",
            stderr(&check),
            self.read("devenv.toml")
        );
        assert!(!stderr(&check).contains("warning"), "{}", stderr(&check));
        let plan = self.devenv(&["up", "--dry-run"]);
        assert!(plan.status.success(), "dry run:\n{}", stderr(&plan));
        stdout(&plan)
    }
}

/// Lines of the config that are not comments, for assertions that do not hang on wording.
fn settings(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The comments, joined into one line (they wrap at any word).
fn said(text: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .collect::<Vec<_>>()
        .join(" ")
}

#[track_caller]
fn has(text: &str, what: &str) {
    assert!(text.contains(what), "no {what:?} in\n{text}");
}

/// The plan with what differs from one machine or copy to the next written the same: the
/// state directory, the local ports init chose (the remote ports stay).
fn normalized(plan: &str) -> String {
    let state =
        regex::Regex::new(r"/[^ ]*/projects/[0-9a-f]{16}/").unwrap_or_else(|e| panic!("{e}"));
    let local = regex::Regex::new(r"127\.0\.0\.1:[0-9]+").unwrap_or_else(|e| panic!("{e}"));
    let ports = regex::Regex::new(r"ports [0-9, ]+ free").unwrap_or_else(|e| panic!("{e}"));
    let p = state.replace_all(plan, "<state>/");
    let p = local.replace_all(&p, "127.0.0.1:<port>");
    ports.replace_all(&p, "ports <ports> free").into_owned()
}

/// Issue 18's first acceptance point: the todo sample without its devenv.toml, initialised,
/// plans exactly as the hand-written config does.
#[test]
fn the_todo_sample_initialised_plans_as_its_hand_written_config() {
    let sample = repo_root().join("examples/todo");
    let hand = Repo::of(&sample, "todo");
    std::fs::write(hand.dir.join(".env"), hand.read(".env.example"))
        .unwrap_or_else(|e| panic!("{e}"));
    let made = Repo::of(&sample, "todo");
    std::fs::remove_file(made.dir.join("devenv.toml")).unwrap_or_else(|e| panic!("{e}"));
    let told = made.init(&["--with-tests"]);
    has(&told, "created    .env from .env.example");
    has(&told, "(it passes `devenv config check`)");
    assert_eq!(made.read(".env"), made.read(".env.example"));
    let text = made.read("devenv.toml");
    // Where the parts came from is said beside them.
    let said_in = said(&text);
    has(
        &said_in,
        "Found by rendering the chart with a marker in each value: Deployment/todo-backend container `backend` takes the image from `backend.image.repository` and `backend.image.tag`.",
    );
    has(&said_in, "`uvicorn` reloads changed files with --reload");
    has(
        &said_in,
        "Its init container waits for backend; one helm upgrade deploys both",
    );
    assert_eq!(
        normalized(&made.checked_plan()),
        normalized(&hand.checked_plan())
    );
}

/// Issue 27's acceptance: the hello example's hand-written config and what init writes for
/// it plan the same `up` (init lists the manifest file the glob matches, and writes the
/// cluster's defaults out).
#[test]
fn the_hello_example_initialised_plans_as_its_hand_written_config() {
    let sample = repo_root().join("examples/hello");
    let hand = Repo::of(&sample, "hello");
    let made = Repo::of(&sample, "hello");
    std::fs::remove_file(made.dir.join("devenv.toml")).unwrap_or_else(|e| panic!("{e}"));
    made.init(&[]);
    let s = settings(&made.read("devenv.toml"));
    has(&s, "manifests = [\"k8s/deployment.yaml\"]");
    assert_eq!(
        normalized(&made.checked_plan()),
        normalized(&hand.checked_plan())
    );
}

#[test]
fn init_prints_the_same_text_for_the_same_tree_and_never_replaces_a_config_unasked() {
    let r = Repo::fixture("ledger");
    let first = r.devenv(&["init", "--print"]);
    let second = r.devenv(&["init", "--print"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&second));
    assert!(
        !r.dir.join("devenv.toml").exists(),
        "--print writes nothing"
    );
    r.init(&[]);
    assert_eq!(r.read("devenv.toml"), stdout(&first));
    std::fs::write(r.dir.join("devenv.toml"), "# mine\n").unwrap_or_else(|e| panic!("{e}"));
    let again = r.devenv(&["init"]);
    assert_eq!(again.status.code(), Some(1));
    has(
        &stderr(&again),
        "devenv.toml exists; devenv init does not replace it",
    );
    has(
        &stderr(&again),
        "--force replaces the file and keeps the old one as devenv.toml.bak",
    );
    assert_eq!(r.read("devenv.toml"), "# mine\n");
    let forced = r.init(&["--force"]);
    has(&forced, "kept       the old devenv.toml as devenv.toml.bak");
    assert_eq!(r.read("devenv.toml.bak"), "# mine\n");
    assert_eq!(r.read("devenv.toml"), stdout(&first));
}

/// Dockerfiles under docker/<service>/ whose contexts are services/<service>; plain
/// manifests whose images the images take their names from; an init container that waits
/// for the other workload's Service.
#[test]
fn dockerfiles_in_a_docker_directory_with_contexts_elsewhere() {
    let r = Repo::fixture("acme");
    r.init(&[]);
    let s = settings(&r.read("devenv.toml"));
    has(
        &s,
        "[[image]]\nname = \"acme/api\"\ncontext = \"services/api\"\ndockerfile = \"docker/api/Dockerfile\"\nlive_update = true\ndev_command = [\"uvicorn\", \"src.main:app\", \"--host\", \"0.0.0.0\", \"--port\", \"8080\", \"--reload\"]",
    );
    has(
        &s,
        "[[image]]\nname = \"acme/web\"\ncontext = \"services/web\"\ndockerfile = \"docker/web/Dockerfile\"\nlive_update = true",
    );
    has(&s, "manifests = [\"k8s/*.yaml\"]");
    has(
        &s,
        "name = \"web\"\nworkload = \"deployment/web\"\nimages = [\"acme/web\"]",
    );
    has(&s, ":3000\"]\ndepends_on = [\"api\"]");
    let plan = r.checked_plan();
    has(&plan, "dockerfiles/acme_api.Dockerfile services/api");
    has(&plan, "-f docker/web/Dockerfile services/web");
    has(
        &plan,
        "wait       web: deployment/web in acme ready (timeout 5m), after api",
    );
}

/// A chart whose image keys are its own (`apiServer.img.name`, a whole reference in
/// `frontend.image`), found by rendering; a distroless image gets no live update.
#[test]
fn a_chart_with_image_keys_of_its_own_naming() {
    let r = Repo::fixture("shop");
    r.init(&[]);
    let text = r.read("devenv.toml");
    let s = settings(&text);
    has(
        &s,
        "[[deploy.helm.images]]\nimage = \"shop-api\"\nrepository = \"apiServer.img.name\"\ntag = \"apiServer.img.version\"",
    );
    has(
        &s,
        "[[deploy.helm.images]]\nimage = \"shop-ui\"\nvalue = \"frontend.image\"",
    );
    has(
        &s,
        "name = \"api-server\"\nworkload = \"deployment/shop-api-server\"",
    );
    has(&s, "target = \"final\"");
    assert!(!s.contains("live_update"), "{s}");
    has(
        &said(&text),
        "Live update off: its running stage copies no sources after its last RUN",
    );
    // Port 80 is forwarded from a port above 1024.
    let ui = regex::Regex::new(r#"port_forwards = \["(80[0-9][0-9]):80"\]"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ui.is_match(&s), "{s}");
    let plan = r.checked_plan();
    has(
        &plan,
        "--set apiServer.img.name=shop-api --set apiServer.img.version=devenv-",
    );
    has(&plan, "--set frontend.image=shop-ui:devenv-");
}

/// One image run by a web Deployment and a worker (one pair of keys) and a migration Job
/// (keys of its own); the chart calls the image otherwise than the project.
#[test]
fn one_image_in_several_workloads_through_several_keys() {
    let r = Repo::fixture("ledger");
    r.init(&[]);
    let text = r.read("devenv.toml");
    let s = settings(&text);
    has(
        &s,
        "[[deploy.helm.images]]\nimage = \"ledger\"\nrepository = \"image.repository\"\ntag = \"image.tag\"\n[[deploy.helm.images]]\nimage = \"ledger\"\nrepository = \"migrations.image.repository\"\ntag = \"migrations.image.tag\"",
    );
    has(
        &said(&text),
        "Deployment/ledger-web container `web`, Deployment/ledger-worker container `worker` take the image from `image.repository` and `image.tag`",
    );
    for (name, workload) in [
        ("web", "deployment/ledger-web"),
        ("worker", "deployment/ledger-worker"),
        ("migrate", "job/ledger-migrate"),
    ] {
        has(
            &s,
            &format!("name = \"{name}\"\nworkload = \"{workload}\"\nimages = [\"ledger\"]"),
        );
    }
    has(
        &s,
        "dev_command = [\"gunicorn\", \"app.wsgi:app\", \"--bind\", \"0.0.0.0:8000\", \"--reload\"]",
    );
    let plan = r.checked_plan();
    has(&plan, "--set migrations.image.repository=ledger");
}

/// A chart that renders its own Namespace (from the development values beside it), with an
/// image whose command does not reload: no live update.
#[test]
fn a_chart_that_renders_its_namespace() {
    let r = Repo::fixture("orbit");
    r.init(&[]);
    let text = r.read("devenv.toml");
    let s = settings(&text);
    has(&s, "[deploy]\nnamespace = \"orbit-dev\"");
    has(&s, "values = [\"deploy/values-local.yaml\"]");
    has(
        &said(&text),
        "Namespace `orbit-dev`: the Namespace the chart renders.",
    );
    has(
        &said(&text),
        "`node src/index.js` does not reload changed files",
    );
    assert!(!s.contains("live_update"), "{s}");
    // No containerPort: the Service's target port.
    has(&s, ":4000\"]");
    let plan = r.checked_plan();
    has(&plan, "the chart renders it");
}

/// Plain manifests with an untagged image: the image is named as the manifests call it.
#[test]
fn plain_manifests_with_an_untagged_image() {
    let r = Repo::fixture("hello-api");
    r.init(&[]);
    let s = settings(&r.read("devenv.toml"));
    has(&s, "[[image]]\nname = \"hello-api\"\ncontext = \".\"");
    has(&s, "manifests = [\"deploy/app.yaml\"]");
    has(
        &s,
        "[[resource]]\nname = \"hello-api\"\nworkload = \"deployment/hello-api\"",
    );
    let plan = r.checked_plan();
    has(
        &plan,
        "wait       hello-api: deployment/hello-api in hello-api ready",
    );
}

/// Issue 27, shape 1: Kubernetes YAML beside the Dockerfile (`service/kubernetes.yaml`, which
/// the project's Tiltfile loads), not in a `k8s/`-like folder. init found no manifests,
/// named the image after its folder and wrote no resource; YAML files that hold no
/// Kubernetes objects (a compose file, a CI file) are not manifests.
#[test]
fn kubernetes_yaml_beside_the_dockerfile_is_found() {
    let r = Repo::fixture("yaml-beside");
    let said = r.init(&[]);
    let s = settings(&r.read("devenv.toml"));
    has(&s, "manifests = [\"service/kubernetes.yaml\"]");
    has(
        &s,
        "[[image]]\nname = \"greeter-image\"\ncontext = \"service\"",
    );
    has(
        &s,
        "[[resource]]\nname = \"greeter\"\nworkload = \"deployment/greeter\"",
    );
    assert!(!said.contains("docker-compose.yml"), "{said}");
    assert!(!said.contains(".gitlab-ci.yml"), "{said}");
    let plan = r.checked_plan();
    has(
        &plan,
        "wait       greeter: deployment/greeter in yaml-beside ready",
    );
}

/// Issue 27, shape 6: a chart whose names come from `fullnameOverride: ""` (the common
/// helper). init's render marker reached the name (`Deployment/devenvinit0z`), and the
/// resource was written without its image.
#[test]
fn a_name_made_from_an_empty_override_is_the_real_name() {
    let r = Repo::fixture("name-override");
    let said = r.init(&[]);
    let config = r.read("devenv.toml");
    assert!(
        !said.contains("devenvinit") && !config.contains("devenvinit"),
        "{said}\n{config}"
    );
    let s = settings(&config);
    has(
        &s,
        "[[resource]]\nname = \"shop\"\nworkload = \"deployment/name-override-shop\"\nimages = [\"name-override-api\"]",
    );
    r.checked_plan();
}

/// Issue 27, shape 2: folders named unlike the images they feed (`api/` feeds
/// `todo-backend`, `web-app/` feeds `todo-frontend`). init dropped both Dockerfiles ("no
/// workload runs its image") and the workloads kept running `:fixed3` and `:latest`, which
/// nothing builds. The Dockerfile's EXPOSE against the container's ports pairs them.
#[test]
fn dockerfiles_in_folders_named_unlike_their_images_pair_by_port() {
    let r = Repo::fixture("unlike-names");
    let said = r.init(&[]);
    assert!(!said.contains("no workload runs its image"), "{said}");
    let s = settings(&r.read("devenv.toml"));
    has(
        &s,
        "[[deploy.helm.images]]\nimage = \"unlike-names-api\"\nrepository = \"backend.image.repository\"\ntag = \"backend.image.tag\"",
    );
    has(
        &s,
        "[[deploy.helm.images]]\nimage = \"unlike-names-web-app\"\nrepository = \"frontend.image.repository\"\ntag = \"frontend.image.tag\"",
    );
    r.checked_plan();
}

/// Issue 27, shape 4: a chart that makes its Secret from values (`secret.databaseUrl`, which
/// the project's deploy script passes with `--set` from its .env). init wired nothing, so the
/// Secret's keys were empty. The values a rendered Secret carries are matched to the .env's
/// keys by the Secret's key or the value's own name, whatever their case and style; a value
/// the .env does not have, and a ConfigMap's value, are left alone.
#[test]
fn a_chart_that_makes_its_secret_from_values_gets_them_from_the_env_file() {
    let r = Repo::fixture("secret-values");
    let said = r.init(&[]);
    let config = r.read("devenv.toml");
    let s = settings(&config);
    has(&s, "env_files = [\".env\"]");
    has(
        &s,
        "values_from_env = { \"secret.databaseUrl\" = \"DATABASE_URL\", \"secret.jwtSecret\" = \"JWT_SECRET\", \"secret.openaiApiKey\" = \"OPENAI_API_KEY\" }",
    );
    assert!(!s.contains("LOG_LEVEL"), "{config}");
    has(&said, "created    .env from .env.example");
    has(
        &said,
        "found      Secret `secret-values-secrets` takes DATABASE_URL, JWT_SECRET, OPENAI_API_KEY from .env.example",
    );
    r.checked_plan();
}

/// Issue 27, shape 5: two charts in one repository (a backend chart and a frontend chart).
/// init took one and said "devenv deploys one chart"; the other's workload ran nothing built
/// here. Now each chart is a release of its own (`[[deploy.helm]]`), each resource says which
/// release renders it, a wait across releases is a depends_on, and `up` upgrades each
/// release with its own images, the backend's first.
#[test]
fn two_charts_are_two_releases_each_with_its_images_and_resources() {
    let r = Repo::fixture("two-charts");
    let said = r.init(&[]);
    assert!(!said.contains("devenv deploys one chart"), "{said}");
    let s = settings(&r.read("devenv.toml"));
    has(
        &s,
        "[[deploy.helm]]\nchart = \"deploy/backend\"\nrelease = \"two-charts-backend\"\n[[deploy.helm.images]]\nimage = \"two-charts-backend\"",
    );
    has(
        &s,
        "[[deploy.helm]]\nchart = \"deploy/frontend\"\nrelease = \"two-charts-frontend\"\n[[deploy.helm.images]]\nimage = \"two-charts-frontend\"",
    );
    has(
        &s,
        "name = \"api\"\nworkload = \"deployment/two-charts-backend-api\"\nrelease = \"two-charts-backend\"",
    );
    has(
        &s,
        "name = \"web\"\nworkload = \"deployment/two-charts-frontend-web\"\nrelease = \"two-charts-frontend\"",
    );
    has(&s, "depends_on = [\"api\"]");
    let plan = r.checked_plan();
    let backend = plan
        .find("helm upgrade --install two-charts-backend deploy/backend")
        .unwrap_or_else(|| panic!("no upgrade of the backend release:\n{plan}"));
    let frontend = plan
        .find("helm upgrade --install two-charts-frontend deploy/frontend")
        .unwrap_or_else(|| panic!("no upgrade of the frontend release:\n{plan}"));
    assert!(backend < frontend, "{plan}");
    // Each release is given its own image only.
    let line = |at: usize| plan[at..].lines().next().unwrap_or_default().to_owned();
    assert!(
        line(backend).contains("image.repository=two-charts-backend"),
        "{plan}"
    );
    assert!(!line(backend).contains("two-charts-frontend"), "{plan}");
    assert!(
        line(frontend).contains("image.repository=two-charts-frontend"),
        "{plan}"
    );
}

/// `devenv init DIR` run from outside the repository writes what `devenv init` run inside
/// it writes. Found by issue 27's acceptance run: from the parent directory, the chart's
/// values were read relative to the working directory, no marker was planted, no image was
/// paired, and both Dockerfiles were "left out".
#[test]
fn init_of_a_directory_from_outside_it_writes_the_same_config() {
    let r = Repo::fixture("unlike-names");
    let inside = r.init(&["--print"]);
    let parent = r.dir.parent().unwrap_or_else(|| panic!("no parent"));
    let out = Command::new(common::devenv_bin())
        .args(["init", "--print", "unlike-names"])
        .current_dir(parent)
        .env_remove("DEVENV_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr(&out));
    let outside = stdout(&out);
    assert!(!outside.contains("no workload runs its image"), "{outside}");
    assert_eq!(outside, inside);
}

/// Issue 27, shapes 7 and 8, from a Tiltfile: a `local_resource` whose output the web
/// image COPYs, with `resource_deps`, became no `[[local]]` and no depends_on (the first
/// build failed on the missing files); `docker_build(..., entrypoint=...)` became no
/// dev_command. init reads the Tiltfile's calls as evidence (string arguments, no Starlark
/// evaluation), carries over what devenv can do, and names each call it cannot.
#[test]
fn a_tiltfiles_local_resource_entrypoint_and_resource_deps_are_carried_over() {
    let r = Repo::fixture("tilt-local");
    let said = r.init(&[]);
    let config = r.read("devenv.toml");
    let s = settings(&config);
    has(
        &s,
        "[[local]]\nname = \"gen-client\"\ncmd = \"python3 tools/gen_client.py\"\nworkdir = \".\"\ndeps = [\"api/openapi.json\", \"tools/gen_client.py\"]",
    );
    // The web resource's table (its local port is whichever is free here).
    let web = s
        .split("[[resource]]")
        .find(|t| t.contains("name = \"web\""))
        .unwrap_or_else(|| panic!("no web resource in\n{s}"));
    has(
        web,
        "name = \"web\"\nworkload = \"deployment/web\"\nimages = [\"acme/web\"]\nport_forwards = [",
    );
    has(web, ":3000\"]\ndepends_on = [\"gen-client\", \"api\"]");
    has(
        &s,
        "name = \"acme/web\"\ncontext = \"web\"\ndockerfile = \"web/Dockerfile.dev\"\nlive_update = true\ndev_command = [\"sh\", \"-c\", \"npm run dev\"]",
    );
    has(&said, "Tiltfile:23 helm_resource('redis', …)");
    has(&said, "Tiltfile:10 docker_build('acme/web', …)");
    let plan = r.checked_plan();
    let local = plan
        .find("python3 tools/gen_client.py")
        .unwrap_or_else(|| panic!("no local step:\n{plan}"));
    let build = plan
        .find("acme/web:devenv-")
        .unwrap_or_else(|| panic!("no build of acme/web:\n{plan}"));
    assert!(
        local < build,
        "the local runs before the build it feeds:\n{plan}"
    );
}

/// Issue 27, shape 3: two Dockerfiles for one service (one for compose, EXPOSE 7860; one
/// under docker/ for Kubernetes, port 8000). init kept the one whose port the chart's
/// containerPort and probes do not use, and said of the other "no workload runs its image".
#[test]
fn of_two_dockerfiles_for_one_service_the_one_with_the_charts_port_is_built() {
    let r = Repo::fixture("two-dockerfiles");
    let said = r.init(&[]);
    let config = r.read("devenv.toml");
    let s = settings(&config);
    has(&s, "dockerfile = \"backend/docker/Dockerfile\"");
    assert!(
        said.contains("left out   backend/Dockerfile: another Dockerfile of `backend`"),
        "{said}"
    );
    assert!(!said.contains("no workload runs its image"), "{said}");
    r.checked_plan();
}

/// Issue 27, shape 9: two example projects in sibling folders with the same leaf name
/// (`3-recommended`) got the same project name, namespace and release (`app-3-recommended`),
/// so each `up` replaced the other's objects. A leaf that names nothing of its own takes its
/// parent's name in front.
#[test]
fn sibling_examples_with_the_same_leaf_get_names_of_their_own() {
    let mut names = Vec::new();
    for lang in ["python", "go"] {
        let r = Repo::of(
            &repo_root().join("tests/fixtures/init/yaml-beside"),
            &format!("tilt-example-{lang}/3-recommended"),
        );
        r.init(&[]);
        let s = settings(&r.read("devenv.toml"));
        has(
            &s,
            &format!("[project]\nname = \"tilt-example-{lang}-3-recommended\""),
        );
        has(
            &s,
            &format!("namespace = \"tilt-example-{lang}-3-recommended\""),
        );
        names.push(s);
    }
    assert_ne!(names[0], names[1]);
}

/// A `.env.example` at the root: the Secret the pods read is made from `.env` (made from the
/// example), with the key the chart spells otherwise mapped; the tests found become a
/// manual step with --with-tests.
#[test]
fn an_env_example_at_the_root_gives_the_secret() {
    let r = Repo::fixture("notes");
    let told = r.init(&["--with-tests"]);
    has(
        &told,
        "created    .env from .env.example: put your own values in it\n",
    );
    let s = settings(&r.read("devenv.toml"));
    has(
        &s,
        "[[secret]]\nname = \"notes-secrets\"\nenv_files = [\".env\"]\nkeys = { database-url = \"DATABASE_URL\" }",
    );
    has(&s, "target = \"development\"\nlive_update = true");
    has(
        &s,
        "[[local]]\nname = \"server-tests\"\ncmd = \"python3 -m pytest -q tests\"\nworkdir = \"server\"\ndeps = [\"server/notes\", \"server/tests\"]\ntrigger = \"manual\"",
    );
    let plan = r.checked_plan();
    has(&plan, "secret     notes-secrets in notes from .env");
}

/// Issue 28 points 1-3 and 21: init wrote through a symbolic link named like its temporary
/// file, created `.env` through a dangling `.env` link (a file of the repository's choosing
/// outside it), copied a `.env.example` link's target (a private key) into `.env`, and
/// replaced a dangling `devenv.toml` link without `--force`.
#[test]
fn init_writes_nothing_through_symbolic_links_and_copies_no_file_from_outside() {
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "the user's own file\n").unwrap_or_else(|e| panic!("{e}"));
    let secret = outside.path().join("id_rsa");
    std::fs::write(&secret, "-----BEGIN PRIVATE KEY-----\n").unwrap_or_else(|e| panic!("{e}"));
    let sample = repo_root().join("examples/todo");
    let link = |target: &Path, at: &Path| {
        std::os::unix::fs::symlink(target, at).unwrap_or_else(|e| panic!("{e}"));
    };

    // The temporary file's old name, and a dangling .env, both pointing out.
    let r = Repo::of(&sample, "todo");
    std::fs::remove_file(r.dir.join("devenv.toml")).unwrap_or_else(|e| panic!("{e}"));
    link(&victim, &r.dir.join(".devenv.toml.init"));
    let planted = outside.path().join("planted");
    link(&planted, &r.dir.join(".env"));
    let out = r.devenv(&["init"]);
    let told = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap_or_default(),
        "the user's own file\n"
    );
    assert!(!planted.exists(), "a file was made through the .env link");
    assert!(
        !r.dir.join("devenv.toml").is_symlink() && r.dir.join("devenv.toml").is_file(),
        "{told}"
    );
    // The .env the config names is the link, which leads nowhere: said, not fixed.
    has(
        &told,
        "skipped    .env is a symbolic link: nothing is written through it",
    );
    has(&told, "env file `.env` not found");

    // A .env.example that links out: its target is not copied.
    let r = Repo::of(&sample, "todo");
    std::fs::remove_file(r.dir.join("devenv.toml")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(r.dir.join(".env.example")).unwrap_or_else(|e| panic!("{e}"));
    link(&secret, &r.dir.join(".env.example"));
    let told = r.devenv(&["init"]);
    let text = format!("{}{}", stdout(&told), stderr(&told));
    let env = std::fs::read_to_string(r.dir.join(".env")).unwrap_or_default();
    assert!(!env.contains("PRIVATE KEY"), "{text}");

    // A dangling devenv.toml link is the user's: kept without --force.
    let r = Repo::of(&sample, "todo");
    std::fs::remove_file(r.dir.join("devenv.toml")).unwrap_or_else(|e| panic!("{e}"));
    link(
        &outside.path().join("elsewhere.toml"),
        &r.dir.join("devenv.toml"),
    );
    let out = r.devenv(&["init"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(r.dir.join("devenv.toml").is_symlink());
    assert!(!outside.path().join("elsewhere.toml").exists());
}

/// Issue 28, item 10: init read repository files with no type or size limit: a Dockerfile
/// linked to /dev/zero ran it to 4.2 GB, and a FIFO named Dockerfile hung it. Every file
/// init reads (Dockerfiles, Chart.yaml, values files, .env files, package.json, Tiltfiles)
/// is read as a regular file of at most 1 MiB, without following a link and without
/// blocking: init ends, and says what it could.
#[test]
fn init_ends_on_fifos_devices_and_links_in_place_of_its_files() {
    let r = Repo::fixture("secret-values");
    let fifo = |rel: &str| {
        let path = r.dir.join(rel);
        let _ = std::fs::remove_file(&path);
        common::mkfifo(&path);
    };
    let zero = |rel: &str| {
        let path = r.dir.join(rel);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap_or_else(|e| panic!("{e}"));
    };
    std::fs::create_dir_all(r.dir.join("worker")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(r.dir.join("web")).unwrap_or_else(|e| panic!("{e}"));
    fifo("worker/Dockerfile");
    zero("web/Dockerfile");
    fifo(".env.example");
    zero("helm/todo/values.yaml");
    fifo("Tiltfile");
    zero("web/package.json");
    let mut cmd = Command::new(common::devenv_bin());
    cmd.args(["init", "--print", "--with-tests"])
        .current_dir(&r.dir)
        .env_remove("DEVENV_CONFIG");
    let out = common::output_within(cmd, std::time::Duration::from_secs(60))
        .unwrap_or_else(|| panic!("init hung on a FIFO or a device"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("left out   web/Dockerfile: not a regular file"),
        "{said}"
    );
}

/// Issue 28, item 21: init skipped a symlinked chart directory without a word. It does not
/// follow a link (a link may lead out of the repository), and now says which it left out.
#[test]
fn a_symlinked_directory_is_left_out_saying_so() {
    let r = Repo::fixture("secret-values");
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let chart = r.dir.join("helm/todo");
    copy_dir(&chart, &outside.path().join("todo"));
    std::fs::remove_dir_all(&chart).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path().join("todo"), &chart)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = r.devenv(&["init", "--print"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("left out   helm/todo: a symbolic link to a directory, not followed"),
        "{said}"
    );
}

/// What one entry of a hostile tree is.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Small,
    NotUtf8,
    /// 3 MiB, sparse: past every size cap.
    Huge,
    Fifo,
    /// A link to /dev/zero.
    Zero,
    /// A link to a file outside the repository.
    OutFile,
    /// A link to a directory outside the repository.
    OutDir,
    /// A link to the repository's root (a loop).
    Loop,
    Dangling,
}

/// Makes `kind` at `path`, pointing out at `outside` where it points out.
fn make_hostile(path: &Path, kind: Hostile, outside: &Path) {
    use std::os::unix::fs::symlink;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(path);
    let done = match kind {
        Hostile::Small => std::fs::write(path, "x: 1\n"),
        Hostile::NotUtf8 => std::fs::write(path, b"A=\xff\xfe\n"),
        Hostile::Huge => std::fs::File::create(path).and_then(|f| f.set_len(3 << 20)),
        Hostile::Fifo => {
            common::mkfifo(path);
            Ok(())
        }
        Hostile::Zero => symlink("/dev/zero", path),
        Hostile::OutFile => symlink(outside.join("victim.txt"), path),
        Hostile::OutDir => symlink(outside, path),
        Hostile::Loop => symlink("/", path).and_then(|()| {
            std::fs::remove_file(path)?;
            symlink(path.parent().unwrap_or(path), path)
        }),
        Hostile::Dangling => symlink(outside.join("nothing-here"), path),
    };
    done.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Every file below `dir` with its content (links as their targets), to compare.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{e}"));
        if meta.is_dir() {
            out.extend(snapshot(&p));
        } else if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&p).unwrap_or_default();
            out.push((p, t.as_os_str().as_encoded_bytes().to_vec()));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Issue 28's acceptance: `init` (writing) and `config check` on hostile repository
    /// trees (links in and out, loops, FIFOs, devices, huge and non-UTF-8 files where init
    /// and check read): they end within a bound, write nothing outside the repository, and
    /// stay within a bounded amount of memory.
    #[test]
    fn init_and_check_on_hostile_trees_end_write_nothing_outside_and_stay_small(
        entries in proptest::collection::vec(
            (
                proptest::sample::select(vec!["", "app/", "helm/todo/", "helm/todo/templates/", "k8s/", "backend/"]),
                proptest::sample::select(vec![
                    "Dockerfile", "values.yaml", "Chart.yaml", ".env", ".env.example", "Tiltfile",
                    "Makefile", "package.json", "app.yaml", "devenv.toml", ".devenv.toml.init",
                    "README.md", "docker-compose.yml", "main.py",
                ]),
                proptest::sample::select(vec![
                    Hostile::Small, Hostile::NotUtf8, Hostile::Huge, Hostile::Fifo, Hostile::Zero,
                    Hostile::OutFile, Hostile::OutDir, Hostile::Loop, Hostile::Dangling,
                ]),
            ),
            1..8,
        )
    ) {
        let r = Repo::fixture("secret-values");
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.path().join("victim.txt"), "the user's own file\n")
            .unwrap_or_else(|e| panic!("{e}"));
        for (dir, name, kind) in &entries {
            make_hostile(&r.dir.join(format!("{dir}{name}")), *kind, outside.path());
        }
        let before = snapshot(outside.path());
        for args in [&["init", "--force"][..], &["config", "check"][..]] {
            let mut cmd = Command::new(common::devenv_bin());
            cmd.args(args).current_dir(&r.dir).env_remove("DEVENV_CONFIG");
            #[allow(
                clippy::zombie_processes,
                reason = "reaped by wait4(2) below, for its peak memory"
            )]
            let mut child = cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"));
            let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value for wait4(2) to fill.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: wait4(2) on our own child, without blocking.
                let w = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
                if w == pid {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("`devenv {}` hung on {entries:?}", args.join(" "));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            proptest::prop_assert!(
                usage.ru_maxrss < 300 * 1024,
                "`devenv {}` took {} KB on {entries:?}",
                args.join(" "),
                usage.ru_maxrss
            );
        }
        proptest::prop_assert_eq!(snapshot(outside.path()), before, "something was written outside");
        // What init wrote is a file of the repository, never through a link.
        let written = std::fs::symlink_metadata(r.dir.join("devenv.toml"));
        if let Ok(m) = written {
            proptest::prop_assert!(m.is_file() || m.file_type().is_symlink());
        }
    }
}

/// Issue 28, item 20: a directory init could not list (another user's, mode 000) was
/// skipped without a word, and config check's manifest glob skipped one too, so its
/// manifests were missing from every deploy. Run as another user (`setpriv`, uid 65534),
/// since root lists any directory: init names the directory it left out, and config check
/// fails on the glob it could not follow.
#[test]
fn a_directory_that_cannot_be_read_is_named_not_skipped() {
    use std::os::unix::fs::PermissionsExt as _;
    let r = Repo::fixture("secret-values");
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let private = r.dir.join("private");
    std::fs::create_dir_all(private.join("k8s")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(private.join("Dockerfile"), "FROM busybox\n").unwrap_or_else(|e| panic!("{e}"));
    // Everything else is the other user's to read; `private` is no one's.
    let open = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    let mut up = Some(r.dir.as_path());
    while let Some(d) = up {
        if d.starts_with(std::env::temp_dir()) && d != std::env::temp_dir() {
            open(d, 0o755);
        }
        up = d.parent();
    }
    open(home.path(), 0o777);
    let as_other = |args: &[&str]| {
        let mut cmd = common::as_other_user(common::devenv_bin());
        cmd.args(args)
            .current_dir(&r.dir)
            .env("HOME", home.path())
            .env_remove("DEVENV_CONFIG")
            .env("NO_COLOR", "1");
        common::output_within(cmd, std::time::Duration::from_secs(60))
            .unwrap_or_else(|| panic!("devenv {args:?} did not end"))
    };
    let walk = |p: &Path, f: &dyn Fn(&Path)| {
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            f(&d);
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                } else {
                    f(&e.path());
                }
            }
        }
    };
    walk(&r.dir, &|p| open(p, if p.is_dir() { 0o755 } else { 0o644 }));
    open(&private, 0o000);

    let out = as_other(&["init", "--print"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("left out   private: a directory that cannot be read (permission denied)"),
        "{said}"
    );

    open(&private, 0o755);
    let config = "[project]\nname = \"p\"\n[deploy]\nmanifests = [\"private/**/*.yaml\"]\n";
    std::fs::write(r.dir.join("devenv.toml"), config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        private.join("k8s/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    walk(&r.dir, &|p| open(p, if p.is_dir() { 0o755 } else { 0o644 }));
    open(&private.join("k8s"), 0o000);
    let out = as_other(&["config", "check"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot read directory `private/k8s`: permission denied"),
        "{said}"
    );
}
