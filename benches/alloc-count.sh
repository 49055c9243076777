#!/usr/bin/env bash
# Heap allocations per event (herald ingest) and per delivery (herald dispatch), counted
# exactly: a uprobe on each of mimalloc's allocation entry points in the herald binary
# (mi_malloc_aligned, mi_zalloc_aligned, mi_realloc_aligned: what Rust's global allocator
# calls), counted by `perf stat` over each process's whole life in one herald-load run on
# Apache Kafka, split layout, paced so the run is not CPU-bound. Counts, not seconds: the
# figure does not move with a noisy machine. Needs root (uprobes) and Debian's linux-perf.
#
#   bash benches/alloc-count.sh [HERALD_BIN] [HERALD_LOAD_BIN]
#   EVENTS=10000 ENDPOINTS=4 RATE=250 bash benches/alloc-count.sh target/release/herald
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="$(realpath "${1:-$target/release/herald}")"
load="${2:-$target/release/herald-load}"
events="${EVENTS:-10000}" endpoints="${ENDPOINTS:-4}" rate="${RATE:-250}"
work="$(mktemp -d)"

# perf probe writes uprobe definitions through tracefs.
[ -e /sys/kernel/tracing/uprobe_events ] || mount -t tracefs nodev /sys/kernel/tracing
probes=(mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned)
cleanup() {
  perf probe -q -d 'herald_alloc:*' 2>/dev/null || true
  pkill -f "perf stat -e herald_alloc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
perf probe -q -d 'herald_alloc:*' 2>/dev/null || true
events_list=""
for f in "${probes[@]}"; do
  perf probe -q -x "$bin" --add "herald_alloc:${f#mi_}=$f"
  events_list+="${events_list:+,}herald_alloc:${f#mi_}"
done

"$load" --herald-bin "$bin" --broker kafka --layout split --no-ceiling --json \
  --events "$events" --endpoints "$endpoints" --rate "$rate" --payload-bytes 1024 \
  > "$work/report.json" &
load_pid=$!

# Attach to each process as soon as it exists: what it allocated before (argument parsing,
# the first config read) is not counted; everything after, start-up included, is.
for role in ingest dispatch; do
  for _ in $(seq 600); do
    pid="$(pgrep -xf "$bin $role" || true)"
    [ -n "$pid" ] && break
    sleep 0.05
  done
  [ -n "$pid" ] || { echo "herald $role did not start" >&2; exit 2; }
  perf stat -x, -e "$events_list" -p "$pid" -o "$work/$role.csv" &
done
wait "$load_pid" || { echo "herald-load failed (exit $?)" >&2; exit 1; }
# perf stat ends when its process does; the harness has stopped both by now.
wait

python3 - "$work" <<'EOF'
import csv, json, sys
work = sys.argv[1]
report = json.load(open(f"{work}/report.json"))
events = report["ingest"]["accepted"]
deliveries = report["delivery"]["received"]
def count(role):
    total = {}
    for row in csv.reader(open(f"{work}/{role}.csv")):
        if len(row) > 2 and row[2].startswith("herald_alloc:"):
            total[row[2].split(":")[1]] = int(row[0])
    return total
for role, unit, units, n in (("ingest", "event", "events", events),
                             ("dispatch", "delivery", "deliveries", deliveries)):
    c = count(role)
    parts = ", ".join(f"{k} {v:,}" for k, v in sorted(c.items()))
    print(f"herald {role}: {sum(c.values()) / n:.1f} allocations per {unit} "
          f"({sum(c.values()):,} over {n:,} {units}; {parts})")
EOF
