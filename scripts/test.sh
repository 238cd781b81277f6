#!/usr/bin/env bash
# The README's test command: installs the real tools the suite drives (idempotent), then runs
# the format and lint checks and every test. Exits non-zero on the first failure.
#
# The real-cluster tier (tests/real_cluster.rs) runs against a real Kubernetes control plane
# when ../shared/kubeapi exists beside the repository (CI has it): it is started here, in a
# directory of its own, and stopped by PID when this script ends, whatever happens. Without
# it, those tests say they were skipped and the rest of the suite runs as usual.
#
# The real-node tier (tests/real_node.rs) runs on a second control plane from the same place,
# started with REAL_NODE=1 (a real kubelet on containerd, kube-proxy and CoreDNS: containers
# really run), also stopped whatever happens. It needs root and the node's packages (installed
# below with --with-node) and the base images of ../shared/images (made below, idempotent).
#
# The docker-runtime tier runs after the others: the containerd node stops, a node with
# Minikube's docker runtime (REAL_NODE=docker) starts, and the one test of docker builds that
# go straight into the node's dockerd runs on it (tests/real_node.rs, named below).
set -euo pipefail
cd "$(dirname "$0")/.."

node_flag=()
[ "$(id -u)" = 0 ] && [ -d ../shared/kubeapi ] && node_flag=(--with-node)
bash scripts/install-test-tools.sh --with-builders --with-browser "${node_flag[@]}"
export PATH="/usr/local/bin:$HOME/.local/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
# The stated minimum Rust (Cargo.toml's rust-version) is checked with that very toolchain,
# so it stays true when the default one moves on.
msrv="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
# "1.95" means any 1.95.x: the oldest of them is the one to check with.
case "$msrv" in *.*.*) ;; *) msrv="$msrv.0" ;; esac
echo "== cargo check with Rust $msrv (rust-version)"
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$msrv" --profile minimal
fi
rustup run "$msrv" cargo check --all-targets --locked

images="$(cd .. && pwd)/shared/images"
if [ -f "$images/make-base-images.sh" ] && [ "$(id -u)" = 0 ]; then
  echo "== base images (busybox, python, node) from $images"
  bash "$images/make-base-images.sh" 2>&1 | tail -n 3
fi

count_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest list --locked --test "$1" --message-format oneline -E "not test(${docker_test})" 2>/dev/null | grep -c "$1" || true
  else
    echo "?"
  fi
}

