#!/usr/bin/env bash
# devenv's benchmarks. Figures in docs/performance.md come from runs of this script, with the
# machine's load printed beside them. Nothing here is a pass/fail test.
#
#   scripts/bench.sh hash     build-context hashing: a generated 50,000-file / 500 MB context,
#                             cold (empty digest cache) and warm (cache filled, no change)
#   scripts/bench.sh loop     the dev loop on a local-only project whose [[local]] command
#                             appends `date +%s%N` to a file, deps = ["src"]:
#                             (a) file write -> command started, 50 samples, p50 and p99
#                             (b) daemon RSS and CPU over 60 s idle, watching 50,000 files
#                                 in about 1,100 directories
#                             (c) launch -> first command run, 5 launches
#                             (d) a 10,000-file burst: number of runs, time to the run
#                             (e) launch -> the status page answering /api/status, 5 launches
#   scripts/bench.sh plan     `config check` and `up --dry-run` on 1,000 and 10,000 [[local]]
#                             resources in one dependency chain
#   scripts/bench.sh live     save -> file in the running container, 50 saves, by live update
#                             and by the full build path (build, deploy, rollout) in one run;
#                             the cluster is tests/common's fake API server (pods/exec over
#                             the real websocket protocol), builds are the fake docker's
#   scripts/bench.sh api      the daemon's RSS and open descriptors before, during and after
#                             1,000 idle connections and 200 SSE clients on its page, and
#                             whether a request made meanwhile is answered
#   scripts/bench.sh init     `devenv init --print` on the todo sample grown to 50,000 files:
#                             45,000 source files in 900 directories beside the sample's,
#                             and 5,000 under node_modules (skipped); best and median of 5
#   scripts/bench.sh real     on a real node (../shared/kubeapi, REAL_NODE=1; started here
#                             unless DEVENV_NODE_HOME names a running one; root): save ->
#                             new content served through devenv's forward by live update
#                             (busybox and GNU tar, 20 saves each) and by a rebuild (hello:
#                             buildah, load, rollout, probe; 3 saves), cold `up` (images new
#                             to the node), `up` after the live updates, warm `up`, and
#                             devenv's RSS idle with the apps running (tests/real_node.rs
#                             measure_on_the_real_node, release build)
#   scripts/bench.sh order    10,000 [[local]] resources, each depending on the one before:
#                             `config check` and `up --dry-run` (best of 3), and the engine's
#                             reducer from the start to the last run (state.rs
#                             measure_ten_thousand_chained_locals)
#   scripts/bench.sh real docker   the same on a node with Minikube's docker runtime
#                             (REAL_NODE=docker): docker builds straight into its dockerd
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

# Starts `devenv up` in project $1 (output to $1/up.log) and sets $up_pid.
start_up() {
  (cd "$1" && exec env HOME="$bench_dir/home" "$devenv" up >"$1/up.log" 2>&1) &
  up_pid=$!
}

stop_up() {
  kill -TERM "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
}

