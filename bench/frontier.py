#!/usr/bin/env python3
"""Accuracy against training time: train flows to a time budget and record their free energy.

For each configuration (a string of `neuralrg-gpu train` flags) and each budget in minutes:

1. calibrate: a short run of the same configuration (`--calibration-steps`, default 120) gives
   the seconds per training step, from the `elapsed_s` that metrics.jsonl logs, past the first
   20 steps and including the checkpoint writes, as a full run has them;
2. train: `--steps` = budget / (seconds per step), so the learning-rate schedule spans the
   budget, then `--eval-samples` fresh samples estimate F_sym of the final model (`eval.json`);
3. append one row to the CSV: the resolved configuration (from the run's config.toml), the
   budget, the steps, the measured training time and the free energies with their errors.

The step count, not the clock, ends a run, so a run is reproducible from its row (same flags,
same --steps, same seed); the time it took on this machine is in `train_s`. Nothing here is
timed in a test; the figures go to docs/BENCHMARKS.md.

    python3 bench/frontier.py -L 16 --minutes 5 15 --out runs/frontier \\
        --csv docs/frontier.csv -- "" "--hidden 16" "--lr 0.01" "--no-symmetric"

(`--` ends the script's own options, so that a configuration may start with a dash.)
"""

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

COLUMNS = [
    "lattice", "beta", "flags", "arch", "depth", "couplings", "hidden", "mlp_layers",
    "parameters", "lr", "lr_schedule", "warmup_steps", "batch", "symmetric", "seed",
    "budget_min", "s_per_step", "steps", "train_s", "f_sym", "f_sym_err", "rel_error",
    "f_is", "f_is_err", "rel_error_is", "ess", "neg_ln_z_exact", "eval_samples", "date",
]


def binary() -> str:
    found = os.environ.get("NEURALRG_GPU")
    if found:
        return found
    here = Path(__file__).resolve().parent.parent / "target" / "release" / "neuralrg-gpu"
    return str(here) if here.exists() else "neuralrg-gpu"


def train(exe: str, lattice: int, flags: list[str], steps: int, out: Path, extra: list[str]):
    cmd = [exe, "train", "-L", str(lattice), *flags, "--steps", str(steps), "--quiet",
           "--out", str(out), *extra]
    print("+", shlex.join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit(f"frontier.py: `train` failed into {out} (its message is above); stopping")


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def seconds_per_step(exe, lattice, flags, steps, scratch: Path) -> float:
    shutil.rmtree(scratch, ignore_errors=True)  # train refuses to overwrite an old run
    train(exe, lattice, flags, steps, scratch, ["--log-every", "10", "--save-every", "100"])
    rows = {r["step"]: r["elapsed_s"] for r in metrics(scratch)}
    first, last = 20, max(rows)
    if first not in rows or last <= first:
        sys.exit(f"calibration run in {scratch} logged too few steps: raise --calibration-steps")
    return (rows[last] - rows[first]) / (last - first)


def parameters(exe: str, lattice: int, flags: list[str]) -> int:
    """The flow's parameter count, from the first line of `plan` ("..., 43680 parameters")."""
    flow = ("--arch", "--depth", "--couplings", "--hidden", "--mlp-layers")
    shape, i = [], 0
    while i < len(flags):  # plan takes the flow's flags only
        if flags[i] in flow:
            shape += flags[i:i + 2]
            i += 1
        elif flags[i].split("=")[0] in flow:
            shape.append(flags[i])
        i += 1
    first = subprocess.run([exe, "plan", "-L", str(lattice), *shape], check=True,
                           capture_output=True, text=True).stdout.splitlines()[0]
    return int(re.search(r"(\d+) parameters", first).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+", help='train flags per configuration ("" = defaults), after --')
    ap.add_argument("-L", "--lattice", type=int, required=True)
    ap.add_argument("--minutes", type=float, nargs="+", required=True, help="time budgets")
    ap.add_argument("--out", type=Path, required=True, help="directory for the run directories")
    ap.add_argument("--csv", type=Path, required=True, help="CSV to append rows to")
    ap.add_argument("--eval-samples", type=int, default=8192)
    ap.add_argument("--calibration-steps", type=int, default=120)
    args = ap.parse_args()
    exe = binary()
    args.out.mkdir(parents=True, exist_ok=True)
    new_file = not args.csv.exists()
    with open(args.csv, "a", newline="") as f:
        table = csv.DictWriter(f, COLUMNS)
        if new_file:
            table.writeheader()
        for config in args.configs:
            flags = shlex.split(config)
            tag = "-".join(w.lstrip("-") for w in flags) or "defaults"
            scratch = args.out / f"L{args.lattice}-{tag}-calibrate"
            per_step = seconds_per_step(exe, args.lattice, flags, args.calibration_steps,
                                        scratch)
            for minutes in args.minutes:
                steps = max(1, round(minutes * 60 / per_step))
                run = args.out / f"L{args.lattice}-{tag}-{minutes:g}min"
                train(exe, args.lattice, flags, steps, run,
                      ["--eval-samples", str(args.eval_samples)])
                cfg = tomllib.loads((run / "config.toml").read_text())
                ev = json.loads((run / "eval.json").read_text())
                row = {
                    "lattice": cfg["lattice"], "beta": cfg["beta"], "flags": config,
                    **{k: cfg["flow"][k] for k in ("arch", "depth", "couplings", "hidden",
                                                   "mlp_layers")},
                    "parameters": parameters(exe, args.lattice, flags),
                    **{k: cfg["train"][k] for k in ("lr", "lr_schedule", "warmup_steps",
                                                    "batch", "symmetric", "seed")},
                    "budget_min": minutes, "s_per_step": f"{per_step:.5f}", "steps": steps,
                    "train_s": f"{metrics(run)[-1]['elapsed_s']:.1f}",
                    "f_sym": ev["free_energy"], "f_sym_err": ev["stderr"],
                    "rel_error": ev["rel_error"], "f_is": ev["free_energy_is"],
                    "f_is_err": ev["free_energy_is_err"], "rel_error_is": ev["rel_error_is"],
                    "ess": ev["ess"], "neg_ln_z_exact": ev["neg_ln_z_exact"],
                    "eval_samples": ev["samples"], "date": time.strftime("%Y-%m-%d"),
                }
                table.writerow(row)
                f.flush()
                print(f"L={args.lattice} [{config or 'defaults'}] {minutes:g} min: "
                      f"{steps} steps in {row['train_s']} s, F_sym rel. error "
                      f"{ev['rel_error']:.3e} +/- {ev['stderr'] / abs(ev['neg_ln_z_exact']):.1e}",
                      flush=True)


if __name__ == "__main__":
    main()
