"""Step time of every course optimizer vs its reference and vs its memory-traffic bound.

    python benchmarks/bench_optim.py                       # both models, 1 thread, CPU
    python benchmarks/bench_optim.py --only Adam --reps 30 --model many-small
    python benchmarks/bench_optim.py --device cuda --markdown benchmarks/RESULTS.md --json out.json

Models (synthetic gradients, no forward pass; float32):

* ``many-small``: 5.39M parameters in 195 tensors (24 transformer-like blocks of 8 tensors,
  an embedding and a final norm);
* ``few-large``: the same 5.39M parameters in 4 tensors.

For each optimizer: our step on the fast path (the default) and on the readable path, the reference
implementations (``torch.optim`` default / foreach / fused, ``lion_pytorch.Lion``,
``pytorch_optimizer``), and the **bound**: the bytes the update must move divided by the copy
bandwidth measured in this process (``dst.copy_(src)`` on 86 MB buffers, read + write counted;
the best of measurements taken between the optimizer rounds all through the run).
A stricter bound uses the best bandwidth of simple streaming kernels (copy, in-place ``mul_``,
``add_``, ``addcmul_``): in-place updates, like an optimizer's, avoid the write-allocate reads a
copy into another buffer pays, so they stream faster than ``copy_``.

Bytes per parameter (the derivation): an elementwise update must read the parameter, the gradient
and each of its ``k`` per-parameter state tensors, and write the parameter and the ``k`` states
back: ``(3 + 2k) × itemsize``; ``k`` is counted on the optimizer after its first step (Adam:
m, v → 28 B in float32; SGD with momentum → 20 B; Lion → 20 B; Adan: m, v, n, prev_grad → 44 B).
Adai needs a reduction (the mean of v̂ over all parameters) between updating ``v`` and using it,
so it must read ``g`` and ``v`` a second time: + 2 × itemsize.

Two gradient regimes are timed: ``kept`` (the gradient tensors persist between steps: a loop
with ``zero_grad(set_to_none=False)``, whose zeroed tensors ``backward()`` fills in place; what
``torch.optim`` benchmarks usually time. Our ``zero_grad`` then leaves views of the optimizer's
flat gradient buffer, so the fast path reads the gradients where they are) and ``fresh`` (new
gradient tensors every step, as after the default ``zero_grad()``: our fast path then copies them
into its flat buffer, 8 more bytes per parameter). All variants of one optimizer are timed
interleaved, round after round, and the median of the rounds is reported (min in the JSON), so that
a noisy neighbour slows all of them alike. First-step overhead = time of the first steps minus the
steady-state time (the compile happens on the second step: the first one creates the state).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import course_lib.optim as O  # noqa: E402

# ---------------------------------------------------------------------------------- models


def many_small_shapes() -> list[tuple[int, ...]]:
    d, ff, vocab = 128, 512, 5000
    shapes: list[tuple[int, ...]] = [(vocab, d)]
    for _ in range(24):
        shapes += [(3 * d, d), (3 * d,), (d, d), (d,), (ff, d), (ff,), (d, ff), (d,)]
    return shapes + [(d,), (d,)]


def few_large_shapes() -> list[tuple[int, ...]]:
    total = sum(torch.Size(s).numel() for s in many_small_shapes())
    shapes = [(2048, 1024), (2048, 1024), (1024, 1164)]
    return shapes + [(total - sum(torch.Size(s).numel() for s in shapes),)]


MODELS = {"many-small": many_small_shapes, "few-large": few_large_shapes}

# ------------------------------------------------------------------------------ optimizers

# Hyperparameters for our optimizer and the references (the same update, same arguments).
OURS: dict[str, dict] = {
    "SGD": {"lr": 1e-3, "momentum": 0.9},
    "SGDW": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-2},
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3, "weight_decay": 1e-2},
    "Lion": {"lr": 1e-4, "weight_decay": 1e-2},
}


def references(name: str) -> dict[str, callable]:
    """``label -> factory(params)`` of the reference implementations of our optimizer ``name``."""
    t = torch.optim
    kw = OURS.get(name, {})
    refs: dict[str, callable] = {}

    def torch_variants(cls, kwargs, fused=True):
        refs[f"torch.optim.{cls.__name__}"] = lambda ps: cls(ps, **kwargs)
        refs[f"torch.optim.{cls.__name__}(foreach)"] = lambda ps: cls(ps, foreach=True, **kwargs)
        if fused:
            refs[f"torch.optim.{cls.__name__}(fused)"] = lambda ps: cls(ps, fused=True, **kwargs)

    if name in ("SGD", "Adam", "AdamW", "Adagrad"):
        torch_variants(getattr(t, name), kw)
    elif name in ("RMSprop", "Adadelta", "NAdam", "RAdam"):
        torch_variants(getattr(t, name), kw, fused=False)
    elif name == "Lion":
        try:
            from lion_pytorch import Lion

            refs["lion_pytorch.Lion"] = lambda ps: Lion(ps, **kw)
        except ImportError:
            pass
    elif name in ("Adan", "Adai"):
        try:
            import pytorch_optimizer as po

            refs[f"pytorch_optimizer.{name}"] = lambda ps: getattr(po, name)(ps, **kw)
        except ImportError:
            pass
    return refs


def course_optimizers() -> list[str]:
    names = [
        n
        for n in O.__all__
        if isinstance(c := getattr(O, n, None), type)
        and issubclass(c, O.BlockOptimizer)
        and c is not O.BlockOptimizer
    ]
    return names


# ------------------------------------------------------------------------------- measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bandwidth:
    """Best bandwidth (bytes/s) of streaming kernels on buffers far larger than caches, kept over
    the whole run: measured between the optimizer rounds too, so a busy neighbour at one moment
    does not make the bound look slack. ``copy``: ``dst.copy_(src)``, 2 × size moved; ``stream``:
    the best of copy and the in-place ``mul_`` / ``add_`` / ``addcmul_`` (2 / 3 / 4 × size)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        n = 21_600_000  # 86 MB per buffer in float32
        a, b, c = (torch.randn(n, device=device) for _ in range(3))
        dst = torch.empty_like(a)
        size = n * a.element_size()
        self.kernels = {
            "copy": (lambda: dst.copy_(a), 2 * size),
            "mul_": (lambda: a.mul_(1.0), 2 * size),
            "add_": (lambda: a.add_(b, alpha=0.0), 3 * size),
            "addcmul_": (lambda: a.addcmul_(b, c, value=0.0), 4 * size),
        }
        self.best = dict.fromkeys(self.kernels, 0.0)
        self.measure(reps=10)

    def measure(self, reps: int = 1) -> None:
        for name, (fn, nbytes) in self.kernels.items():
            for _ in range(reps):
                sync(self.device)
                t0 = time.perf_counter()
                fn()
                sync(self.device)
                self.best[name] = max(self.best[name], nbytes / (time.perf_counter() - t0))

    @property
    def copy(self) -> float:
        return self.best["copy"]

    @property
    def stream(self) -> float:
        return max(self.best.values())