# Waits until file $1 has at least $2 lines (at most 20 s).
wait_lines() {
  local i
  for i in $(seq 2000); do
    [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0
    sleep 0.01
  done
  echo "timed out waiting for $2 lines in $1" >&2; return 1
}

pct() { # pct P < numbers: the P-th percentile (nearest rank)
  sort -n | awk -v p="$1" '{a[NR]=$1} END {r=int((p*NR+99)/100); if (r<1) r=1; print a[r]}'
}

loop_project() { # $1: dir, $2: deps
  mkdir -p "$1/src"
  printf '[project]\nname = "bench-loop"\n\n[[local]]\nname = "stamp"\ncmd = "date +%%s%%N >> stamps.txt"\ndeps = [%s]\n' "$2" > "$1/devenv.toml"
  echo "print('hi')" > "$1/src/main.py"
  rm -f "$1/stamps.txt"
}

bench_loop() {
  local dir="$bench_dir/loop" big="$bench_dir/loop-big"
  rm -rf "$dir" "$bench_dir/home"; loop_project "$dir" '"src"'
  machine

  # (c) launch -> first run
  local launch=() t0 first
  for run in 1 2 3 4 5; do
    rm -f "$dir/stamps.txt"
    t0=$(date +%s%N); start_up "$dir"
    wait_lines "$dir/stamps.txt" 1
    first=$(head -1 "$dir/stamps.txt")
    launch+=("$(ms "$t0" "$first")")
    stop_up
  done
  echo "(c) launch -> first command run: median $(printf '%s\n' "${launch[@]}" | median) ms (${launch[*]} ms)"

  # (e) launch -> the status page answers (the page starts before anything else runs)
  local page=() port i
  for run in 1 2 3 4 5; do
    rm -f "$dir/stamps.txt" "$dir/up.log"
    t0=$(date +%s%N)
    (cd "$dir" && exec env HOME="$bench_dir/home" DEVENV_WEB_PORT=0 "$devenv" up >"$dir/up.log" 2>&1) &
    up_pid=$!
    port=""
    for i in $(seq 4000); do
      port=$(sed -n 's|^page       http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$dir/up.log" 2>/dev/null | head -1)
      if [ -n "$port" ] && curl -s -o /dev/null "http://127.0.0.1:$port/api/status"; then break; fi
      sleep 0.002
    done
    page+=("$(ms "$t0" "$(date +%s%N)")")
    stop_up
  done
  echo "(e) launch -> status page answers: median $(printf '%s\n' "${page[@]}" | median) ms (${page[*]} ms)"

  # (a) write -> command started, default debounce
  rm -f "$dir/stamps.txt"; start_up "$dir"; wait_lines "$dir/stamps.txt" 1
  sleep 0.5
  local lat=() n=1 stamp
  for i in $(seq 50); do
    t0=$(date +%s%N)
    echo "x = $i" >> "$dir/src/main.py"
    n=$((n + 1)); wait_lines "$dir/stamps.txt" "$n"
    stamp=$(tail -1 "$dir/stamps.txt")
    lat+=("$(ms "$t0" "$stamp")")
    sleep 0.2
  done
  echo "(a) write -> command started: p50 $(printf '%s\n' "${lat[@]}" | pct 50) ms, p99 $(printf '%s\n' "${lat[@]}" | pct 99) ms, min $(printf '%s\n' "${lat[@]}" | pct 0) ms (50 samples, debounce 50 ms)"

  # (d) a 10,000-file burst
  local before after t1 t_end
  before=$(wc -l < "$dir/stamps.txt")
  t0=$(date +%s%N)
  python3 -c 'import os,sys; d=sys.argv[1]; os.makedirs(d, exist_ok=True); [open(os.path.join(d, "f%05d.py" % i), "w").write("x") for i in range(10000)]' "$dir/src/burst"
  t_end=$(date +%s%N)
  sleep 3
  after=$(wc -l < "$dir/stamps.txt")
  t1=$(sed -n "$((before + 1))p" "$dir/stamps.txt")
  echo "(d) 10,000-file burst ($(ms "$t0" "$t_end") ms to write): $((after - before)) run(s); first run $(ms "$t0" "$t1") ms after the burst began, $(ms "$t_end" "$t1") ms after its last write"
  stop_up

  # (b) idle RSS and CPU while watching 50,000 files in about 1,100 directories
  if [ ! -f "$big/.generated" ]; then
    rm -rf "$big"; loop_project "$big" '"src", "tree"'
    python3 - "$big/tree" <<'PY'
import os, sys
root = sys.argv[1]
n = 0
for top in range(50):
    for sub in range(22):
        d = os.path.join(root, f"pkg{top:02d}", f"mod{sub:02d}")
        os.makedirs(d, exist_ok=True)
        for i in range(45 + (1 if (top * 22 + sub) < 500 else 0)):
            with open(os.path.join(d, f"f{i:03d}.txt"), "w") as f:
                f.write("x" * (i + 1))
            n += 1
print(f"generated {n} files")
PY
    touch "$big/.generated"
  fi
  rm -f "$big/stamps.txt"; start_up "$big"; wait_lines "$big/stamps.txt" 1
  echo "    watching: $(grep -o 'watching .*' "$big/up.log" | head -1); $(find "$big/tree" -type f | wc -l) files"
  sleep 5
  local tck c0 c1 rss hwm
  tck=$(getconf CLK_TCK)
  c0=$(awk '{print $14 + $15}' "/proc/$up_pid/stat")
  sleep 60
  c1=$(awk '{print $14 + $15}' "/proc/$up_pid/stat")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$up_pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$up_pid/status")
  echo "(b) idle 60 s: RSS $((rss / 1024)) MB (peak $((hwm / 1024)) MB), CPU $(awk -v d=$((c1 - c0)) -v t="$tck" 'BEGIN {printf "%.3f", d / t / 60 * 100}') % of a core ($((c1 - c0)) ticks)"
  stop_up
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Checking and planning a config of N [[local]] resources, each depending on the one before
# (a chain: the worst case for dependency ordering). Best of 3 runs each.
bench_plan() {
  machine
  for n in 1000 10000; do
    local dir="$bench_dir/plan-$n"
    mkdir -p "$dir"
    python3 - "$n" "$dir/devenv.toml" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
s = '[project]\nname = "many"\n\n'
for i in range(n):
    s += f'[[local]]\nname = "l{i}"\ncmd = "true"\n' + (f'depends_on = ["l{i-1}"]\n' if i else '') + '\n'
open(out, 'w').write(s)
PY
    for what in "config check" "up --dry-run"; do
      best=""
      for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        (cd "$dir" && "$devenv" $what >/dev/null)
        t1=$(date +%s%N)
        local took=$(( (t1 - t0) / 1000000 ))
        if [ -z "$best" ] || [ "$took" -lt "$best" ]; then best=$took; fi
      done
      echo "$n locals: devenv $what: ${best} ms (best of 3)"
    done
  done
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_init() {
  local root="$bench_dir/init/todo"
  if [ ! -f "$root/.generated" ]; then
    echo "generating the todo sample with 50,000 files under $root ..."
    rm -rf "$root"; mkdir -p "$root"
    cp -r "$repo/examples/todo/." "$root/"
    rm -f "$root/devenv.toml"
    python3 - "$root" <<'PY'
import os, sys
root = sys.argv[1]
for top in range(30):
    for sub in range(30):
        d = os.path.join(root, "backend", "app", f"pkg{top:02d}", f"mod{sub:02d}")
        os.makedirs(d, exist_ok=True)
        for i in range(50):
            with open(os.path.join(d, f"m{i:02d}.py"), "w") as f:
                f.write(f"X = {i}\n")
for top in range(50):
    d = os.path.join(root, "frontend", "node_modules", f"dep{top:02d}", "lib")
    os.makedirs(d, exist_ok=True)
    for i in range(100):
        with open(os.path.join(d, f"f{i:03d}.js"), "w") as f:
            f.write("module.exports = 1;\n")
PY
    touch "$root/.generated"
  fi
  machine
  echo "files: $(find "$root" -type f | wc -l)"
  local times=()
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s%N)
    (cd "$root" && "$devenv" init --print >/dev/null 2>&1)
    t1=$(date +%s%N)
    times+=("$(ms "$t0" "$t1")")
  done
  local best
  best=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
  echo "devenv init --print: best ${best} ms, median $(printf '%s\n' "${times[@]}" | median) ms (5 runs; the chart rendered three times: as it is, with markers, and by the check)"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_api() {
  local root="$bench_dir/api"
  rm -rf "$root"; mkdir -p "$root/src"
  printf '[project]\nname = "api"\n\n[[local]]\nname = "gen"\ncmd = "true"\ndeps = ["src"]\n' > "$root/devenv.toml"
  machine
  (cd "$root" && DEVENV_WEB_PORT=0 HOME="$root" DEVENV_STATE_DIR="$root/state" "$devenv" up > "$root/up.log" 2>&1 &)
  local port="" pid=""
  for _ in $(seq 100); do
    port=$(grep -o '127.0.0.1:[0-9]*' "$root/up.log" 2>/dev/null | head -1 | cut -d: -f2)
    [ -n "$port" ] && break; sleep 0.1
  done
  pid=$(pgrep -f "$devenv up" | head -1)
  sleep 1
  python3 - "$pid" "$port" <<'PY'
import os, socket, sys, time
pid, port = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) / 1024
def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))
print(f"before: RSS {rss():.1f} MB, {fds()} descriptors")
idle, sse = [], []
for _ in range(1000):
    try:
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        sse.append(s)
    except OSError:
        pass
time.sleep(3)
print(f"during: RSS {rss():.1f} MB, {fds()} descriptors ({len(idle)} idle and {len(sse)} SSE connections opened)")
t = time.time()
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
    s.settimeout(30)
    print(f"a request made meanwhile: {s.recv(15).decode()} after {time.time() - t:.2f} s")
except OSError as e:
    print(f"a request made meanwhile failed: {e}")
for s in idle + sse:
    s.close()
time.sleep(8)
print(f"after (8 s later): RSS {rss():.1f} MB, {fds()} descriptors")
PY
  kill -TERM "$pid" 2>/dev/null || true
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_real() {
  machine
  # Not local: the EXIT trap that stops the node runs after this function has returned.
  runtime="${1:-containerd}" node_home="${DEVENV_NODE_HOME:-}" started=""
  case "$runtime" in
    containerd) real_node=1 ;;
    docker) real_node=docker ;;
    *) echo "bench.sh real: unknown runtime '$runtime' (containerd or docker)" >&2; exit 2 ;;
  esac
  if [ -z "$node_home" ]; then
    node_home=$(mktemp -d -t devenv-bench-node.XXXXXX)
    started=1
    REAL_NODE=$real_node NODE_SERVICES=1 KUBEAPI_HOME="$node_home" bash "$repo/../shared/kubeapi/start.sh" >/dev/null
    trap 'KUBEAPI_HOME="$node_home" bash "$repo/../shared/kubeapi/stop.sh" --wipe >/dev/null 2>&1; rm -rf "$node_home"' EXIT
  fi
  (cd "$repo" && DEVENV_NODE_HOME="$node_home" cargo test --release --quiet --test real_node measure_on_the_real_node -- --ignored --nocapture 2>&1 | grep -E '^real node')
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -z "$started" ] || echo "(a real node of its own, started and stopped here)"
}

