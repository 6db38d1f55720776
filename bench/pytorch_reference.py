#!/usr/bin/env python3
"""PyTorch reference implementation of neuralrg-gpu's flow, target and PDD loss.

The same hierarchical Real NVP network (layer plan, flat parameter layout, coupling masks), the
same target (the continuous relaxation of the 2D Ising model, eq. 7 of Li & Wang 2018), the same
probability-density-distillation loss (plain, symmetrised, sym-reg) and the same latent draws
(Philox4x32-10 keyed by (seed, stream, step), Box-Muller normals) as `neuralrg-gpu`, written in
plain PyTorch with gradients by autograd and torch.optim.Adam.

Modes:
  bench  (default) time a training step (plain and symmetric) and the generation of a batch with
         ln q; prints one JSON object shaped like `neuralrg-gpu bench --json`.
  check  with --checkpoint DIR: the plain loss, the trained objective and the gradient norm of
         the objective for the checkpoint's parameters and neuralrg-gpu's own latent draw
         z(seed, stream 0, step T); prints JSON.

Needs: torch, numpy, safetensors (pip install torch numpy safetensors).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the plan and the RNG work without torch
    torch = None
    F = None

BETA_C = 0.5 * math.log(1.0 + math.sqrt(2.0))  # 0.44068679350977147
LN2 = math.log(2.0)
LN_2PI = math.log(2.0 * math.pi)
MIN_EIGENVALUE = 0.1
MAX_HIDDEN = 128
MAX_MLP_LAYERS = 4
ARCHS = ("mera", "tree", "tebd")
TRAIN_STREAM = 0  # streams::TRAIN
SAMPLE_STREAM = 1  # streams::SAMPLE

# --------------------------------------------------------------------------------------------
# The layer plan and the flat parameter layout (src/flow/plan.rs, src/flow/params.rs)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    couplings: int
    hidden: int
    mlp_layers: int

    def mlp_size(self) -> int:
        """Parameters of one MLP 2 -> H (-> H)^(m-1) -> 2, without the tanh scale."""
        h = self.hidden
        return 3 * h + (self.mlp_layers - 1) * (h * h + h) + 2 * h + 2

    def out_offset(self) -> int:
        h = self.hidden
        return 3 * h + (self.mlp_layers - 1) * (h * h + h)

    def scale_offset(self) -> int:
        return self.mlp_size()

    def t_offset(self) -> int:
        return self.mlp_size() + 2

    def coupling_size(self) -> int:
        return 2 * self.mlp_size() + 2

    def layer_size(self) -> int:
        return self.couplings * self.coupling_size()

    def mlp_macs(self) -> int:
        h, m = self.hidden, self.mlp_layers
        return 2 * h + (m - 1) * h * h + 2 * h


@dataclass
class Layer:
    level: int
    shifted: bool
    blocks: list  # [[4 site indices]] in the order the bijector sees them
    kept_after: int
    param_offset: int


@dataclass
class Plan:
    lattice: int
    depth: int
    arch: str
    layout: Layout
    layers: list = field(default_factory=list)  # inference order (x -> z)

    @property
    def n_sites(self) -> int:
        return self.lattice * self.lattice

    def n_params(self) -> int:
        return len(self.layers) * self.layout.layer_size()

    def n_rows(self, batch: int) -> int:
        return batch * sum(len(l.blocks) for l in self.layers)

    def to_json(self) -> dict:
        """The same object as `neuralrg-gpu plan --json`."""
        lay = self.layout
        return {
            "config": {
                "lattice": self.lattice,
                "depth": self.depth,
                "arch": self.arch,
                "couplings": lay.couplings,
                "hidden": lay.hidden,
                "mlp_layers": lay.mlp_layers,
            },
            "layout": {"couplings": lay.couplings, "hidden": lay.hidden, "mlp_layers": lay.mlp_layers},
            "layers": [
                {
                    "level": l.level,
                    "shifted": l.shifted,
                    "blocks": [list(b) for b in l.blocks],
                    "kept_after": l.kept_after,
                    "param_offset": l.param_offset,
                }
                for l in self.layers
            ],
        }


def _blocks(l: int, level: int, shifted: bool) -> list:
    s = 1 << level
    o = s if shifted else 0
    per_side = l // (2 * s)

    def site(x, y):
        return (y % l) * l + (x % l)

    out = []
    for b in range(per_side * per_side):
        cx, cy = 2 * s * (b % per_side) + o, 2 * s * (b // per_side) + o
        out.append([site(cx, cy), site(cx + s, cy), site(cx, cy + s), site(cx + s, cy + s)])
    return out


def make_plan(lattice: int, arch: str = "mera", depth: int | None = None, couplings: int = 10,
              hidden: int = 64, mlp_layers: int = 2) -> Plan:
    """FlowPlan::new with FlowConfig::new's validation."""
    if lattice < 4 or lattice & (lattice - 1):
        raise ValueError(f"--lattice must be a power of two and at least 4 for the flow (got {lattice})")
    levels = lattice.bit_length() - 1
    depth = levels if depth is None else depth
    if arch not in ARCHS:
        raise ValueError(f"--arch must be one of {ARCHS} (got {arch})")
    if arch == "tebd" and not 1 <= depth <= lattice:
        raise ValueError(f"--depth must be between 1 and {lattice} (L) for --arch tebd (got {depth})")
    if arch != "tebd" and not 1 <= depth <= levels:
        raise ValueError(f"--depth must be between 1 and {levels} (log2 L) for --arch {arch} (got {depth})")
    if couplings < 1:
        raise ValueError("--couplings must be at least 1 (got 0)")
    if not 1 <= hidden <= MAX_HIDDEN:
        raise ValueError(f"--hidden must be between 1 and {MAX_HIDDEN} (got {hidden})")
    if not 1 <= mlp_layers <= MAX_MLP_LAYERS:
        raise ValueError(f"--mlp-layers must be between 1 and {MAX_MLP_LAYERS} (got {mlp_layers})")

    def alive(level):
        return (lattice >> level) * (lattice >> level)

    spec = []  # (level, shifted, sites alive after the layer)
    for d in range(depth):
        if arch == "mera":
            spec.append((d, True, alive(d)))
            spec.append((d, False, alive(d + 1)))
        elif arch == "tree":
            spec.append((d, False, alive(d + 1)))
        else:
            spec.append((0, False, alive(0)))
            spec.append((0, True, alive(0)))
    layout = Layout(couplings, hidden, mlp_layers)
    layers = [
        Layer(level, shifted, _blocks(lattice, level, shifted),
              0 if i + 1 == len(spec) else alive_after, i * layout.layer_size())
        for i, (level, shifted, alive_after) in enumerate(spec)
    ]
    return Plan(lattice, depth, arch, layout, layers)


PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _complement(pair):
    return tuple(i for i in range(4) if i not in pair)


def pack_mask(upd, keep) -> int:
    return upd[0] | upd[1] << 2 | keep[0] << 4 | keep[1] << 6


def unpack_mask(m: int):
    """(update pair, keep pair) of a packed mask upd0 | upd1 << 2 | keep0 << 4 | keep1 << 6."""
    f = lambda shift: (int(m) >> shift) & 3  # noqa: E731
    return (f(0), f(2)), (f(4), f(6))


def random_masks(plan: Plan, gen) -> list:
    """params::masks' scheme (even steps a random pair, odd steps its complement) drawn from a
    torch.Generator; neuralrg-gpu draws its pairs from ChaCha8, so the pairs themselves differ."""
    out = []
    for _ in plan.layers:
        pair = PAIRS[0]
        for step in range(plan.layout.couplings):
            if step % 2 == 0:
                pair = PAIRS[int(torch.randint(len(PAIRS), (1,), generator=gen))]
                upd = pair
            else:
                upd = _complement(pair)
            out.append(pack_mask(upd, _complement(upd)))
    return out


# --------------------------------------------------------------------------------------------
# The counter-based RNG (src/reference/rng.rs, shaders/rng.wgsl)
# --------------------------------------------------------------------------------------------

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(ctr, key):
    """Philox4x32-10, vectorised: ctr is a [..., 4] and key a [..., 2] array of uint32 (or
    broadcastable). Returns [..., 4] uint32."""
    c = np.array(ctr, dtype=np.uint64) & _MASK32
    k = np.array(key, dtype=np.uint64) & _MASK32
    c0, c1, c2, c3 = (c[..., i] for i in range(4))
    k0, k1 = k[..., 0], k[..., 1]
    for _ in range(10):
        p0 = _M0 * c0  # < 2^64: exact in uint64
        p1 = _M1 * c2
        h0, l0 = p0 >> np.uint64(32), p0 & _MASK32
        h1, l1 = p1 >> np.uint64(32), p1 & _MASK32
        c0, c1, c2, c3 = h1 ^ c1 ^ k0, l1, h0 ^ c3 ^ k1, l0
        k0 = (k0 + np.uint64(_W0)) & _MASK32
        k1 = (k1 + np.uint64(_W1)) & _MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def philox_blocks(seed: int, stream: int, step: int, n_blocks: int):
    """Counter blocks 0..n_blocks of the stream (seed, stream, step): counter = (block, stream,
    step_lo, step_hi), key = (seed_lo, seed_hi). [n_blocks, 4] uint32."""
    b = np.arange(n_blocks, dtype=np.uint64)
    ctr = np.stack(np.broadcast_arrays(b, np.uint64(stream & 0xFFFFFFFF), np.uint64(step & 0xFFFFFFFF),
                                       np.uint64((step >> 32) & 0xFFFFFFFF)), axis=-1)
    key = np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], dtype=np.uint64)
    return philox4x32_10(ctr, key)


