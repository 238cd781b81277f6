//! The sync map inferred from Dockerfile shapes real projects have, and the decisions for
//! changed files.

use std::collections::BTreeMap;

use super::*;

fn map(dockerfile: &str, target: Option<&str>) -> SyncMap {
    infer(
        dockerfile,
        target,
        &BTreeMap::new(),
        vec!["Dockerfile".into(), ".dockerignore".into()],
    )
}

/// Where `path` goes (the first target), or why it cannot.
fn to(m: &SyncMap, path: &str) -> Result<String, String> {
    match m.targets(path) {
        Ok(t) if t.is_empty() => Err("outside".into()),
        Ok(t) => Ok(t[0].0.clone()),
        Err(w) => Err(w.text),
    }
}

/// Why `path` cannot sync (it must not).
fn why_not(m: &SyncMap, path: &str) -> String {
    match to(m, path) {
        Err(w) => w,
        Ok(t) => panic!("{path} syncs to {t}"),
    }
}

fn changed(paths: &[&str]) -> Vec<(String, bool)> {
    paths.iter().map(|p| ((*p).to_owned(), true)).collect()
}

const FASTAPI: &str = "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nCMD [\"uvicorn\", \"app.main:app\", \"--host\", \"0.0.0.0\"]\n";

#[test]
fn fastapi_code_syncs_and_requirements_rebuild() {
    let m = map(FASTAPI, None);
    assert_eq!(to(&m, "app/main.py"), Ok("/app/app/main.py".into()));
    let why = why_not(&m, "requirements.txt");
    assert!(
        why.contains("copied (Dockerfile line 3) before `RUN pip install --no-cache-dir -r requirements.txt` (line 4)"),
        "{why}"
    );
    assert_eq!(m.workdir, "/app");
}

const NEXT_PROD: &str = "FROM node:20-alpine AS deps\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\n\nFROM node:20-alpine AS builder\nWORKDIR /app\nCOPY --from=deps /app/node_modules ./node_modules\nCOPY . .\nRUN npm run build\n\nFROM node:20-alpine AS runner\nWORKDIR /app\nCOPY --from=builder /app/.next/standalone ./\nCOPY --from=builder /app/public ./public\nCMD [\"node\", \"server.js\"]\n";

#[test]
fn a_file_only_another_stage_uses_rebuilds() {
    let m = map(NEXT_PROD, Some("runner"));
    assert_eq!(
        to(&m, "pages/index.tsx"),
        Err("stage `builder` uses it, and the running image has only what that stage built".into())
    );
    assert!(!m.syncs_anything());
}

const NEXT_DEV: &str = "FROM node:20-alpine AS dev\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nCMD [\"npx\", \"next\", \"dev\"]\n\nFROM node:20-alpine AS runner\nWORKDIR /srv\nCOPY --from=dev /app/.next ./.next\n";

#[test]
fn a_dev_target_syncs_sources_and_rebuilds_on_its_lockfiles() {
    let m = map(NEXT_DEV, Some("dev"));
    assert_eq!(
        to(&m, "src/app/page.tsx"),
        Ok("/app/src/app/page.tsx".into())
    );
    assert!(why_not(&m, "package.json").contains("before `RUN npm ci`"));
    assert!(why_not(&m, "package-lock.json").contains("before `RUN npm ci`"));
    assert_eq!(m.stage.as_deref(), Some("dev"));
}

/// A development stage that takes `node_modules` from a deps stage: sources sync, but the
/// lockfiles the deps stage installs from are built; a production stage beside, which the
/// development one does not use, changes nothing.
#[test]
fn a_stage_the_running_one_copies_from_claims_its_files() {
    let text = "FROM node:18 AS deps\nWORKDIR /app\nCOPY package.json package-lock.json* ./\nRUN npm ci\n\nFROM node:18 AS builder\nWORKDIR /app\nCOPY . .\nRUN npm run build\n\nFROM node:18 AS dev\nWORKDIR /app\nCOPY --from=deps /app/node_modules ./node_modules\nCOPY . .\nCMD [\"npx\", \"next\", \"dev\"]\n";
    let m = map(text, Some("dev"));
    assert_eq!(to(&m, "app/page.tsx"), Ok("/app/app/page.tsx".into()));
    assert!(why_not(&m, "package.json").contains("stage `deps` uses it"));
    assert!(why_not(&m, "package-lock.json").contains("stage `deps` uses it"));
}

