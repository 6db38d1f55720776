"""The PyTorch reference (bench/pytorch_reference.py) against neuralrg-gpu doing the same work.

Run from the repository root:  python3 -m pytest bench/test_reference.py -v
Needs torch, numpy, safetensors and pytest (pip install torch numpy safetensors pytest) and a
neuralrg-gpu binary: $NEURALRG_GPU, else target/release/neuralrg-gpu, else neuralrg-gpu on PATH.
Not part of the project's CI (which has no torch): without torch every test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch numpy safetensors pytest)")
np = pytest.importorskip("numpy", reason="numpy is not installed (pip install torch numpy safetensors pytest)")
pytest.importorskip("safetensors", reason="safetensors is not installed (pip install torch numpy safetensors pytest)")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import pytorch_reference as R  # noqa: E402

torch.set_num_threads(1)

# Relative tolerance of loss, objective and gradient norm (the device works in f32).
RTOL = 1e-4


def _find_binary() -> str | None:
    env = os.environ.get("NEURALRG_GPU")
    if env:
        return env
    local = REPO / "target" / "release" / "neuralrg-gpu"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("neuralrg-gpu")


@pytest.fixture(scope="session")
def binary() -> str:
    b = _find_binary()
    if b is None:
        pytest.skip("no neuralrg-gpu binary: set NEURALRG_GPU, build target/release/neuralrg-gpu "
                    "(cargo build --release) or put neuralrg-gpu on PATH")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"NEURALRG_GPU={b} is not an executable file")
    return b


@pytest.fixture(scope="session")
def adapter(binary) -> str:
    """A binary that finds a GPU adapter (the device tests need one)."""
    r = subprocess.run([binary, "info", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"neuralrg-gpu finds no GPU adapter ({r.stderr.strip()[:300]}); on a CPU-only host "
                    "install mesa-vulkan-drivers libvulkan1")
    return binary


def run(binary, *args, cwd=None) -> str:
    r = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"{' '.join(map(str, args))} failed:\n{r.stderr}"
    return r.stdout


def rel(a, b) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


# ----------------------------------------------------------------------------------------------
# Building blocks: the RNG, the plan, the target, a generation pass
# ----------------------------------------------------------------------------------------------


def test_philox_matches_the_random123_known_answers():
    # The Random123 known-answer vectors that src/reference/rng.rs tests too.
    assert R.philox4x32_10([0, 0, 0, 0], [0, 0]).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert R.philox4x32_10([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2).tolist() == [
        0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert R.philox4x32_10([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]).tolist() == [
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_uniforms_stay_inside_the_unit_interval_and_streams_differ():
    assert R.uniform01(np.uint32(0)) > 0 and R.uniform01(np.uint32(0xFFFFFFFF)) < 1
    a = R.bits(7, 0, 3, 10)
    assert len(a) == 10 and a.dtype == np.uint32
    assert (a[:8] == R.bits(7, 0, 3, 8)).all()
    assert not (a == R.bits(7, 1, 3, 10)).all() and not (a == R.bits(7, 0, 4, 10)).all()
    # the 64-bit step and seed reach the counter and the key
    assert not (R.bits(7, 0, 3, 8) == R.bits(7, 0, 3 + (1 << 32), 8)).all()
    assert not (R.bits(7, 0, 3, 8) == R.bits(7 + (1 << 32), 0, 3, 8)).all()


def test_device_normals_equal_the_port(adapter, tmp_path):
    # An identity flow (sample --init) returns its latent draw: x = z of (seed, SAMPLE, step 0),
    # each sample's sign flipped or not (the default model is symmetrised: it samples q_sym).
    out = tmp_path / "s.npz"
    run(adapter, "sample", "--init", "-L", 8, "--batch", 40, "--seed", 0xDEADBEEF12, "--hidden", 4,
        "--couplings", 2, "--out", out)
    d = np.load(out)
    x = d["x"].reshape(40, 64).astype(np.float64)
    z = R.latent(0xDEADBEEF12, R.SAMPLE_STREAM, 0, 40, 64)
    z = z * np.sign((x * z).sum(1, keepdims=True))
    err = np.abs(x - z) / (1 + np.abs(z))
    assert err.max() < 2e-5, f"max |device - port| / (1 + |z|) = {err.max():.2e}"
    assert np.abs(d["log_det"]).max() == 0.0
    # The target on the device's own x: ln pi in f32 there, in f64 here.
    target = R.IsingTarget(8, R.BETA_C)
    lp = target.log_prob_np(x)
    scale = np.abs(x).sum(1) + 0.5 * np.abs(x * (x @ target.a_inverse)).sum(1)
    assert (np.abs(lp - d["ln_pi"]) / scale).max() < 1e-5
    lp_t = target.log_prob(torch.tensor(x)).numpy()
    lp_fft = target.log_prob(torch.tensor(x), "fft").numpy()
    assert np.abs(lp_t - lp).max() < 1e-9 and np.abs(lp_fft - lp).max() < 1e-9


PLAN_CASES = [
    (lattice, arch, depth)
    for lattice in (4, 8, 16)
    for arch in R.ARCHS
    for depth in sorted({None, 1, 2, (lattice if arch == "tebd" else lattice.bit_length() - 1)},
                        key=lambda d: -1 if d is None else d)
]


@pytest.mark.parametrize("lattice,arch,depth", PLAN_CASES)
def test_plan_matches_the_binary(binary, lattice, arch, depth):
    args = ["plan", "-L", lattice, "--arch", arch, "--couplings", 3, "--hidden", 5, "--mlp-layers", 3, "--json"]
    if depth is not None:
        args += ["--depth", depth]
    want = json.loads(run(binary, *args))
    got = R.make_plan(lattice, arch, depth, 3, 5, 3)
    assert got.to_json() == want
    n = sum(len(l.blocks) for l in got.layers)
    assert got.n_rows(1) == n


def test_bad_plans_are_refused():
    for bad in [dict(lattice=12), dict(lattice=2), dict(lattice=16, depth=5), dict(lattice=16, arch="tree", depth=0),
                dict(lattice=16, couplings=0), dict(lattice=16, hidden=0), dict(lattice=16, hidden=129),
                dict(lattice=16, mlp_layers=5), dict(lattice=8, arch="tebd", depth=9)]:
        with pytest.raises(ValueError):
            R.make_plan(**bad)


def test_a_fresh_flow_is_the_identity_and_infer_inverts_generate():
    plan = R.make_plan(8, "mera", None, 4, 6, 2)
    gen = torch.Generator().manual_seed(3)
    flow = R.Flow(plan, R.random_masks(plan, gen), dtype=torch.float64)
    flow.load_flat(R.init_flat(plan, gen))
    z = torch.randn(5, 64, generator=gen, dtype=torch.float64)
    x, ld = flow.generate(z)
    assert torch.equal(x, z) and torch.all(ld == 0)
    flow.load_flat(R.init_flat(plan, gen, perturb=0.1))
    x, ld = flow.generate(z)
    z2, ld2 = flow.infer(x)
    assert torch.allclose(z2, z, atol=1e-12) and torch.allclose(ld2, -ld, atol=1e-12)
    assert flow.flat().shape == (plan.n_params(),)


# ----------------------------------------------------------------------------------------------
# The same training step: neuralrg-gpu's metrics against the reference on the same checkpoint
# ----------------------------------------------------------------------------------------------

# Symmetric training is the binary's default, so the plain cases say --no-symmetric.
TRAIN_CASES = {
    "mera-L4": ["-L", 4, "--no-symmetric"],
    "mera-L4-symmetric": ["-L", 4, "--symmetric"],
    "tree-L4": ["-L", 4, "--arch", "tree", "--no-symmetric", "--lr-schedule", "constant",
                "--warmup-steps", 0],
    "tebd-L4": ["-L", 4, "--arch", "tebd", "--depth", 2, "--no-symmetric",
                "--lr-schedule", "exponential", "--warmup-steps", 2],
    "mera-L8": ["-L", 8, "--no-symmetric"],
    "mera-L8-symmetric-seed7": ["-L", 8, "--symmetric", "--seed", 7],
    "tree-L8-mlp3": ["-L", 8, "--arch", "tree", "--mlp-layers", 3, "--hidden", 6, "--no-symmetric"],
    "tebd-L8-symmetric": ["-L", 8, "--arch", "tebd", "--symmetric"],
    "mera-L4-symreg": ["-L", 4, "--sym-reg", 0.3, "--no-symmetric"],
    "mera-L4-symmetric-symreg": ["-L", 4, "--symmetric", "--sym-reg", 0.2],
}


@pytest.fixture(scope="module")
def trained(adapter, tmp_path_factory):
    """name -> (checkpoint after 5 steps, run dir after a resumed 6th step, its last metrics line)."""
    cache = {}

    def get(name):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            d, before = root / "run", root / "after5"
            args = list(TRAIN_CASES[name])
            # The default schedule (cosine after a linear warm-up) unless the case names one: the
            # reference's Adam step follows the run's schedule.
            for flag, default in (("--hidden", 8), ("--couplings", 4), ("--batch", 32)):
                if flag not in args:
                    args += [flag, default]
            run(adapter, "train", *args, "--steps", 5, "--log-every", 1, "--quiet", "--out", d)
            shutil.copytree(d, before)
            run(adapter, "train", "--resume", d, "--steps", 6, "--log-every", 1, "--quiet")
            last = json.loads((d / "metrics.jsonl").read_text().strip().splitlines()[-1])
            assert last["step"] == 6
            cache[name] = (before, d, last)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_training_step_matches_the_binary(trained, name):
    before, after, m = trained(name)
    ck = R.load_checkpoint(str(before))
    assert ck.step == 5
    # Step 6 trained on z of (seed, TRAIN, step index 5) with the parameters after step 5.
    got = R.check(ck, step=5, next_ck=R.load_checkpoint(str(after)))
    report = {k: (got[k], m.get(k)) for k in ("loss", "grad_norm")}
    assert rel(got["loss"], m["loss"]) < RTOL, report
    assert rel(got["loss_stderr"], m["loss_stderr"]) < 1e-3, (got["loss_stderr"], m["loss_stderr"])
    assert rel(got["grad_norm"], m["grad_norm"]) < RTOL, report
    if ck.config["train"]["symmetric"]:
        assert rel(got["objective"], m["loss_sym"]) < RTOL, (got["objective"], m["loss_sym"])
    elif ck.config["train"]["sym_reg"] == 0:
        assert got["objective"] == got["loss"]
    # One Adam update (torch.optim.Adam from the checkpoint's moments, at the schedule's rate of
    # step 6) lands on the binary's parameters after step 6 to far below one step (lr).
    # The reference's rate is the schedule's, as the binary logged it for step 6.
    lr = got["adam_update_lr"]
    assert rel(lr, m["lr"]) < 1e-12, (lr, m["lr"])
    assert got["adam_update_max_abs_diff"] < 1e-2 * lr, got
    print(f"{name}: rel diff loss {rel(got['loss'], m['loss']):.2e}, grad_norm "
          f"{rel(got['grad_norm'], m['grad_norm']):.2e}"
          + (f", objective {rel(got['objective'], m['loss_sym']):.2e}" if "loss_sym" in m else "")
          + f", adam update {got['adam_update_max_abs_diff']:.2e} at lr {lr:.3g}")


def test_generation_matches_the_binary(adapter, trained, tmp_path):
    # sample --checkpoint draws z of (seed, SAMPLE, step 0) and returns x = g(z), ln q, log|det|.
    for name in ("mera-L8", "tebd-L4"):
        before, _, _ = trained(name)
        out = tmp_path / f"{name}.npz"
        run(adapter, "sample", "--checkpoint", before, "--batch", 16, "--seed", 5, "--out", out)
        d = np.load(out)
        ck = R.load_checkpoint(str(before))
        plan = ck.plan()
        flow = R.Flow(plan, ck.masks.tolist(), dtype=torch.float64)
        flow.load_flat(ck.params)
        z = torch.tensor(R.latent(5, R.SAMPLE_STREAM, 0, 16, plan.n_sites))
        with torch.no_grad():
            x, ld = flow.generate(z)
            lq = R.ln_normal(z) - ld
            lq_inv = flow.ln_q(x)
        np.testing.assert_allclose(d["x"].reshape(16, -1), x.numpy(), rtol=0, atol=2e-4)
        np.testing.assert_allclose(d["log_det"], ld.numpy(), rtol=0, atol=2e-4)
        np.testing.assert_allclose(d["ln_q"], lq.numpy(), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(lq_inv.numpy(), lq.numpy(), rtol=0, atol=1e-9)


def test_check_cli(trained):
    before, _, m = trained("mera-L4-symmetric")
    r = subprocess.run([sys.executable, str(HERE / "pytorch_reference.py"), "check", "--checkpoint", str(before),
                        "--step", "5", "--threads", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["mode"] == "check" and got["symmetric"] is True
    assert rel(got["loss"], m["loss"]) < RTOL and rel(got["objective"], m["loss_sym"]) < RTOL
    assert rel(got["grad_norm"], m["grad_norm"]) < RTOL


def test_bench_json_is_shaped_like_the_binarys(adapter):
    flags = ["-L", "4", "--batch", "8", "--hidden", "4", "--couplings", "2", "--reps", "2", "--warmup", "1"]
    ours = json.loads(run(adapter, "bench", *flags, "--json"))
    r = subprocess.run([sys.executable, str(HERE / "pytorch_reference.py"), *flags, "--threads", "1", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = json.loads(r.stdout)
    assert set(ours) <= set(ref), set(ours) - set(ref)
    for key in ("lattice", "batch", "arch", "depth", "couplings", "hidden", "mlp_layers", "parameters"):
        assert ref[key] == ours[key], key
    assert ref["adapter"] == "pytorch eager cpu"
    # The reference has no HMC: it times the binary's workloads but the leapfrog step.
    shared = [t for t in ours["timings"] if t["name"] != "hmc_leapfrog"]
    assert len(shared) == len(ours["timings"]) - 1
    assert [t["name"] for t in ref["timings"]] == [t["name"] for t in shared]
    for a, b in zip(ref["timings"], shared):
        assert set(b) <= set(a)
        assert a["flops"] == b["flops"], a["name"]  # the same flop model
        assert a["reps"] == 2 and 0 < a["min_s"] <= a["median_s"] <= a["max_s"]