kubeapi="$(cd .. && pwd)/shared/kubeapi"
# The docker-runtime test runs alone afterwards, on a node of that kind (below).
docker_test=docker_runtime_builds_go_straight_into_the_node
homes=()
# What a stopped node must not leave: a process started from its directory, its mounts, and
# (checked once every control plane is stopped: they are the machine's) its bridge and its
# iptables chains (the node's own KUBEAPI-FWD-* and kube-proxy's KUBE-*).
leftovers_of() {
  local h=$1
  pgrep -af -- "$h" | grep -v pgrep | sed 's/^/process: /' || true
  grep -F -- "$h" /proc/mounts | sed 's/^/mount: /' || true
}
machine_leftovers() {
  ip -o link show kubeapi0 2>/dev/null | sed 's/^/link: /' || true
  { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -E '^:(KUBEAPI-FWD|KUBE-)' | sed 's/^/iptables chain: /' || true
}
stop_all() {
  local status=$? h left i
  # The real node first (it was started last), then the control plane.
  for ((i=${#homes[@]}-1; i>=0; i--)); do
    h=${homes[i]}
    KUBEAPI_HOME="$h" bash "$kubeapi/stop.sh" --wipe >/dev/null 2>&1 || echo "stop.sh failed for $h" >&2
    left=$(leftovers_of "$h")
    rm -rf "$h"
    if [ -n "$left" ]; then
      printf '== left running after stopping %s:\n%s\n' "$h" "$left"
      status=1
    else
      echo "== stopped the control plane of $h"
    fi
  done
  if [ "${#homes[@]}" -gt 0 ]; then
    left=$(machine_leftovers)
    if [ -n "$left" ]; then
      printf '== left on the machine after stopping them:\n%s\n' "$left"
      status=1
    else
      echo "== nothing left running (processes, mounts, the node's bridge, iptables chains)"
    fi
  fi
  exit "$status"
}
trap stop_all EXIT
if [ -f "$kubeapi/start.sh" ]; then
  home=$(mktemp -d -t devenv-kubeapi.XXXXXX)
  homes+=("$home")
  echo "== real-cluster tier: starting the control plane from $kubeapi"
  KUBEAPI_HOME="$home" bash "$kubeapi/start.sh" >/dev/null
  export DEVENV_KUBEAPI_HOME="$home"
  echo "== real-cluster tier: $(count_tests real_cluster) tests against $(grep KUBEAPI_SERVER "$home/env" | cut -d= -f2)"

  if [ "$(id -u)" = 0 ]; then
    node_home=$(mktemp -d -t devenv-node.XXXXXX)
    homes+=("$node_home")
    echo "== real-node tier: starting a real node (REAL_NODE=1) from $kubeapi"
    REAL_NODE=1 NODE_SERVICES=1 KUBEAPI_HOME="$node_home" bash "$kubeapi/start.sh" >/dev/null
    export DEVENV_NODE_HOME="$node_home"
    echo "== real-node tier: node started; $(count_tests real_node) tests against $(grep KUBEAPI_SERVER "$node_home/env" | cut -d= -f2)"
  else
    echo "== real-node tier: skipped (the real node needs root)"
  fi
else
  echo "== real-cluster and real-node tiers: skipped ($kubeapi does not exist; see tests/common/real.rs)"
fi

echo "== tests"
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast -E "not test($docker_test)" || status=$?
else
  cargo test --locked --no-fail-fast -- --skip "$docker_test" || status=$?
fi

# The docker-runtime tier: Minikube's docker runtime (REAL_NODE=docker: the kubelet runs pods
# through the node's own dockerd, and docker builds go straight into it). One real node per
# machine: the containerd node stops first.
if [ -n "${node_home:-}" ]; then
  KUBEAPI_HOME="$node_home" bash "$kubeapi/stop.sh" --wipe >/dev/null 2>&1 || echo "stop.sh failed for $node_home" >&2
  left=$(leftovers_of "$node_home")
  if [ -n "$left" ]; then
    printf '== left running after stopping %s:\n%s\n' "$node_home" "$left"
    exit 1
  fi
  echo "== real-node tier: stopped the node of $node_home"
  kept=()
  for h in "${homes[@]}"; do [ "$h" = "$node_home" ] || kept+=("$h"); done
  homes=("${kept[@]}")
  rm -rf "$node_home"
  unset DEVENV_NODE_HOME
  docker_home=$(mktemp -d -t devenv-docker-node.XXXXXX)
  homes+=("$docker_home")
  echo "== docker-runtime tier: starting a real node (REAL_NODE=docker) from $kubeapi"
  REAL_NODE=docker NODE_SERVICES=1 KUBEAPI_HOME="$docker_home" bash "$kubeapi/start.sh" >/dev/null
  echo "== docker-runtime tier: node started; 1 test against $(grep KUBEAPI_SERVER "$docker_home/env" | cut -d= -f2)"
  if cargo nextest --version >/dev/null 2>&1; then
    DEVENV_DOCKER_NODE_HOME="$docker_home" cargo nextest run --locked --no-fail-fast --test real_node -E "test($docker_test)" || status=$?
  else
    DEVENV_DOCKER_NODE_HOME="$docker_home" cargo test --locked --test real_node -- "$docker_test" || status=$?
  fi
else
  echo "== docker-runtime tier: skipped (it needs the real node: root and ../shared/kubeapi)"
fi
exit "$status"
