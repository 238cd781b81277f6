#!/usr/bin/env bash
# The README's test command: installs the real tools the suite drives (idempotent), then runs
# the format and lint checks and every test. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-tools.sh --with-builders --with-browser
export PATH="/usr/local/bin:$HOME/.local/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
