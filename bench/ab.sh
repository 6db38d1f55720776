#!/usr/bin/env bash
# Two or more neuralrg-gpu binaries (e.g. the commit before a kernel change and after it) timed
# on the same configuration, alternating: ROUNDS rounds, each running `bench --json` once per
# binary in turn (every other round in reverse order). On a shared machine an absolute time
# moves by up to 2x between runs, so a comparison made in alternating rounds, keeping each
# binary's fastest repetition over all rounds, is the one that holds. Prints per workload the fastest time of each binary and the
# ratio first / last (> 1: the last binary is faster).
#
# Usage: bench/ab.sh BINARY BINARY... [-- BENCH FLAGS...]
#   BENCH FLAGS go to every `neuralrg-gpu bench` (default: -L 16 --batch 256 --reps 5
#   --warmup 1, the authors' network). Check the default network as well as the shape a change
#   targets: a change for wide MLPs once made the default 5x slower, unseen.
#
# Environment:
#   ROUNDS   rounds (default 3)
#   OUT_DIR  keep every JSON report here (default: a temporary directory)
#   PYTHON   the interpreter for the summary (default python3)
set -euo pipefail

bins=()
while [[ $# -gt 0 && $1 != -- ]]; do
    bins+=("$1")
    shift
done
[[ ${1:-} == -- ]] && shift
flags=("$@")
if [[ ${#flags[@]} -eq 0 ]]; then
    flags=(-L 16 --batch 256 --reps 5 --warmup 1)
fi
if [[ ${#bins[@]} -lt 2 ]]; then
    echo "ab.sh: give at least two binaries to compare (bench/ab.sh OLD NEW [-- FLAGS...])" >&2
    exit 2
fi
for f in "${flags[@]}"; do
    case $f in
    --json | --all-adapters)
        echo "ab.sh: $f is not for ab.sh (it reads one JSON report per run; pick an adapter with --adapter)" >&2
        exit 2
        ;;
    esac
done
for b in "${bins[@]}"; do
    if [[ ! -f $b || ! -x $b ]]; then
        echo "ab.sh: $b is not an executable neuralrg-gpu binary" >&2
        exit 1
    fi
done
rounds=${ROUNDS:-3}
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
    echo "ab.sh: ROUNDS must be a whole number from 1 up (got $rounds)" >&2
    exit 2
fi
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"

n=${#bins[@]}
for r in $(seq "$rounds"); do
    # Odd rounds in the order given, even rounds reversed, so no binary always runs first.
    for k in $(seq 0 $((n - 1))); do
        i=$(((r % 2) ? k : n - 1 - k))
        echo "ab.sh: round $r of $rounds, ${bins[$i]}" >&2
        "${bins[$i]}" bench "${flags[@]}" --json >"$out/$i.$r.json"
    done
done

"${PYTHON:-python3}" - "$out" "$rounds" "${bins[@]}" <<'PY'
import json
import sys

out, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
best = {}  # workload -> [fastest time per binary]
for i in range(len(bins)):
    for r in range(1, rounds + 1):
        report = json.load(open(f"{out}/{i}.{r}.json"))
        for t in report["timings"]:
            row = best.setdefault(t["name"], [float("inf")] * len(bins))
            row[i] = min(row[i], t["min_s"])
print(f"fastest repetition over {rounds} alternating rounds, seconds (reports in {out})")
for i, b in enumerate(bins):
    print(f"  [{i}] {b}")
print("workload".ljust(24) + "".join(f"[{i}]".rjust(12) for i in range(len(bins))) + "   [0] / [last]")
for name, row in best.items():
    print(name.ljust(24) + "".join(f"{x:12.4f}" for x in row) + f"   {row[0] / row[-1]:.3f}")
PY