def bits(seed: int, stream: int, step: int, n: int):
    """The first n raw outputs of a stream (the shader's fill_bits)."""
    return philox_blocks(seed, stream, step, (n + 3) // 4).reshape(-1)[:n]


def uniform01(a):
    """Uniform in (0, 1) exactly as the shader forms it in f32 (exact, so also exact in f64)."""
    return ((np.asarray(a, dtype=np.uint32) >> np.uint32(9)).astype(np.float32) + np.float32(0.5)) * np.float32(
        1.0 / 8388608.0)


def normals(seed: int, stream: int, step: int, n: int, precision: str = "f64"):
    """The first n standard normals of a stream (the shader's fill_normal): Box-Muller on the
    pairs (r0, r1) and (r2, r3) of every counter block. precision "f64" is the Rust twin
    (src/reference/rng.rs: f32 uniforms, f64 log/sqrt/cos/sin); "f32" does the Box-Muller in f32
    as the shader does. Returns float64."""
    r = philox_blocks(seed, stream, step, (n + 3) // 4)
    u = uniform01(r)  # [blocks, 4] f32
    if precision == "f32":
        ua, ub = u[:, 0::2], u[:, 1::2]
        rad = np.sqrt(np.float32(-2.0) * np.log(ua))
        theta = np.float32(6.283185307179586) * ub
        z = np.stack([rad * np.cos(theta), rad * np.sin(theta)], axis=-1)  # [blocks, 2, 2]
        z = z.astype(np.float64)
    else:
        u = u.astype(np.float64)
        ua, ub = u[:, 0::2], u[:, 1::2]
        rad = np.sqrt(-2.0 * np.log(ua))
        theta = 2.0 * math.pi * ub
        z = np.stack([rad * np.cos(theta), rad * np.sin(theta)], axis=-1)
    # block b: [z0, z1] from (r0, r1), [z2, z3] from (r2, r3)
    return z.reshape(-1)[:n]


# --------------------------------------------------------------------------------------------
# The target (src/physics/ising.rs, src/reference/target.rs)
# --------------------------------------------------------------------------------------------


class IsingTarget:
    """ln pi(x) = -x^T A^{-1} x / 2 + sum_i ln cosh x_i, A = K + alpha I, K = beta * adjacency of
    the L x L torus (every site bonded to its right and lower neighbour), alpha = 0.1 -
    lambda_min(K). A is circulant: eigenvalues alpha + 2 beta (cos 2 pi a / L + cos 2 pi b / L)."""

    def __init__(self, lattice: int, beta: float):
        if lattice < 2:
            raise ValueError(f"--lattice must be at least 2 (got {lattice})")
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive finite number (got {beta})")
        l = lattice
        self.lattice, self.beta = l, beta
        a = np.arange(l)
        ca = np.cos(2.0 * np.pi * a / l)
        k_eig = 2.0 * beta * (ca[None, :] + ca[:, None])  # [b, a]
        self.alpha = MIN_EIGENVALUE - k_eig.min()
        self.eigenvalues = k_eig + self.alpha  # [b (y), a (x)]
        self.ln_det_a = float(np.log(self.eigenvalues).sum())
        n = l * l
        adj = np.zeros((n, n))
        for y in range(l):
            for x in range(l):
                i = y * l + x
                for j in (y * l + (x + 1) % l, ((y + 1) % l) * l + x):
                    adj[i, j] += beta
                    adj[j, i] += beta
        self.a_matrix = adj + self.alpha * np.eye(n)
        self.a_inverse = np.linalg.inv(self.a_matrix)
        self._cache = {}

    def _tensor(self, name, device, dtype):
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = (name, str(device), dtype)
        if key not in self._cache:
            src = self.a_inverse if name == "ainv" else self.eigenvalues
            self._cache[key] = torch.as_tensor(src, dtype=dtype, device=device)
        return self._cache[key]

    def prepare(self, device, dtype):
        """Puts A^{-1} and the eigenvalues on the device up front (so torch.compile sees a fixed
        cache and does not recompile when it fills)."""
        self._tensor("ainv", torch.device(device), dtype)
        self._tensor("eig", torch.device(device), dtype)
        return self

    def apply_a_inverse(self, x, op: str = "dense"):
        """A^{-1} x for x of shape [batch, N] (sites y * L + x)."""
        if op == "fft":
            l = self.lattice
            eig = self._tensor("eig", x.device, x.dtype)
            xf = torch.fft.fft2(x.reshape(-1, l, l))
            return torch.fft.ifft2(xf / eig).real.reshape(x.shape)
        return x @ self._tensor("ainv", x.device, x.dtype)

    def log_prob(self, x, op: str = "dense"):
        """Unnormalised ln pi(x) per sample; x [batch, N]."""
        y = self.apply_a_inverse(x, op)
        a = x.abs()
        ln_cosh = a + torch.log1p(torch.exp(-2.0 * a)) - LN2
        return (ln_cosh - 0.5 * x * y).sum(-1)

    def log_prob_np(self, x):
        """ln pi(x) in numpy f64, x [batch, N]."""
        x = np.asarray(x, dtype=np.float64)
        a = np.abs(x)
        return (a + np.log1p(np.exp(-2 * a)) - LN2).sum(-1) - 0.5 * np.einsum("bi,ij,bj->b", x, self.a_inverse, x)


# --------------------------------------------------------------------------------------------
# The flow (src/reference/flow.rs)
# --------------------------------------------------------------------------------------------


def _mlp_shapes(lay: Layout):
    """(weight shapes, bias shapes) of one MLP in the flat layout's order (W0, b0, W1, b1, ...)."""
    h = lay.hidden
    ws = [(h, 2)] + [(h, h)] * (lay.mlp_layers - 1) + [(2, h)]
    bs = [(h,)] * lay.mlp_layers + [(2,)]
    return ws, bs


if torch is not None:

    class Flow(torch.nn.Module):
        """The hierarchical Real NVP flow. Parameters live in their natural shapes (one tensor per
        weight matrix, bias and scale); `load_flat`/`flat` map them to and from neuralrg-gpu's flat
        layout, so the gradient norm over them is the norm of the flat gradient."""

        def __init__(self, plan: Plan, masks, device="cpu", dtype=None):
            super().__init__()
            dtype = dtype or torch.float32
            self.plan = plan
            lay = plan.layout
            self.masks = [unpack_mask(m) for m in masks]
            if len(self.masks) != len(plan.layers) * lay.couplings:
                raise ValueError("masks do not fit the flow")
            self.params_list = torch.nn.ParameterList()
            # (offset in the flat layout, parameter) in layout order
            self.flat_map = []
            # steps[li][k] = (s_ws, s_bs, scale, t_ws, t_bs)
            self.steps = []
            ws_shapes, bs_shapes = _mlp_shapes(lay)

            def new(off, shape):
                p = torch.nn.Parameter(torch.zeros(shape, device=device, dtype=dtype))
                self.params_list.append(p)
                self.flat_map.append((off, p))
                return p

            def mlp(base):
                ws, bs, off = [], [], base
                for wshape, bshape in zip(ws_shapes, bs_shapes):
                    ws.append(new(off, wshape))
                    off += math.prod(wshape)
                    bs.append(new(off, bshape))
                    off += math.prod(bshape)
                assert off - base == lay.mlp_size()
                return ws, bs

            for layer in plan.layers:
                per_layer = []
                for k in range(lay.couplings):
                    base = layer.param_offset + k * lay.coupling_size()
                    s_ws, s_bs = mlp(base)
                    scale = new(base + lay.scale_offset(), (2,))
                    t_ws, t_bs = mlp(base + lay.t_offset())
                    per_layer.append((s_ws, s_bs, scale, t_ws, t_bs))
                self.steps.append(per_layer)
            self.block_index = [torch.tensor(l.blocks, dtype=torch.long, device=device) for l in plan.layers]
            self.site_index = [b.reshape(-1) for b in self.block_index]

        # -- the flat layout ---------------------------------------------------------------
        def load_flat(self, flat):
            flat = torch.as_tensor(np.asarray(flat))
            if flat.numel() != self.plan.n_params():
                raise ValueError(f"{flat.numel()} parameters for a flow of {self.plan.n_params()}")
            with torch.no_grad():
                for off, p in self.flat_map:
                    p.copy_(flat[off:off + p.numel()].reshape(p.shape))

        def flat(self, grads: bool = False):
            out = torch.zeros(self.plan.n_params(), dtype=torch.float64)
            for off, p in self.flat_map:
                t = p.grad if grads else p
                if t is not None:
                    out[off:off + p.numel()] = t.detach().reshape(-1).to("cpu", torch.float64)
            return out

        def from_flat(self, flat):
            """Per-parameter tensors (in parameter order) cut from a flat array (Adam moments)."""
            flat = torch.as_tensor(np.asarray(flat))
            return [flat[off:off + p.numel()].reshape(p.shape).to(p.device, p.dtype) for off, p in self.flat_map]

        # -- the network --------------------------------------------------------------------
        @staticmethod
        def _mlp(inp, ws, bs):
            h = F.elu(F.linear(inp, ws[0], bs[0]))
            for w, b in zip(ws[1:-1], bs[1:-1]):
                h = F.elu(F.linear(h, w, b))
            return F.linear(h, ws[-1], bs[-1])

        def _pass(self, state, generate: bool):
            """The whole flow in one direction on state [batch, N]: (output, log|det| [batch])."""
            batch = state.shape[0]
            kk = self.plan.layout.couplings
            n_layers = len(self.plan.layers)
            order = range(n_layers - 1, -1, -1) if generate else range(n_layers)
            ld = state.new_zeros(batch)
            for li in order:
                blocks = self.block_index[li]
                nb = blocks.shape[0]
                cols = list(state[:, blocks].reshape(batch * nb, 4).unbind(1))
                ld_rows = None
                for k in (range(kk) if generate else range(kk - 1, -1, -1)):
                    (u0, u1), (k0, k1) = self.masks[li * kk + k]
                    s_ws, s_bs, scale, t_ws, t_bs = self.steps[li][k]
                    inp = torch.stack((cols[k0], cols[k1]), 1)
                    s = scale * torch.tanh(self._mlp(inp, s_ws, s_bs))
                    t = self._mlp(inp, t_ws, t_bs)
                    if generate:
                        cols[u0] = cols[u0] * torch.exp(s[:, 0]) + t[:, 0]
                        cols[u1] = cols[u1] * torch.exp(s[:, 1]) + t[:, 1]
                    else:
                        cols[u0] = (cols[u0] - t[:, 0]) * torch.exp(-s[:, 0])
                        cols[u1] = (cols[u1] - t[:, 1]) * torch.exp(-s[:, 1])
                    st = s[:, 0] + s[:, 1]
                    ld_rows = st if ld_rows is None else ld_rows + st
                out = torch.stack(cols, 1).reshape(batch, nb * 4)
                state = state.index_copy(1, self.site_index[li], out)
                ld_layer = ld_rows.reshape(batch, nb).sum(1)
                ld = ld + ld_layer if generate else ld - ld_layer
            return state, ld

        def generate(self, z):
            """x = g(z) and log|det dg/dz|."""
            return self._pass(z, True)

        def infer(self, x):
            """z = g^{-1}(x) and log|det dg^{-1}/dx|."""
            return self._pass(x, False)

        def ln_q(self, x):
            z, ld = self.infer(x)
            return ln_normal(z) + ld


def ln_normal(z):
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * LN_2PI


def init_flat(plan: Plan, gen, perturb: float = 0.0):
    """params::init's scheme from torch's RNG: He-normal weights (std sqrt(2 / fan_in)) on every
    hidden layer and on the s-MLP's output layer, zero biases, zero tanh scales and a zero t-MLP
    output layer, so a fresh flow is exactly the identity; plus N(0, perturb^2) noise."""
    lay = plan.layout
    h = lay.hidden
    p = torch.zeros(plan.n_params(), dtype=torch.float64)

    def fill(a, b, fan_in):
        p[a:b] = torch.randn(b - a, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / fan_in)

    for layer in plan.layers:
        for k in range(lay.couplings):
            step = layer.param_offset + k * lay.coupling_size()
            for mlp, is_s in ((step, True), (step + lay.t_offset(), False)):
                fill(mlp, mlp + 2 * h, 2)
                off = mlp + 3 * h
                for _ in range(1, lay.mlp_layers):
                    fill(off, off + h * h, h)
                    off += h * h + h
                if is_s:
                    fill(off, off + 2 * h, h)
    if perturb:
        p += perturb * torch.randn(p.shape, generator=gen, dtype=torch.float64)
    return p.to(torch.float32).numpy()


# --------------------------------------------------------------------------------------------
# The loss (shaders/loss.wgsl, src/reference/backward.rs)
# --------------------------------------------------------------------------------------------


def loss_terms(flow, target: IsingTarget, z, symmetric: bool = False, sym_reg: float = 0.0,
               target_op: str = "dense"):
    """Per sample (plain, objective): plain = ln q(x) - ln pi(x) with x = g(z); the objective is
    ln q_sym(x) - ln pi(x), q_sym = [q(x) + q(-x)] / 2, if symmetric, plus sym_reg (ln q(x) -
    ln q(-x)); ln q(-x) by an inference pass on -x."""
    x, ld = flow.generate(z)
    lq = ln_normal(z) - ld
    lp = target.log_prob(x, target_op)
    plain = lq - lp
    objective = plain
    if symmetric or sym_reg != 0.0:
        zn, ldn = flow.infer(-x)
        lqn = ln_normal(zn) + ldn
        if symmetric:
            objective = torch.logaddexp(lq, lqn) - LN2 - lp
        objective = objective + sym_reg * (lq - lqn)
    return plain, objective


def mean_stderr(v):
    v = np.asarray(v, dtype=np.float64)
    n = len(v)
    mean = v.mean()
    return float(mean), float(math.sqrt(((v - mean) ** 2).sum() / max(n - 1, 1) / n))


def grad_norm(params):
    grads = [p.grad for p in params if p.grad is not None]
    if hasattr(torch, "_foreach_norm"):
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))


