#!/usr/bin/env bash
# neuralrg-gpu against the PyTorch reference (bench/pytorch_reference.py) on the same
# configuration, side by side: per batch size `neuralrg-gpu bench --json`, then the reference in
# eager mode, then with torch.compile, one after the other; then a table of the median step times
# and the ratios PyTorch time / neuralrg-gpu time (> 1: neuralrg-gpu is faster).
#
# Usage: bench/compare.sh [FLAGS...]
#   FLAGS go to both programs (flow and target flags: -L, --arch, --depth, --couplings, --hidden,
#   --mlp-layers, --beta/--temperature, --seed); default, the authors' architecture:
#   -L 16 --hidden 10 --mlp-layers 3 --couplings 10. Do not pass --batch, --reps or --warmup:
#   use the variables below.
#
# Environment:
#   NEURALRG_GPU   the binary (default target/release/neuralrg-gpu, else neuralrg-gpu on PATH)
#   ADAPTER        passed to neuralrg-gpu as --adapter
#   BATCHES        batch sizes (default "64 256 1024")
#   REPS, WARMUP   timed and untimed repetitions of each workload (default 5 and 1)
#   TORCH_DEVICE   the reference's --device: cpu (default) or cuda
#   COMPILE        1 (default): also the torch.compile variant; 0: eager only
#   THREADS        the reference's --threads (torch.set_num_threads; default: torch's own)
#   PY_FLAGS       more flags for the reference only, e.g. "--compile-mode reduce-overhead"
#   PYTHON         the interpreter (default python3)
#   OUT_DIR        keep every JSON report here (default: a temporary directory)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# shellcheck source=bench/find_binary.sh
source "$here/find_binary.sh" compare.sh
py=${PYTHON:-python3}
if ! "$py" -c "import torch, numpy, safetensors" 2>/dev/null; then
    echo "compare.sh: $py cannot import torch, numpy and safetensors (pip install torch numpy safetensors)" >&2
    exit 1
fi

flags=("$@")
if [[ ${#flags[@]} -eq 0 ]]; then
    flags=(-L 16 --hidden 10 --mlp-layers 3 --couplings 10)
fi
for f in "${flags[@]}"; do
    case $f in
    --batch | --batch=* | --reps | --reps=* | --warmup | --warmup=* | --json)
        echo "compare.sh: set $f through BATCHES, REPS or WARMUP, not as a flag" >&2
        exit 2
        ;;
    esac
done
batches=${BATCHES:-64 256 1024}
reps=${REPS:-5}
warmup=${WARMUP:-1}
device=${TORCH_DEVICE:-cpu}
compile=${COMPILE:-1}
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"
adapter=()
[[ -n ${ADAPTER:-} ]] && adapter=(--adapter "$ADAPTER")
py_extra=()
[[ -n ${THREADS:-} ]] && py_extra+=(--threads "$THREADS")
# shellcheck disable=SC2206 # PY_FLAGS is a list of words
[[ -n ${PY_FLAGS:-} ]] && py_extra+=($PY_FLAGS)

echo "configuration: ${flags[*]}; batches $batches; $reps reps after $warmup warm-up; torch on $device" >&2
echo "reports in $out" >&2
for b in $batches; do
    echo "batch $b: neuralrg-gpu" >&2
    "$bin" bench ${adapter[@]+"${adapter[@]}"} "${flags[@]}" --batch "$b" --reps "$reps" --warmup "$warmup" --json \
        >"$out/neuralrg-b$b.json"
    echo "batch $b: pytorch eager" >&2
    "$py" "$here/pytorch_reference.py" bench "${flags[@]}" --batch "$b" --reps "$reps" --warmup "$warmup" \
        --device "$device" --quiet ${py_extra[@]+"${py_extra[@]}"} >"$out/eager-b$b.json"
    if [[ $compile == 1 ]]; then
        echo "batch $b: pytorch compile (the first calls compile; this can take minutes)" >&2
        if ! "$py" "$here/pytorch_reference.py" bench "${flags[@]}" --batch "$b" --reps "$reps" \
            --warmup "$warmup" --device "$device" --compile --quiet ${py_extra[@]+"${py_extra[@]}"} \
            >"$out/compile-b$b.json" 2>"$out/compile-b$b.err"; then
            echo "batch $b: torch.compile run failed (see $out/compile-b$b.err)" >&2
            rm -f "$out/compile-b$b.json"
        fi
    fi
done

"$py" - "$out" $batches <<'EOF'
import json, os, sys

out, batches = sys.argv[1], sys.argv[2:]

def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as f:
        return json.load(f)

first = load(f"neuralrg-b{batches[0]}.json")
eager0 = load(f"eager-b{batches[0]}.json")
print(f"neuralrg-gpu: {first['adapter']} ({first['backend']}, {first['driver']})")
print(f"pytorch:      {eager0['adapter']} ({eager0['driver']})")
print(f"L = {first['lattice']}, {first['arch']} depth {first['depth']}, {first['couplings']} couplings, "
      f"MLP 2 -> {first['hidden']} x {first['mlp_layers']} -> 2, {first['parameters']} parameters; median seconds "
      "per step; ratio = PyTorch / neuralrg-gpu (> 1: neuralrg-gpu faster)")
cols = ["batch", "workload", "neuralrg-gpu s", "GFLOP/s", "eager s", "eager/ours", "compile s", "compile/ours"]
rows, notes = [], []
for b in batches:
    ours, eager, comp = load(f"neuralrg-b{b}.json"), load(f"eager-b{b}.json"), load(f"compile-b{b}.json")
    if comp is not None and "compile_error" in comp.get("compile", {}):
        notes.append(f"batch {b}: torch.compile failed, eager fallback: {comp['compile']['compile_error']}")
        comp = None
    def med(rep, name):
        if rep is None:
            return None
        return next((t["median_s"] for t in rep["timings"] if t["name"] == name), None)
    for name in ("train_step_symmetric", "train_step", "generate"):
        o = med(ours, name)
        gf = next(t["gflop_per_s"] for t in ours["timings"] if t["name"] == name)
        e, c = med(eager, name), med(comp, name)
        fmt = lambda v: "-" if v is None else f"{v:.4g}"
        ratio = lambda v: "-" if v is None or not o else f"{v / o:.2f}"
        rows.append([b, name, fmt(o), f"{gf:.2f}", fmt(e), ratio(e), fmt(c), ratio(c)])
widths = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
line = lambda r: "  ".join(str(v).rjust(w) if i != 1 else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
print(line(cols))
for r in rows:
    print(line(r))
for n in notes:
    print(n)
EOF
