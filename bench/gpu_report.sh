#!/usr/bin/env bash
# Everything docs/BENCHMARKS.md asks of a GPU, in one run within a time budget (a rented or
# borrowed GPU for a few minutes): the adapter, the card's measured fp32 rate, neuralrg-gpu's
# benchmark of the default flow (L = 32, batch 1024) and of a wide MLP with per-kernel GPU times,
# one MLP in the flow kernels' shape against a workgroup-cooperative one (bench/mlp_shapes),
# latent HMC's cost per trajectory outside the force evaluations, the side-by-side comparison with PyTorch eager at batch 64, 256 and 1024 (the authors'
# network, compare.sh), then torch.compile at batch 1024 if time is left, and a summary.
#
# Usage: bench/gpu_report.sh OUT_DIR
#   Writes into OUT_DIR: info.txt, fp32.json, default.json, wide.json, shapes-narrow.txt and
#   shapes-wide.txt, hmc/ and hmc.txt, eager/ and compile/
#   (compare.sh's reports and tables), log.txt and summary.txt. Parts that would start past the
#   budget are skipped and say so; each part is cut off at the budget's end.
#
# Environment:
#   NEURALRG_GPU   the binary (default target/release/neuralrg-gpu, else neuralrg-gpu on PATH)
#   ADAPTER        neuralrg-gpu's --adapter (default: the best adapter, see `neuralrg-gpu info`)
#   TORCH_DEVICE   the reference's device (default cuda when torch sees a CUDA GPU, else cpu)
#   BUDGET_S       seconds the whole report may take (default 480)
#   REPS           timed repetitions per workload (default 10)
#   PYTHON         the interpreter with torch, numpy and safetensors (default python3)
#   MLP_SHAPES     the bench/mlp_shapes binary (default target/release/mlp-shapes; skipped if absent)
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bench/gpu_report.sh OUT_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=$1
# shellcheck source=bench/find_binary.sh
source "$here/find_binary.sh" gpu_report.sh
py=${PYTHON:-python3}
budget=${BUDGET_S:-480}
reps=${REPS:-10}
shapes=${MLP_SHAPES:-$repo/target/release/mlp-shapes}
adapter=()
[[ -n ${ADAPTER:-} ]] && adapter=(--adapter "$ADAPTER")
mkdir -p "$out"
start=$SECONDS
log() { echo "[$((SECONDS - start)) s] $*" | tee -a "$out/log.txt" >&2; }
left() { echo $((budget - (SECONDS - start))); }
# Runs "$@" with stdout into $1's file if at least $2 seconds of the budget are left, cut off at
# the budget's end.
part() {
    local file=$1 need=$2
    shift 2
    if (($(left) < need)); then
        log "skipped $file: $(left) s left, it needs about $need"
        return 1
    fi
    log "start $file"
    timeout "$(left)" "$@" >"$out/$file" 2>>"$out/log.txt"
    local rc=$?
    log "end $file (exit $rc)"
    return $rc
}

part info.txt 5 "$bin" info
device=${TORCH_DEVICE:-}
if [[ -z $device ]]; then
    device=$("$py" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo none)
fi
log "torch device: $device"

# The card's fp32 rate as a benchmark of its own would see it: a large fp32 matrix product
# through cuBLAS with TF32 off (the MLP kernels do plain fp32 multiply-adds).
if [[ $device == cuda* ]]; then
    part fp32.json 30 "$py" - "$device" <<'EOF'
import json, sys, time, torch
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device(sys.argv[1])
n = 8192
a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
for _ in range(3):
    a @ b
torch.cuda.synchronize(dev)
t = time.perf_counter()
reps = 10
for _ in range(reps):
    a @ b
torch.cuda.synchronize(dev)
s = (time.perf_counter() - t) / reps
print(json.dumps({"device": torch.cuda.get_device_name(dev), "n": n, "seconds": s,
                  "tflop_per_s": 2 * n**3 / s * 1e-12, "tf32": False}))
EOF
fi

bench=("$bin" bench ${adapter[@]+"${adapter[@]}"} --reps "$reps" --warmup 2 --profile --json)
# The default flow a user trains first, and a wide MLP (where per-row activations stop fitting
# in registers: the case for a workgroup-cooperative MLP kernel).
part default.json 60 "${bench[@]}" -L 32 --batch 1024
part wide.json 60 "${bench[@]}" -L 32 --batch 1024 --hidden 64 --mlp-layers 2

