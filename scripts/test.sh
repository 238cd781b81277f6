#!/usr/bin/env bash
# The README's test command: installs the real tools the suite drives (idempotent), then runs
# the format and lint checks and every test. Exits non-zero on the first failure.
#
# The real-cluster tier (tests/real_cluster.rs) runs against a real Kubernetes control plane
# when ../shared/kubeapi exists beside the repository (CI has it): it is started here, in a
# directory of its own, and stopped by PID when this script ends, whatever happens. Without
# it, those tests say they were skipped and the rest of the suite runs as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-tools.sh --with-builders --with-browser
export PATH="/usr/local/bin:$HOME/.local/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

kubeapi="$(cd .. && pwd)/shared/kubeapi"
if [ -f "$kubeapi/start.sh" ]; then
  home=$(mktemp -d -t devenv-kubeapi.XXXXXX)
  stop_kubeapi() {
    KUBEAPI_HOME="$home" bash "$kubeapi/stop.sh" --wipe
    rm -rf "$home"
    echo "== real-cluster tier: control plane stopped"
  }
  trap stop_kubeapi EXIT
  echo "== real-cluster tier: starting the control plane from $kubeapi"
  KUBEAPI_HOME="$home" bash "$kubeapi/start.sh" >/dev/null
  export DEVENV_KUBEAPI_HOME="$home"
  if cargo nextest --version >/dev/null 2>&1; then
    n=$(cargo nextest list --locked --test real_cluster --message-format oneline 2>/dev/null | grep -c real_cluster || true)
    echo "== real-cluster tier: $n tests against $(grep KUBEAPI_SERVER "$home/env" | cut -d= -f2)"
  fi
else
  echo "== real-cluster tier: skipped ($kubeapi does not exist; see tests/common/real.rs)"
fi

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