def make_params(shapes, device, seed=0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g).to(device)) for s in shapes]


def make_grads(params, seed) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [1e-3 * torch.randn(p.shape, generator=g).to(p.device) for p in params]


class Variant:
    """One optimizer on its own copy of the parameters, with two gradient sets to alternate."""

    def __init__(self, label, factory, shapes, device, fast: bool | None):
        self.label, self.device = label, device
        self.params = make_params(shapes, device)
        self.grads = [make_grads(self.params, 1), make_grads(self.params, 2)]
        if fast is False:
            groups = [{"params": self.params, "fast": False}]
        else:
            groups = self.params
        self.opt = factory(groups)
        self.times: dict[str, list[float]] = {"kept": [], "fresh": []}
        self.first: list[float] = []
        self.turn = 0

    def set_grads(self) -> None:
        """The fresh regime: new gradient tensors, as ``backward()`` makes after the default
        ``zero_grad()`` (``set_to_none=True``)."""
        self.turn ^= 1
        for p, g in zip(self.params, self.grads[self.turn]):
            p.grad = g

    def accumulate_grads(self) -> None:
        """The kept regime: ``zero_grad(set_to_none=False)``, then ``backward()`` writes into the
        tensors it leaves (here: an in-place add of the synthetic gradients)."""
        self.turn ^= 1
        for p in self.params:  # our own tensors: zero_grad must not zero the gradient sets
            p.grad = torch.zeros_like(p)
        self.opt.zero_grad(set_to_none=False)
        torch._foreach_add_([p.grad for p in self.params], self.grads[self.turn])

    def timed_step(self) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        self.opt.step()
        sync(self.device)
        return time.perf_counter() - t0

    def warm(self, n: int = 3) -> None:
        for _ in range(n):
            self.set_grads()
            self.first.append(self.timed_step())

    def round(self, regime: str, steps: int) -> None:
        total = 0.0
        for _ in range(steps):
            if regime == "fresh":
                self.set_grads()
            total += self.timed_step()
        self.times[regime].append(total / steps)