bench_order() {
  machine
  (cd "$repo" && cargo build --release --quiet)
  local dir="$bench_dir/order"
  mkdir -p "$dir"
  python3 - "$dir/devenv.toml" <<'PY'
import sys
out = ['[project]\nname = "chain"\n']
for i in range(10000):
    dep = 'depends_on = ["l%d"]\n' % (i - 1) if i else ''
    out.append('[[local]]\nname = "l%d"\ncmd = "true"\n%s' % (i, dep))
open(sys.argv[1], 'w').write('\n'.join(out))
PY
  local bin="$repo/target/release/devenv" what start end best
  for what in "config check" "up --dry-run"; do
    best=""
    for _ in 1 2 3; do
      start=$(date +%s%N)
      # shellcheck disable=SC2086
      (cd "$dir" && "$bin" $what >/dev/null)
      end=$(date +%s%N)
      ms=$(( (end - start) / 1000000 ))
      if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    echo "10,000 chained locals: devenv $what: best of 3 $best ms"
  done
  (cd "$repo" && cargo test --release --quiet --bin devenv measure_ten_thousand_chained_locals -- --ignored --nocapture 2>&1 | grep -E '^engine:')
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_live() {
  machine
  (cd "$repo" && cargo test --release --quiet --test live measure_save_to_running -- --ignored --nocapture 2>&1 | grep -E '^(live update|full build path):')
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case "$what" in
  hash) bench_hash ;;
  live) bench_live ;;
  loop) bench_loop ;;
  plan) bench_plan ;;
  api) bench_api ;;
  init) bench_init ;;
  real) bench_real "${2:-containerd}" ;;
  order) bench_order ;;
  *) echo "bench.sh: unknown benchmark '$what' (try: hash, loop, plan, live, api, init, real, order)" >&2; exit 2 ;;
esac
