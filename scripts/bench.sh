#!/usr/bin/env bash
# devenv's benchmarks. Figures in docs/performance.md come from runs of this script, with the
# machine's load printed beside them. Nothing here is a pass/fail test.
#
#   scripts/bench.sh hash     build-context hashing: a generated 50,000-file / 500 MB context,
#                             cold (empty digest cache) and warm (cache filled, no change)
#
# BENCH_DIR (default /tmp/devenv-bench) keeps the generated trees between runs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=${BENCH_DIR:-/tmp/devenv-bench}
what=${1:-hash}

(cd "$repo" && cargo build --release --quiet)
devenv="$repo/target/release/devenv"

machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GB"
  echo "load (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
}

ms() { echo $(( ($2 - $1) / 1000000 )); }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }

bench_hash() {
  local root="$bench_dir/hash" state="$bench_dir/hash-state"
  if [ ! -f "$root/.generated" ]; then
    echo "generating 50,000 files (about 500 MB) in 1,100 directories under $root ..."
    rm -rf "$root"; mkdir -p "$root/ctx"
    python3 - "$root/ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
block = os.urandom(1 << 20)
n = 0
for top in range(50):
    for sub in range(22):
        d = os.path.join(root, f"pkg{top:02d}", f"mod{sub:02d}")
        os.makedirs(d, exist_ok=True)
        count = 45 + (1 if (top * 22 + sub) < 500 else 0)
        for i in range(count):
            size = rng.randint(1, 19999)
            off = rng.randint(0, len(block) - size)
            with open(os.path.join(d, f"f{i:03d}.txt"), "wb") as f:
                f.write(block[off:off + size])
            n += 1
print(f"{n} files")
PY
    printf 'FROM scratch\nCOPY . /\n' > "$root/ctx/Dockerfile"
    printf '[[image]]\nname = "bench"\ncontext = "ctx"\n' > "$root/devenv.toml"
    touch "$root/.generated"
  fi
  local files bytes
  files=$(find "$root/ctx" -type f | wc -l)
  bytes=$(du -sb "$root/ctx" | cut -f1)
  echo "context: $files files, $((bytes / 1000000)) MB"
  machine
  # Page cache: dropped when the machine allows it (it needs root outside a container).
  local page="warm (could not drop the page cache here)"
  if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then page="dropped before the cold runs"; fi

  local cold=() warm=() t0 t1 read
  for run in 1 2 3; do
    rm -rf "$state"
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(date +%s%N)
    read=$(cd "$root" && DEVENV_STATE_DIR="$state" RUST_LOG=devenv=debug "$devenv" up --dry-run 2>&1 >/dev/null | grep -o 'read=[0-9]*' | tail -1)
    t1=$(date +%s%N)
    cold+=("$(ms "$t0" "$t1")"); echo "  cold run $run: $(ms "$t0" "$t1") ms, files $read"
  done
  sleep 3 # past the digest cache's 2 s "racily clean" window
  for run in 1 2 3 4 5; do
    t0=$(date +%s%N)
    read=$(cd "$root" && DEVENV_STATE_DIR="$state" RUST_LOG=devenv=debug "$devenv" up --dry-run 2>&1 >/dev/null | grep -o 'read=[0-9]*' | tail -1)
    t1=$(date +%s%N)
    warm+=("$(ms "$t0" "$t1")"); echo "  warm run $run: $(ms "$t0" "$t1") ms, files $read"
  done
  echo "hash cold: median $(printf '%s\n' "${cold[@]}" | median) ms of ${#cold[@]} runs (page cache: $page)"
  echo "hash warm: median $(printf '%s\n' "${warm[@]}" | median) ms of ${#warm[@]} runs; $read (0 = no file contents read)"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case "$what" in
  hash) bench_hash ;;
  *) echo "bench.sh: unknown benchmark '$what' (try: hash)" >&2; exit 2 ;;
esac