def learning_rate(base, schedule, warmup, t, total):
    """The learning rate of step t (0-based) of a run of `total` steps: a linear warm-up, then
    constant, cosine (to zero at the last step) or exponential (to 1% of base) decay, as
    neuralrg-gpu's `train::schedule::learning_rate`."""
    if t < warmup:
        return base * (t + 1) / warmup
    progress = min((t - warmup) / max(total - warmup, 1), 1.0)
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "exponential":
        return base * 0.01 ** progress
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def make_optimizer(params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Adam; with weight decay AdamW (neuralrg-gpu's decay is decoupled: p -= lr * wd * p)."""
    if weight_decay:
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)


def flop_model(plan: Plan, batch: int):
    """src/flow/cost.rs: 2 flops per multiply-add of the MLPs; a pass applies every coupling step
    (an s-MLP and a t-MLP) to every block of every layer; a training step is 3 passes' worth
    (forward, input and weight gradients), twice for the objectives with an inference pass on -x."""
    lay = plan.layout
    pass_flops = plan.n_rows(batch) * lay.couplings * 2 * 2 * lay.mlp_macs()
    return {"pass": pass_flops, "train": 3 * pass_flops, "train_negated": 6 * pass_flops}


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    config: dict
    step: int
    params: np.ndarray
    masks: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray

    def plan(self) -> Plan:
        c, f = self.config, self.config["flow"]
        return make_plan(c["lattice"], f["arch"], f["depth"], f["couplings"], f["hidden"], f["mlp_layers"])


def load_checkpoint(path: str) -> Checkpoint:
    from safetensors import safe_open

    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.safetensors")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in f.keys()}
    if "config" not in meta:
        raise ValueError(f"{path} is not a neuralrg-gpu checkpoint (no config metadata)")
    return Checkpoint(json.loads(meta["config"]), int(meta["step"]), t["params"].astype(np.float32),
                      t["masks"].astype(np.uint32), t["adam_m"].astype(np.float32), t["adam_v"].astype(np.float32))


# --------------------------------------------------------------------------------------------
# check: loss, objective and gradient norm for a checkpoint and neuralrg-gpu's latent draw
# --------------------------------------------------------------------------------------------


def _dtype(name):
    return {"float32": torch.float32, "float64": torch.float64}[name]


def latent(seed: int, stream: int, step: int, batch: int, n: int, precision="f64"):
    """neuralrg-gpu's latent draw z [batch, N] of (seed, stream, step)."""
    return normals(seed, stream, step, batch * n, precision).reshape(batch, n)


def check(ck: Checkpoint, step: int | None = None, dtype="float64", z_precision="f64",
          target_op="dense", next_ck: Checkpoint | None = None, device="cpu", batch=None,
          symmetric=None, sym_reg=None) -> dict:
    """The statistics training step `step` (default: the checkpoint's) reports: the plain loss,
    the trained objective and |grad| of the objective, for the checkpoint's parameters and z from
    (seed, TRAIN, step). With next_ck (the checkpoint after that step) also the Adam update."""
    dt = _dtype(dtype)
    c, tr = ck.config, ck.config["train"]
    step = ck.step if step is None else step
    batch = tr["batch"] if batch is None else batch
    symmetric = tr["symmetric"] if symmetric is None else symmetric
    sym_reg = tr["sym_reg"] if sym_reg is None else sym_reg
    plan = ck.plan()
    target = IsingTarget(c["lattice"], c["beta"])
    flow = Flow(plan, ck.masks.tolist(), device=device, dtype=dt)
    flow.load_flat(ck.params)
    z = torch.as_tensor(latent(tr["seed"], TRAIN_STREAM, step, batch, plan.n_sites, z_precision), dtype=dt,
                        device=device)
    plain, obj = loss_terms(flow, target, z, symmetric, sym_reg, target_op)
    obj.mean().backward()
    params = [p for _, p in flow.flat_map]  # layout order, as from_flat cuts the moments
    gn = float(grad_norm(params))
    loss, loss_err = mean_stderr(plain.detach().cpu().numpy())
    objective, objective_err = mean_stderr(obj.detach().cpu().numpy())
    out = {
        "mode": "check",
        "step": step,
        "seed": tr["seed"],
        "stream": TRAIN_STREAM,
        "batch": batch,
        "lattice": c["lattice"],
        "beta": c["beta"],
        "arch": c["flow"]["arch"],
        "symmetric": symmetric,
        "sym_reg": sym_reg,
        "parameters": plan.n_params(),
        "dtype": dtype,
        "z_precision": z_precision,
        "loss": loss,
        "loss_stderr": loss_err,
        "objective": objective,
        "objective_stderr": objective_err,
        "grad_norm": gn,
    }
    if next_ck is not None:
        # The run that took the step, whose total steps (raised by a resume) place the schedule.
        a = next_ck.config["train"]
        lr = learning_rate(a["lr"], a.get("lr_schedule", "constant"), a.get("warmup_steps", 0), step, a["steps"])
        opt = make_optimizer(params, lr, a["beta1"], a["beta2"], a["eps"], a["weight_decay"])
        for p, m, v in zip(params, flow.from_flat(ck.adam_m), flow.from_flat(ck.adam_v)):
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        if a["clip_grad"] > 0:
            torch.nn.utils.clip_grad_norm_(params, a["clip_grad"])
        opt.step()
        new = flow.flat().numpy()
        want = next_ck.params.astype(np.float64)
        out["adam_update_max_abs_diff"] = float(np.abs(new - want).max())
        out["adam_update_max_abs_step"] = float(np.abs(want - ck.params.astype(np.float64)).max())
        out["adam_update_lr"] = lr
    return out


# --------------------------------------------------------------------------------------------
# bench: training steps and generation, timed
# --------------------------------------------------------------------------------------------


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timing(name, times, batch, flops):
    times = sorted(times)
    median = times[len(times) // 2]
    return {
        "name": name,
        "median_s": median,
        "min_s": times[0],
        "max_s": times[-1],
        "reps": len(times),
        "samples_per_s": batch / median,
        "flops": flops,
        "gflop_per_s": flops / median * 1e-9,
    }


def bench(plan: Plan, params_flat, masks, target: IsingTarget, batch: int, device="cpu", dtype="float32",
          compile_=False, warmup=1, reps=5, seed=0, adam=None, target_op="dense", log=lambda s: None,
          compile_mode=None) -> dict:
    """Times `reps` training steps (plain, then symmetric) and generations after `warmup` untimed
    ones (at least 2 with torch.compile: the first call compiles); returns a dict shaped like
    `neuralrg-gpu bench --json`. A training step: z ~ N(0, 1) (torch.randn), the objective,
    backward, the gradient norm, Adam, and reading (loss, objective, |grad|) back to the host, as
    neuralrg-gpu's step does."""
    dt = _dtype(dtype)
    adam = adam or {}
    n = plan.n_sites
    flops = flop_model(plan, batch)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    target.prepare(device, dt)
    timings, compile_info = [], {}

    def maybe_compile(fn, name):
        if not compile_:
            return fn
        return torch.compile(fn, mode=compile_mode)

    for name, symmetric in (("train_step", False), ("train_step_symmetric", True)):
        log(name)
        flow = Flow(plan, masks, device=device, dtype=dt)
        flow.load_flat(params_flat)
        params = list(flow.parameters())
        opt = make_optimizer(params, **adam)

        def objective_fn(z, flow=flow, symmetric=symmetric):
            plain, obj = loss_terms(flow, target, z, symmetric, 0.0, target_op)
            return plain.mean(), obj.mean()

        fn = maybe_compile(objective_fn, name)

        def train_step():
            z = torch.randn(batch, n, generator=gen, device=device, dtype=dt)
            opt.zero_grad(set_to_none=True)
            loss, obj = fn(z)
            obj.backward()
            gn = grad_norm(params)
            opt.step()
            return torch.stack([loss.detach(), obj.detach(), gn]).cpu()  # the host reads the stats

        times = []
        n_warm = max(warmup, 2 if compile_ else 0)
        for r in range(n_warm + reps):
            start = time.perf_counter()
            try:
                stats = train_step()
            except Exception as e:  # torch.compile failing: report it and fall back to eager
                if not compile_ or r > 0:
                    raise
                compile_info.setdefault("compile_error", f"{name}: {type(e).__name__}: {str(e)[:500]}")
                fn = objective_fn
                stats = train_step()
            elapsed = time.perf_counter() - start
            if r == 0 and compile_:
                compile_info.setdefault("first_call_s", {})[name] = elapsed
            if r >= n_warm:
                times.append(elapsed)
        if not torch.isfinite(stats).all():
            log(f"{name}: non-finite statistics {stats.tolist()}")
        timings.append(_timing(name, times, batch, flops["train_negated" if symmetric else "train"]))

    log("generate")
    flow = Flow(plan, masks, device=device, dtype=dt)
    flow.load_flat(params_flat)

    def generate_fn(z):
        x, ld = flow.generate(z)
        return x, ln_normal(z) - ld

    gfn = maybe_compile(generate_fn, "generate")
    times = []
    n_warm = max(warmup, 2 if compile_ else 0)
    with torch.no_grad():
        for r in range(n_warm + reps):
            start = time.perf_counter()
            z = torch.randn(batch, n, generator=gen, device=device, dtype=dt)
            try:
                x, lq = gfn(z)
            except Exception as e:
                if not compile_ or r > 0:
                    raise
                compile_info.setdefault("compile_error", f"generate: {type(e).__name__}: {str(e)[:500]}")
                gfn = generate_fn
                x, lq = gfn(z)
            _sync(device)
            elapsed = time.perf_counter() - start
            if r == 0 and compile_:
                compile_info.setdefault("first_call_s", {})["generate"] = elapsed
            if r >= n_warm:
                times.append(elapsed)
    timings.append(_timing("generate", times, batch, flops["pass"]))

    dev = torch.device(device)
    if dev.type == "cuda":
        adapter_dev = torch.cuda.get_device_name(dev)
        driver = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
        device_type = "Cuda"
    else:
        adapter_dev = "cpu"
        driver = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        device_type = "Cpu"
    mode = "compile" if compile_ and "compile_error" not in compile_info else "eager"
    if compile_ and "compile_error" in compile_info:
        mode = "eager (compile failed)"
    report = {
        "adapter": f"pytorch {mode} {adapter_dev}",
        "backend": "PyTorch",
        "device_type": device_type,
        "driver": driver,
        "lattice": plan.lattice,
        "batch": batch,
        "arch": plan.arch,
        "depth": plan.depth,
        "couplings": plan.layout.couplings,
        "hidden": plan.layout.hidden,
        "mlp_layers": plan.layout.mlp_layers,
        "parameters": plan.n_params(),
        "dtype": dtype,
        "target_op": target_op,
        "timings": timings,
    }
    if compile_:
        compile_info["mode"] = compile_mode or "default"
        report["compile"] = compile_info
    return report


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="PyTorch reference of neuralrg-gpu: same flow, target, PDD loss and latent draws.")
    ap.add_argument("mode", nargs="?", default="bench", choices=("bench", "check"),
                    help="bench (default): time training steps and generation; check: loss, objective and "
                         "gradient norm of a checkpoint for neuralrg-gpu's latent draw")
    ap.add_argument("-L", "--lattice", type=int, default=None, help="linear lattice size (power of two >= 4)")
    ap.add_argument("--beta", type=float, default=None, help="inverse temperature (default beta_c)")
    ap.add_argument("--temperature", type=float, default=None, help="temperature T (beta = 1/T)")
    ap.add_argument("--arch", choices=ARCHS, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--couplings", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--mlp-layers", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None,
                    help="samples per step (bench default 1024; check default the checkpoint's)")
    ap.add_argument("--symmetric", action="store_true", default=None,
                    help="check: override the checkpoint's objective (bench always times both objectives)")
    ap.add_argument("--sym-reg", type=float, default=None, help="check: override the checkpoint's sym-reg weight")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", choices=("float32", "float64"), default=None,
                    help="default float32 for bench, float64 for check")
    ap.add_argument("--compile", action="store_true", help="bench: wrap the loss/generation in torch.compile")
    ap.add_argument("--compile-mode", default=None,
                    help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, ...")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--target-op", choices=("dense", "fft"), default="dense",
                    help="A^{-1} x by a dense N x N matrix (default) or a batched 2D FFT")
    ap.add_argument("--checkpoint", default=None, help="run directory or checkpoint.safetensors")
    ap.add_argument("--init", action="store_true",
                    help="bench: a fresh network (He-normal, identity flow) plus 0.01 noise from torch's RNG "
                         "(the default without --checkpoint)")
    ap.add_argument("--step", type=int, default=None,
                    help="check: the training step whose latent draw to use (default the checkpoint's step)")
    ap.add_argument("--z-precision", choices=("f64", "f32"), default="f64",
                    help="check: Box-Muller in f64 (the Rust twin) or in f32 (as the shader)")
    ap.add_argument("--next-checkpoint", default=None,
                    help="check: the checkpoint after that step; also compares one Adam update")
    ap.add_argument("--json", action="store_true", help="accepted for symmetry with neuralrg-gpu; output is JSON")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if torch is None:
        sys.exit("pytorch_reference.py needs torch: pip install torch numpy safetensors")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"pytorch_reference: {s} ...", file=sys.stderr))
    if args.beta is not None and args.temperature is not None:
        sys.exit("give either --beta or --temperature, not both")

    if args.mode == "check":
        if not args.checkpoint:
            sys.exit("check needs --checkpoint DIR")
        ck = load_checkpoint(args.checkpoint)
        nxt = load_checkpoint(args.next_checkpoint) if args.next_checkpoint else None
        out = check(ck, args.step, args.dtype or "float64", args.z_precision, args.target_op, nxt, args.device,
                    args.batch, args.symmetric, args.sym_reg)
        print(json.dumps(out))
        return

    # bench
    adam = {}
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint)
        c, f = ck.config, ck.config["flow"]
        plan = ck.plan()
        lattice, beta = c["lattice"], c["beta"]
        params, masks = ck.params, ck.masks.tolist()
        batch = args.batch or c["train"]["batch"]
        seed = c["train"]["seed"] if args.seed is None else args.seed
        t = c["train"]
        adam = dict(lr=t["lr"], beta1=t["beta1"], beta2=t["beta2"], eps=t["eps"], weight_decay=t["weight_decay"])
    else:
        lattice = args.lattice if args.lattice is not None else 32
        beta = args.beta if args.beta is not None else (1.0 / args.temperature if args.temperature else BETA_C)
        try:
            plan = make_plan(lattice, args.arch or "mera", args.depth, args.couplings or 10, args.hidden or 10,
                             args.mlp_layers or 3)
        except ValueError as e:
            sys.exit(str(e))
        seed = args.seed or 0
        gen = torch.Generator().manual_seed(seed)
        params = init_flat(plan, gen, perturb=0.01)  # away from the identity, like `neuralrg-gpu bench`
        masks = random_masks(plan, gen)
        batch = args.batch or 1024
    if args.lr is not None:
        adam["lr"] = args.lr
    target = IsingTarget(lattice, beta)
    report = bench(plan, params, masks, target, batch, args.device, args.dtype or "float32", args.compile,
                   args.warmup, args.reps, seed, adam, args.target_op, log, args.compile_mode)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
