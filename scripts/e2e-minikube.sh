#!/usr/bin/env bash
# End-to-end run of devenv against a real Minikube and Docker. It is opt-in: the CI machine
# has neither, so CI only checks that this script exits early and says so.
#
#   doctor -> up on a copy of examples/todo -> edit a backend file -> see a new pod with a
#   new tag -> down (release gone, cluster still running) -> delete the e2e profile.
#
# It uses a profile of its own (devenv-e2e, 2 CPUs / 4 GB), so it never touches yours.
#
#   scripts/e2e-minikube.sh            # builds devenv, runs everything, deletes the profile
#   KEEP_PROFILE=1 scripts/e2e-minikube.sh
#   DEVENV=/path/to/devenv scripts/e2e-minikube.sh
#
# Exit codes: 0 passed, 1 failed, 77 skipped (Minikube or a Docker daemon is missing).
set -euo pipefail

say() { printf 'e2e-minikube: %s\n' "$*"; }
skip() { say "SKIPPED: $*"; exit 77; }
fail() { say "FAILED: $*"; exit 1; }

command -v minikube >/dev/null 2>&1 || skip "minikube is not installed (https://minikube.sigs.k8s.io/docs/start/)"
command -v docker >/dev/null 2>&1 || skip "the docker client is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || skip "no Docker daemon answers (docker version fails)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"
command -v helm >/dev/null 2>&1 || skip "helm is not installed"

repo=$(cd "$(dirname "$0")/.." && pwd)
profile=devenv-e2e
if [ -z "${DEVENV:-}" ]; then
  say "building devenv"
  (cd "$repo" && cargo build --release --quiet)
  DEVENV="$repo/target/release/devenv"
fi

work=$(mktemp -d)
up_pid=""
cleanup() {
  [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null || true
  if [ "${KEEP_PROFILE:-0}" != 1 ]; then
    minikube delete -p "$profile" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp -r "$repo/examples/todo" "$work/todo"
cd "$work/todo"
cp .env.example .env
sed -i.bak -e 's/^cpus = 4$/cpus = 2/' -e 's/^memory = "8g"$/memory = "4g"/' \
  -e "s/^provider = \"minikube\"$/provider = \"minikube\"\nprofile = \"$profile\"/" devenv.toml
grep -q "profile = \"$profile\"" devenv.toml || fail "could not point the copy at profile $profile"
kc() { kubectl --context "$profile" -n todo "$@"; }

say "doctor"
"$DEVENV" doctor || fail "devenv doctor reports a failure (see above)"

say "up (log: $work/up.log)"
"$DEVENV" up > "$work/up.log" 2>&1 &
up_pid=$!

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$up_pid" 2>/dev/null; then
      tail -20 "$work/up.log"; fail "devenv up exited before $what"
    fi
    [ $SECONDS -lt $deadline ] || { tail -20 "$work/up.log"; fail "timed out waiting for $what"; }
    sleep 3
  done
}
wait_for 900 "the backend deployment" kc get deployment todo-backend
wait_for 600 "the backend rollout" kc rollout status deployment/todo-backend --timeout=10s
first=$(kc get deployment todo-backend -o jsonpath='{.spec.template.spec.containers[0].image}')
say "backend runs $first"

echo "# e2e edit $(date +%s)" >> backend/app/main.py
changed() { [ "$(kc get deployment todo-backend -o jsonpath='{.spec.template.spec.containers[0].image}')" != "$first" ]; }
wait_for 600 "a new backend tag after the edit" changed
wait_for 600 "the new backend pod" kc rollout status deployment/todo-backend --timeout=10s
second=$(kc get deployment todo-backend -o jsonpath='{.spec.template.spec.containers[0].image}')
say "backend now runs $second"

kill -TERM "$up_pid"; wait "$up_pid" || true; up_pid=""
say "down"
"$DEVENV" down
if kc get deployment todo-backend >/dev/null 2>&1; then fail "the backend is still deployed after devenv down"; fi
minikube status -p "$profile" >/dev/null 2>&1 || fail "devenv down stopped the cluster; it must keep running"
say "PASSED"