def state_tensors_per_param(opt) -> int:
    for p, st in opt.state.items():
        return sum(isinstance(v, torch.Tensor) and v.numel() == p.numel() for v in st.values())
    return 0


def bench_one(name, shapes, device, reps, steps, bw: Bandwidth, readable: bool) -> dict:
    cls = getattr(O, name)
    kw = OURS.get(name, {})
    variants = [Variant("ours", lambda ps: cls(ps, **kw), shapes, device, fast=None)]
    if readable:
        variants.append(Variant("ours (readable)", lambda ps: cls(ps, **kw), shapes, device, False))
    for label, factory in references(name).items():
        try:
            variants.append(Variant(label, factory, shapes, device, fast=None))
        except (RuntimeError, ValueError, TypeError) as exc:  # e.g. fused unsupported here
            print(f"  skip {label}: {exc}", file=sys.stderr)
    for v in variants:
        v.warm()
    before = O.fast_path_stats()
    for regime in ("kept", "fresh"):
        for v in variants:  # the kept regime: one gradient set, in place, for all its rounds
            v.accumulate_grads()
        for rep in range(reps):
            # Rotate who goes first: the first round after the bandwidth kernels pays for
            # writing back the cache lines they left dirty.
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:
                v.round(regime, steps)
            bw.measure()
    after = O.fast_path_stats()  # which path our optimizer took in the timed rounds
    if after["compiled_steps"] > before["compiled_steps"]:
        path = "compiled"
    elif after["eager_flat_steps"] > before["eager_flat_steps"]:
        path = "flat"
    else:
        path = "readable"
    numel = sum(p.numel() for p in variants[0].params)
    k = state_tensors_per_param(variants[0].opt)
    item = variants[0].params[0].element_size()
    bytes_per_param = (3 + 2 * k + (2 if name.startswith("Adai") else 0)) * item
    row = {
        "optimizer": name,
        "numel": numel,
        "tensors": len(shapes),
        "bytes_per_param": bytes_per_param,
        "bytes": bytes_per_param * numel,
        "path": path,
        "variants": {},
    }
    for v in variants:
        steady = statistics.median(v.times["kept"])
        row["variants"][v.label] = {
            "kept_ms": steady * 1e3,
            "kept_min_ms": min(v.times["kept"]) * 1e3,
            "fresh_ms": statistics.median(v.times["fresh"]) * 1e3,
            "fresh_min_ms": min(v.times["fresh"]) * 1e3,
            "first_steps_overhead_s": sum(v.first) - len(v.first) * steady,
        }
    return row


# ------------------------------------------------------------------------------- reporting


def set_bounds(row: dict, bw: Bandwidth) -> None:
    row["bound_ms"] = row["bytes"] / bw.copy * 1e3
    row["strict_bound_ms"] = row["bytes"] / bw.stream * 1e3


def ratios(row: dict) -> list[tuple[str, float, float]]:
    ours = row["variants"]["ours"]
    out = []
    for label, v in row["variants"].items():
        if label != "ours":
            out.append((label, ours["kept_ms"] / v["kept_ms"], ours["fresh_ms"] / v["fresh_ms"]))
    return out