# One coupling step's MLP in the flow kernels' shape and in a workgroup-cooperative one
# (bench/mlp_shapes), at the authors' width and a wide one: whether this adapter favours the
# cooperative shape, which lavapipe runs several times slower (docs/BENCHMARKS.md).
if [[ -x $shapes ]]; then
    part shapes-narrow.txt 20 "$shapes" 262144 10 3
    part shapes-wide.txt 20 "$shapes" 262144 64 2
else
    log "skipped the MLP shapes: no $shapes (cargo build --release --manifest-path bench/mlp_shapes/Cargo.toml --target-dir target)"
fi

# Latent HMC with 1 and with 10 leapfrog steps per trajectory (16 chains, the defaults, on a
# briefly trained L = 16 flow): the difference is nine force evaluations, the rest is what every
# trajectory pays besides its forces (momenta, the decision, the measurement pass, observables
# and the two readbacks), the figure that says whether batching readbacks would pay.
part hmc.txt 60 env out="$out" bin="$bin" ADAPTER="${ADAPTER:-}" bash -c '
    a=()
    [[ -n $ADAPTER ]] && a=(--adapter "$ADAPTER")
    rm -rf "$out/hmc" && mkdir -p "$out/hmc" || exit
    "$bin" train ${a[@]+"${a[@]}"} -L 16 --steps 20 --quiet --eval-samples 256 \
        --out "$out/hmc/flow" >/dev/null || exit
    for lf in 1 10; do
        "$bin" hmc ${a[@]+"${a[@]}"} --checkpoint "$out/hmc/flow" --chains 16 --trajectories 200 \
            --thermalise 0 --target-acceptance 0 --leapfrog "$lf" --json >"$out/hmc/leapfrog$lf.json" ||
            exit
    done'

if [[ $device != none ]]; then
    export NEURALRG_GPU=$bin TORCH_DEVICE=$device REPS=$reps PYTHON=$py
    [[ -n ${ADAPTER:-} ]] && export ADAPTER
    OUT_DIR=$out/eager COMPILE=0 BATCHES="64 256 1024" part eager.txt 120 "$here/compare.sh"
    OUT_DIR=$out/compile COMPILE=1 BATCHES="1024" part compile.txt 180 "$here/compare.sh"
else
    log "skipped the PyTorch comparison: $py cannot import torch"
fi

"$py" - "$out" >"$out/summary.txt" <<'EOF'
import json, os, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

peak = load("fp32.json")
if peak:
    print(f"fp32 matrix product on {peak['device']}: {peak['tflop_per_s']:.1f} TFLOP/s (n = {peak['n']}, TF32 off)")
for name in ("default.json", "wide.json"):
    r = load(name)
    if r is None:
        print(f"{name}: missing (see log.txt)")
        continue
    print(f"\n{name}: {r['adapter']} ({r['backend']}, {r['driver']}), L = {r['lattice']}, batch {r['batch']}, "
          f"MLP 2 -> {r['hidden']} x {r['mlp_layers']} -> 2, {r['parameters']} parameters")
    for t in r["timings"]:
        print(f"  {t['name']:<22} median {t['median_s']:.5f} s  min {t['min_s']:.5f} s  {t['gflop_per_s']:8.1f} GFLOP/s")
        kernels = t.get("kernels") or {}
        # The MLP kernels' own rate: a pass's flops over the coupling kernel's GPU time.
        if t["name"] == "generate" and kernels.get("flow_coupling::generate"):
            rate = t["flops"] / kernels["flow_coupling::generate"] * 1e-12
            share = f", {100 * rate / peak['tflop_per_s']:.0f}% of the fp32 rate" if peak else ""
            print(f"  {'':<22} flow_coupling::generate alone: {rate:.2f} TFLOP/s{share}")
        for k, s in sorted(kernels.items(), key=lambda kv: -kv[1])[:6]:
            print(f"  {'':<22}   {k:<40} {s:.6f} s")
runs = [load(f"hmc/leapfrog{lf}.json") for lf in (1, 10)]
if all(runs):
    per = [r["seconds"] / (r["samples"] / 16) for r in runs]
    print(f"\nlatent HMC, L = 16, 16 chains: {1e3 * per[0]:.2f} ms per trajectory at 1 leapfrog step, "
          f"{1e3 * per[1]:.2f} ms at 10")
    force = (per[1] - per[0]) / 9
    print(f"  per force evaluation {1e3 * force:.3f} ms; per trajectory besides its forces "
          f"{1e3 * (per[0] - 2 * force):.3f} ms")
for name in ("shapes-narrow.txt", "shapes-wide.txt", "eager.txt", "compile.txt"):
    path = os.path.join(out, name)
    if os.path.exists(path) and os.path.getsize(path):
        print(f"\n{name}:")
        print(open(path).read().rstrip())
EOF
cat "$out/summary.txt"
log "done"