#[test]
fn workdir_changes_apply_to_the_copies_after_them() {
    let m = map(
        "FROM scratch\nWORKDIR /srv\nCOPY a.txt .\nWORKDIR sub/../sub2\nCOPY b.txt ./\nWORKDIR /abs\nCOPY c.txt d\n",
        None,
    );
    assert_eq!(to(&m, "a.txt"), Ok("/srv/a.txt".into()));
    assert_eq!(to(&m, "b.txt"), Ok("/srv/sub2/b.txt".into()));
    assert_eq!(
        to(&m, "c.txt"),
        Ok("/abs/d".into()),
        "a file to a file path"
    );
    assert_eq!(m.workdir, "/abs");
}

#[test]
fn several_sources_go_into_one_directory() {
    let m = map(
        "FROM scratch\nCOPY a.txt b.txt /dst/\nCOPY lib /opt/lib\n",
        None,
    );
    assert_eq!(to(&m, "a.txt"), Ok("/dst/a.txt".into()));
    assert_eq!(to(&m, "b.txt"), Ok("/dst/b.txt".into()));
    assert_eq!(
        to(&m, "lib/x/y.py"),
        Ok("/opt/lib/x/y.py".into()),
        "a directory's contents"
    );
    assert_eq!(to(&m, "other.txt"), Err("outside".into()));
}

#[test]
fn globs_match_within_one_element_and_directories_give_their_contents() {
    let m = map(
        "FROM scratch\nWORKDIR /app\nCOPY *.py ./\nCOPY conf* /etc/app/\n",
        None,
    );
    assert_eq!(to(&m, "main.py"), Ok("/app/main.py".into()));
    assert_eq!(to(&m, "lib/x.py"), Err("outside".into()));
    assert_eq!(to(&m, "config/a.yaml"), Ok("/etc/app/a.yaml".into()));
}

#[test]
fn add_of_local_files_syncs_and_add_of_archives_or_urls_rebuilds() {
    let m = map(
        "FROM scratch\nADD static /var/www\nADD vendor.tar.gz /opt/\nADD https://example.com/x.bin /x.bin\n",
        None,
    );
    assert_eq!(
        to(&m, "static/index.html"),
        Ok("/var/www/index.html".into())
    );
    assert!(why_not(&m, "vendor.tar.gz").contains("`ADD vendor.tar.gz` fetches or unpacks it"));
}

#[test]
fn chown_is_kept_for_the_copy() {
    let m = map(
        "FROM scratch\nCOPY --chown=app:app src /home/app/src\n",
        None,
    );
    assert_eq!(
        m.targets("src/main.py").unwrap_or_default(),
        [(
            "/home/app/src/main.py".to_owned(),
            Some("app:app".to_owned())
        )]
    );
}

#[test]
fn arg_defaults_and_build_args_reach_the_paths() {
    let text = "ARG BASE=/g\nFROM scratch\nARG BASE\nARG APP_DIR=/opt/app\nWORKDIR $APP_DIR\nCOPY . ${APP_DIR}/\nCOPY x.txt $BASE/\n";
    let m = map(text, None);
    assert_eq!(to(&m, "main.py"), Ok("/opt/app/main.py".into()));
    let x: Vec<String> = m
        .targets("x.txt")
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(x, ["/opt/app/x.txt", "/g/x.txt"], "a global ARG redeclared");
    let args = BTreeMap::from([("APP_DIR".to_owned(), "/srv".to_owned())]);
    let m = infer(text, None, &args, vec![]);
    assert_eq!(
        m.targets("main.py").unwrap_or_default()[0].0,
        "/srv/main.py"
    );
}

#[test]
fn env_values_reach_the_paths() {
    let m = map(
        "FROM scratch\nENV APP=/app HOME_DIR=/home\nCOPY . $APP\nENV WEB /web\nCOPY site ${WEB}\n",
        None,
    );
    assert_eq!(to(&m, "main.py"), Ok("/app/main.py".into()));
    let site: Vec<String> = m
        .targets("site/i.html")
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(site, ["/app/site/i.html", "/web/i.html"]);
}

#[test]
fn json_form_copies() {
    let m = map("FROM scratch\nCOPY [\"src\", \"/app/src\"]\n", None);
    assert_eq!(to(&m, "src/a.js"), Ok("/app/src/a.js".into()));
}