def print_row(row: dict) -> None:
    ours = row["variants"]["ours"]
    print(
        f"\n{row['optimizer']} [{row['path']}]  {row['numel'] / 1e6:.2f}M params in "
        f"{row['tensors']} tensors; bound {row['bound_ms']:.2f} ms "
        f"({row['bytes_per_param']} B/param); ours/bound = {ours['kept_ms'] / row['bound_ms']:.2f} "
        f"(kept), {ours['fresh_ms'] / row['bound_ms']:.2f} (fresh); strict bound "
        f"{row['strict_bound_ms']:.2f} ms, ours/strict = "
        f"{ours['kept_ms'] / row['strict_bound_ms']:.2f}; "
        f"first-steps overhead {ours['first_steps_overhead_s']:.2f} s"
    )
    print(f"  {'variant':34s} {'kept ms':>9s} {'fresh ms':>9s} {'ours/it kept':>13s} {'fresh':>7s}")
    rel = {label: (a, b) for label, a, b in ratios(row)}
    for label, v in row["variants"].items():
        a, b = rel.get(label, (1.0, 1.0))
        print(f"  {label:34s} {v['kept_ms']:9.2f} {v['fresh_ms']:9.2f} {a:13.2f} {b:7.2f}")


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}, device "
        f"{meta['device']}, {meta['threads']} thread(s); copy bandwidth "
        f"{meta['bandwidth_GBps']:.1f} GB/s (best streaming kernel "
        f"{meta['stream_GBps']:.1f} GB/s: the strict bound). Median of {meta['reps']} "
        f"interleaved rounds of "
        f"{meta['steps']} steps; `kept` = gradient tensors kept between steps "
        "(`zero_grad(set_to_none=False)`), `fresh` = new gradient tensors every step (the default "
        "`zero_grad()`). Ratios < 1: ours is faster.",
        "",
    ]
    for model, rows in results["models"].items():
        lines += [
            f"**{model}**",
            "",
            "| optimizer | path | ours ms (kept / fresh) | bound ms (copy / strict) | ours / bound "
            "(kept / fresh / strict) | readable ms | reference | ref ms | "
            "ours / ref (kept / fresh) | first steps s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            ours = row["variants"]["ours"]
            readable = row["variants"].get("ours (readable)", {}).get("kept_ms", float("nan"))
            refs = [r for r in ratios(row) if r[0] != "ours (readable)"] or [("—", None, None)]
            for i, (label, a, b) in enumerate(refs):
                ref_ms = row["variants"][label]["kept_ms"] if a is not None else float("nan")
                head = (
                    f"| {row['optimizer']} | {row['path']} | {ours['kept_ms']:.2f} / "
                    f"{ours['fresh_ms']:.2f} | {row['bound_ms']:.2f} / "
                    f"{row['strict_bound_ms']:.2f} | {ours['kept_ms'] / row['bound_ms']:.2f} / "
                    f"{ours['fresh_ms'] / row['bound_ms']:.2f} / "
                    f"{ours['kept_ms'] / row['strict_bound_ms']:.2f} | {readable:.1f} "
                    if i == 0
                    else "| | | | | | "
                )
                tail = (
                    f"| {label} | {ref_ms:.2f} | {a:.2f} / {b:.2f} "
                    if a is not None
                    else "| — | — | — "
                )
                first = f"| {ours['first_steps_overhead_s']:.2f} |" if i == 0 else "| |"
                lines.append(head + tail + first)
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15, help="interleaved rounds per regime")
    ap.add_argument("--steps", type=int, default=3, help="steps per round")
    ap.add_argument("--only", action="append", help="optimizer name (repeatable)")
    ap.add_argument("--model", choices=["many-small", "few-large", "both"], default="both")
    ap.add_argument("--no-readable", action="store_true", help="skip the readable path")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.only or course_optimizers()
    models = list(MODELS) if args.model == "both" else [args.model]
    bw = Bandwidth(device)
    print(
        f"torch {torch.__version__}, {device}, {args.threads} thread(s); bandwidth so far: copy "
        f"{bw.copy / 1e9:.1f} GB/s, best streaming kernel {bw.stream / 1e9:.1f} GB/s"
    )
    results = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
            "torch": torch.__version__,
            "device": str(device),
            "threads": args.threads,
            "reps": args.reps,
            "steps": args.steps,
        },
        "models": {},
    }
    for model in models:
        shapes = MODELS[model]()
        print(f"\n=== {model}: {len(shapes)} tensors ===")
        rows = []
        for name in names:
            row = bench_one(name, shapes, device, args.reps, args.steps, bw, not args.no_readable)
            set_bounds(row, bw)
            print_row(row)
            rows.append(row)
        results["models"][model] = rows
    bw.measure(reps=10)
    results["meta"]["bandwidth_GBps"] = bw.copy / 1e9
    results["meta"]["stream_GBps"] = bw.stream / 1e9
    for rows in results["models"].values():  # final bounds: the best bandwidth of the whole run
        for row in rows:
            set_bounds(row, bw)
    print(
        f"\nbest bandwidth over the run: copy {bw.copy / 1e9:.1f} GB/s, streaming "
        f"{bw.stream / 1e9:.1f} GB/s (bounds in --json/--markdown use these)"
    )
    print("\n" + markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(results) + "\n")
    return results


if __name__ == "__main__":
    main()