#[test]
fn a_stage_built_from_another_inherits_its_copies_and_workdir() {
    let m = map(
        "FROM python:3.12 AS base\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n\nFROM base AS dev\nCOPY . .\nCMD [\"uvicorn\", \"main:app\", \"--reload\"]\n",
        Some("dev"),
    );
    assert_eq!(to(&m, "main.py"), Ok("/app/main.py".into()));
    assert!(why_not(&m, "requirements.txt").contains("before `RUN pip install"));
}

#[test]
fn a_copy_with_a_run_after_it_rebuilds() {
    let m = map(
        "FROM scratch\nWORKDIR /app\nCOPY app ./app\nRUN chmod +x ./app/start.sh\nCOPY templates ./templates\n",
        None,
    );
    assert!(why_not(&m, "app/start.sh").contains("before `RUN chmod +x ./app/start.sh` (line 4)"));
    assert_eq!(
        to(&m, "templates/i.html"),
        Ok("/app/templates/i.html".into())
    );
}

#[test]
fn the_dockerfile_itself_rebuilds() {
    let m = map(FASTAPI, None);
    assert_eq!(
        decide(&m, &Rules::default(), &changed(&["Dockerfile"])),
        Decision::Rebuild {
            file: "Dockerfile".into(),
            why: "the Dockerfile (or its .dockerignore) changed".into()
        }
    );
}

#[test]
fn a_batch_syncs_its_files_and_removes_deleted_ones() {
    let m = map(FASTAPI, None);
    let d = decide(
        &m,
        &Rules::default(),
        &[("app/main.py".into(), true), ("app/old.py".into(), false)],
    );
    assert_eq!(
        d,
        Decision::Sync {
            copies: vec![Copy {
                local: "app/main.py".into(),
                remote: "/app/app/main.py".into(),
                chown: None
            }],
            deletes: vec!["/app/app/old.py".into()],
            runs: vec![],
            workdir: "/app".into(),
        }
    );
}

#[test]
fn one_file_that_cannot_sync_makes_the_whole_batch_a_build() {
    let m = map(FASTAPI, None);
    let d = decide(
        &m,
        &Rules::default(),
        &changed(&["app/main.py", "requirements.txt"]),
    );
    assert!(matches!(d, Decision::Rebuild { file, .. } if file == "requirements.txt"));
}

#[test]
fn a_run_rule_syncs_the_file_and_runs_its_command_instead_of_building() {
    let m = map(FASTAPI, None);
    let rules = Rules {
        run: vec![RunStep {
            cmd: "pip install -r requirements.txt".into(),
            on: vec!["requirements.txt".into()],
        }],
        ..Rules::default()
    };
    let d = decide(&m, &rules, &changed(&["requirements.txt", "app/x.py"]));
    let Decision::Sync { copies, runs, .. } = d else {
        panic!("{d:?}")
    };
    assert_eq!(copies.len(), 2);
    assert_eq!(runs, ["pip install -r requirements.txt"]);
}

#[test]
fn fall_back_on_and_paths_outside_the_map_rebuild() {
    let m = map(FASTAPI, None);
    let rules = Rules {
        fall_back_on: vec!["app/settings/*.toml".into()],
        ..Rules::default()
    };
    assert!(matches!(
        decide(&m, &rules, &changed(&["app/settings/base.toml"])),
        Decision::Rebuild { why, .. } if why.contains("fall_back_on")
    ));
    let copy_only = map("FROM scratch\nCOPY app /app\n", None);
    assert!(matches!(
        decide(&copy_only, &Rules::default(), &changed(&["README.md"])),
        Decision::Rebuild { why, .. } if why.contains("outside the sync map")
    ));
}

#[test]
fn explicit_sync_rules_replace_the_inference() {
    let m = map(NEXT_PROD, Some("runner"));
    let rules = Rules {
        sync: vec![("pages".into(), "/app/pages".into())],
        ..Rules::default()
    };
    assert_eq!(
        decide(&m, &rules, &changed(&["pages/index.tsx"])),
        Decision::Sync {
            copies: vec![Copy {
                local: "pages/index.tsx".into(),
                remote: "/app/pages/index.tsx".into(),
                chown: None
            }],
            deletes: vec![],
            runs: vec![],
            workdir: "/app".into(),
        }
    );
}

#[test]
fn a_file_copied_twice_goes_to_both_places() {
    let m = map(
        "FROM scratch\nCOPY shared.conf /etc/a/\nCOPY shared.conf /etc/b/\n",
        None,
    );
    let t: Vec<String> = m
        .targets("shared.conf")
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(t, ["/etc/a/shared.conf", "/etc/b/shared.conf"]);
}
