"""The fast path (flat buffers + torch.compile) computes what the readable path computes.

Each course optimizer runs twice on the same float64 problem — once with every group on the
readable per-tensor path (``"fast": False``), once on the fast path (forced on small tensors by
``min_numel=1``) — and parameters and every state entry must agree after every step. Then the
fallbacks: a ``None`` gradient, a tiny problem (never compiles), a failing compiler (warning,
readable path); ``state_dict`` moving between the paths; an lr scheduler (no recompile).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import course_lib.optim as O
from course_lib.optim import _fast

# Arguments that switch on each optimizer's interesting branches (the defaults otherwise).
KWARGS: dict[str, dict] = {
    "SGD": {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "SGDW": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01},
    "Adam": {"lr": 0.01, "weight_decay": 0.01},
    "AdamW": {"lr": 0.01},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01},
    "RMSprop": {"lr": 0.01, "momentum": 0.5, "centered": True},
    "NAdam": {"lr": 0.01},
    "RAdam": {"lr": 0.01},
    "Lion": {"lr": 1e-3, "weight_decay": 0.1},
    "Adan": {"lr": 0.01, "weight_decay": 0.02},
    "Adai": {"lr": 0.01},
    "AdaiW": {"lr": 0.01, "weight_decay": 0.01},
}
MUST_COMPILE = ("Adam", "AdamW", "SGD", "Lion", "RAdam")  # the fast path must compile these
GROUP_LRS = (1.0, 0.3)  # the second group runs at a different learning rate


def optimizer_classes() -> list[type]:
    classes = {
        name: obj
        for name in dir(O)
        if isinstance(obj := getattr(O, name), type)
        and issubclass(obj, O.BlockOptimizer)
        and obj is not O.BlockOptimizer
    }
    return [classes[name] for name in sorted(classes)]


@pytest.fixture
def fast_everywhere():
    """Fast path on, compiled, for any size, every gradient copied into the flat buffer (no
    parameter large enough to be read in place); restored afterwards."""
    previous = O.set_fast_path(True, compile=True, min_numel=1, direct_min=1 << 40)
    yield
    O.set_fast_path(**previous)


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (7,), (3, 2, 4), (9,)]
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def make_opt(cls, params, fast: bool, kwargs: dict):
    kw = dict(kwargs)
    lr = kw.pop("lr", None)
    groups = [{"params": params[:2]}, {"params": params[2:]}]
    if lr is not None:
        for group, scale in zip(groups, GROUP_LRS):
            group["lr"] = lr * scale
    if not fast:
        for group in groups:
            group["fast"] = False
    return cls(groups, **kw)


def set_grads(params, step: int, none: tuple[int, ...] = ()) -> None:
    g = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        grad = torch.randn(p.shape, generator=g, dtype=p.dtype) + 0.1 * p.detach()
        p.grad = None if i in none else grad


def assert_same(opt_a, params_a, opt_b, params_b, where: str) -> None:
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"{where}: param {i}")
        sa, sb = opt_a.state[a], opt_b.state[b]
        assert list(sa) == list(sb), f"{where}: state keys of param {i}: {list(sa)} vs {list(sb)}"
        for key in sa:
            va, vb = sa[key], sb[key]
            assert type(va) is type(vb), f"{where}: type of state {key!r} of param {i}"
            if isinstance(va, torch.Tensor):
                torch.testing.assert_close(va, vb, rtol=1e-9, atol=1e-11, msg=f"{where}: {key}")
            elif callable(va):
                continue
            else:
                assert va == pytest.approx(vb, rel=1e-12), f"{where}: state {key!r} of param {i}"


def run_both(cls, kwargs, steps=10, none_steps=(), sched=None):
    """Readable and fast optimizers side by side; returns them with their params."""
    base = make_params()
    slow_p = [p.clone().requires_grad_() for p in base]
    fast_p = [p.clone().requires_grad_() for p in base]
    slow = make_opt(cls, slow_p, False, kwargs)
    fast = make_opt(cls, fast_p, True, kwargs)
    scheds = [sched(slow), sched(fast)] if sched else []
    for step in range(steps):
        none = (3,) if step in none_steps else ()
        set_grads(slow_p, step, none)
        set_grads(fast_p, step, none)
        slow.step()
        fast.step()
        for s in scheds:
            s.step()
        assert_same(slow, slow_p, fast, fast_p, f"{cls.__name__} step {step}")
    return slow, slow_p, fast, fast_p


def _params_of(cls):
    return [pytest.param(c, id=c.__name__) for c in cls]


@pytest.mark.parametrize("compiled", [False, True], ids=["flat", "compiled"])
@pytest.mark.parametrize(
    "cls", _params_of([c for c in optimizer_classes() if c.__name__ in MUST_COMPILE])
)
def test_core_optimizers_take_the_fast_path(cls, compiled, fast_everywhere, monkeypatch):
    O.set_fast_path(compile=compiled)
    monkeypatch.setattr(_fast, "_WARNED", set())  # a failure warned about earlier warns again
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(cls, KWARGS.get(cls.__name__, {}), steps=10)
    after = O.fast_path_stats()
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    flat = after["eager_flat_steps"] - before["eager_flat_steps"]
    done = after["compiled_steps"] - before["compiled_steps"]
    if compiled:
        assert done == 2 * 9, f"{cls.__name__}: {done} compiled group-steps out of 18"
        assert flat == 2  # the first step creates the state, uncompiled
    else:
        assert (flat, done) == (20, 0)


def _all_classes(compiled: bool):
    marks = [pytest.mark.slow] if compiled else []
    return [
        pytest.param(c, id=c.__name__, marks=marks)
        for c in optimizer_classes()
        if not (compiled and c.__name__ in MUST_COMPILE)  # already covered above
    ]


@pytest.mark.parametrize("cls", _all_classes(compiled=False))
def test_every_optimizer_same_on_flat_path(cls, fast_everywhere):
    O.set_fast_path(compile=False)
    if not _fast.class_applies(cls):
        pytest.skip(f"{cls.__name__} declines the flat path (own step() or flat_update = False)")
    before = O.fast_path_stats()["eager_flat_steps"]
    run_both(cls, KWARGS.get(cls.__name__, {}), steps=10)
    assert O.fast_path_stats()["eager_flat_steps"] - before == 20


@pytest.mark.parametrize("cls", _all_classes(compiled=True))
def test_every_optimizer_same_compiled(cls, fast_everywhere):
    if not _fast.class_applies(cls):
        pytest.skip(f"{cls.__name__} declines the flat path (own step() or flat_update = False)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a compile failure falls back: still equal
        run_both(cls, KWARGS.get(cls.__name__, {}), steps=10)


def test_none_grad_falls_back_to_readable_path(fast_everywhere):
    O.set_fast_path(compile=False)
    before = O.fast_path_stats()["eager_flat_steps"]
    run_both(O.Adam, KWARGS["Adam"], steps=8, none_steps=(3,))
    flat = O.fast_path_stats()["eager_flat_steps"] - before
    # group 0 always flat (8); group 1 flat before the None grad (3) and at it (its other
    # parameter alone), readable from then on (its parameters' step counters differ).
    assert flat == 8 + 4


def test_frozen_parameters_stay_out_of_the_layout(fast_everywhere):
    """Fine-tuning with ``Adam(model.parameters())`` and a frozen layer: the parameters without
    gradients are left out of the flat layout and the others still take the compiled path."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    model[0].requires_grad_(False)
    ref = copy.deepcopy(model)
    opt = O.Adam(model.parameters(), lr=0.01)
    ref_opt = O.Adam([{"params": list(ref.parameters()), "fast": False}], lr=0.01)
    x = torch.randn(16, 5, dtype=torch.float64)
    frozen = [p.detach().clone() for p in model[0].parameters()]
    before = O.fast_path_stats()
    for _ in range(6):
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    after = O.fast_path_stats()
    assert after["compiled_steps"] - before["compiled_steps"] == 5
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert all(torch.equal(p, f) for p, f in zip(model[0].parameters(), frozen))
    assert all(not opt.state[p] for p in model[0].parameters())


def test_tiny_problem_never_compiles():
    assert O.fast_path_config()["min_numel"] >= 10_000
    before = O.fast_path_stats()
    w = torch.tensor([1.0, -1.5], requires_grad=True)  # a 2-D landscape
    opt = O.Adam([w], lr=0.1)
    for _ in range(20):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    after = O.fast_path_stats()
    assert after == before, "a 2-parameter problem touched the fast path"


def test_compile_failure_warns_and_falls_back(fast_everywhere, monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(_fast, "_backend", broken_backend)
    monkeypatch.setattr(_fast, "_WARNED", set())
    before = O.fast_path_stats()
    with pytest.warns(RuntimeWarning, match="torch.compile failed for Adam"):
        run_both(O.Adam, KWARGS["Adam"], steps=6)
    after = O.fast_path_stats()
    assert after["layouts"] - before["layouts"] == 2  # one per group, never rebuilt per step
    assert after["eager_flat_steps"] - before["eager_flat_steps"] == 2  # first step, then readable
    assert after["compiled_steps"] == before["compiled_steps"]


def test_disabled_switch_and_group_opt_out(fast_everywhere):
    before = O.fast_path_stats()
    O.set_fast_path(False)
    run_both(O.Adam, KWARGS["Adam"], steps=3)
    assert O.fast_path_stats() == before
    O.set_fast_path(True, compile=False)
    p = make_params()
    opt = O.Adam([{"params": p[:2], "fast": False}, {"params": p[2:]}])
    for step in range(3):
        set_grads(p, step)
        opt.step()
    assert O.fast_path_stats()["eager_flat_steps"] - before["eager_flat_steps"] == 3


@pytest.mark.parametrize("direction", ["fast_to_readable", "readable_to_fast"])
def test_state_dict_moves_between_paths(direction, fast_everywhere):
    base = make_params()
    pa = [p.clone().requires_grad_() for p in base]
    src_fast = direction == "fast_to_readable"
    src = make_opt(O.AdamW, pa, src_fast, KWARGS["AdamW"])
    for step in range(4):
        set_grads(pa, step)
        src.step()
    saved = copy.deepcopy(src.state_dict())
    pb = [p.detach().clone().requires_grad_() for p in pa]
    dst = make_opt(O.AdamW, pb, not src_fast, KWARGS["AdamW"])
    dst.load_state_dict(saved)
    dst_keys = {k: sorted(v) for k, v in dst.state_dict()["state"].items()}
    assert dst_keys == {k: sorted(v) for k, v in saved["state"].items()}
    for step in range(4, 9):
        set_grads(pa, step)
        set_grads(pb, step)
        src.step()
        dst.step()
        assert_same(src, pa, dst, pb, f"{direction} step {step}")
    # the fast path keeps the readable format: per-parameter tensors of the param's shape, int step
    for state in src.state_dict()["state"].values():
        assert isinstance(state["step"], int)
        assert state["m"].shape == state["v"].shape


def test_scheduler_changes_lr_without_recompiling(fast_everywhere):
    def sched(opt):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))

    run_both(O.Adam, KWARGS["Adam"], steps=3, sched=sched)  # warm: compiled once at most
    before = O.fast_path_stats()
    run_both(O.Adam, KWARGS["Adam"], steps=10, sched=sched)
    after = O.fast_path_stats()
    assert after["compiles"] == before["compiles"], "a new lr or step recompiled"
    assert after["compiled_steps"] - before["compiled_steps"] == 18


def test_layout_survives_model_state_dict_and_autograd(fast_everywhere):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    ref = copy.deepcopy(model)
    opt = O.Adam(model.parameters(), lr=0.01)
    ref_opt = O.Adam([{"params": list(ref.parameters()), "fast": False}], lr=0.01)
    x = torch.randn(16, 5, dtype=torch.float64)
    for _ in range(5):
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    state = model.state_dict()
    fresh = copy.deepcopy(ref)
    fresh.load_state_dict(state)
    for a, b in zip(fresh.parameters(), model.parameters()):
        assert torch.equal(a, b)
    # the parameters are views of one flat buffer, and their gradients of another
    ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(ptrs) == 1


def test_load_state_dict_mid_run_rebuilds_the_layout(fast_everywhere):
    O.set_fast_path(compile=False)
    base = make_params()
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(O.Adam, params, fast, KWARGS["Adam"])
        for step in range(2):
            set_grads(params, step)
            opt.step()
        snapshot = copy.deepcopy(opt.state_dict())
        for step in range(2, 4):
            set_grads(params, step)
            opt.step()
        opt.load_state_dict(snapshot)  # back to the state of step 2 (the params are not)
        for step in range(4, 7):
            set_grads(params, step)
            opt.step()
        runs.append((opt, params))
    (slow, slow_p), (fast, fast_p) = runs
    assert_same(slow, slow_p, fast, fast_p, "after load_state_dict")
    assert fast.state[fast_p[0]]["step"] == 2 + 3


@pytest.mark.parametrize("maximize", [False, True])
def test_fast_path_never_writes_p_grad(maximize, fast_everywhere):
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam(params, lr=0.01, maximize=maximize)
    for step in range(3):
        set_grads(params, step)
        grads = [p.grad for p in params]
        before = [g.clone() for g in grads]
        opt.step()
        for p, g, b in zip(params, grads, before):
            assert p.grad is g, "p.grad was re-pointed"
            assert torch.equal(p.grad, b), "p.grad values changed"
    assert O.fast_path_stats()["compiled_steps"] + O.fast_path_stats()["eager_flat_steps"] > 0


@pytest.mark.parametrize("maximize", [False, True])
def test_zero_grad_without_none_shares_the_flat_gradient_buffer(maximize, fast_everywhere):
    """``zero_grad(set_to_none=False)``: each ``p.grad`` becomes a zeroed view of the flat gradient
    buffer, ``backward()`` accumulates into it, and ``step()`` copies nothing, still matches the
    readable path and still leaves ``p.grad`` unchanged (also with ``maximize``)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    ref = copy.deepcopy(model)
    opt = O.Adam(model.parameters(), lr=0.01, maximize=maximize)
    ref_opt = O.Adam([{"params": list(ref.parameters()), "fast": False}], lr=0.01,
                     maximize=maximize)
    x = torch.randn(16, 5, dtype=torch.float64)
    for step in range(6):
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad(set_to_none=False)
            if step > 0:
                assert all(torch.count_nonzero(p.grad) == 0 for p in m.parameters())
            m(x).pow(2).mean().backward()
            if step == 4:  # the caller replaces one gradient: only that one is copied
                first = next(m.parameters())
                first.grad = 2 * first.grad
        grads = [p.grad.clone() for p in model.parameters()]
        copies = O.fast_path_stats()["grad_copies"]
        opt.step()
        ref_opt.step()
        copied = O.fast_path_stats()["grad_copies"] - copies
        assert copied == (0 if step in (1, 2, 3, 5) else 1), f"step {step}: {copied} gathers"
        for p, g in zip(model.parameters(), grads):
            assert torch.equal(p.grad, g), "step() changed p.grad"
        for a, b in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    storages = {p.grad.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(storages) == 1, "the gradients are not views of one buffer"
    opt.zero_grad()  # the default still sets them to None
    assert all(p.grad is None for p in model.parameters())


def test_backend_passes_restarts_through_and_retries_failures_once(monkeypatch):
    """Dynamo's restart signal is not a failure (catching it compiled every graph twice); a real
    failure is retried once with inductor's own instruction-set probe and no precompiled header."""
    import torch._inductor.compile_fx as compile_fx_module

    config = torch._inductor.config
    calls, raising = [], []

    def fake_compile_fx(gm, example_inputs):
        calls.append((config.cpp.vec_isa_ok, config.cpp_cache_precompile_headers))
        if raising:
            raise raising.pop(0)
        return gm.forward

    monkeypatch.setattr(compile_fx_module, "compile_fx", fake_compile_fx)
    gm = torch.fx.symbolic_trace(lambda x: x + 1)
    restart = torch._dynamo.exc.TensorifyScalarRestartAnalysis()
    raising[:] = [restart]
    with pytest.raises(type(restart)):
        _fast._backend(gm, [torch.zeros(2)])
    assert len(calls) == 1
    calls.clear()
    raising[:] = [RuntimeError("cannot build for this instruction set")]
    assert _fast._backend(gm, [torch.zeros(2)])(torch.zeros(2)).tolist() == [1.0, 1.0]
    assert calls == [(True, config.cpp_cache_precompile_headers), (None, False)]


# --- large gradients read where they are: one compiled call per large parameter ---


@pytest.fixture
def read_in_place(fast_everywhere):
    """The fast path with the parameters of 20 elements or more read in place: in each group
    of :func:`make_params` the first parameter (30 and 24 elements), then the rest."""
    O.set_fast_path(direct_min=20)


@pytest.mark.parametrize("cls", _params_of([c for c in optimizer_classes()]))
def test_large_gradients_read_in_place_same_result(cls, read_in_place):
    if not _fast.class_applies(cls):
        pytest.skip(f"{cls.__name__} declines the flat path (own step() or flat_update = False)")
    before = O.fast_path_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a compile failure falls back: still equal
        run_both(cls, KWARGS.get(cls.__name__, {}), steps=10)
    after = O.fast_path_stats()
    if cls.__name__ in MUST_COMPILE:  # single pass, nothing counted in the group dict
        assert after["segmented_steps"] - before["segmented_steps"] == 2 * 9
        assert after["compiles"] - before["compiles"] <= 1, "a new length recompiled"


def test_layout_puts_large_parameters_first(read_in_place):
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.01)
    set_grads(params, 0)
    opt.step()
    # (6, 5) then (7,) in group 0; (3, 2, 4) then (9,) in group 1: the large one starts each
    assert [p.storage_offset() for p in params] == [0, 30, 0, 24]
    snapshot = copy.deepcopy(opt.state_dict())
    assert [tuple(snapshot["state"][i]["m"].shape) for i in range(4)] == [
        (6, 5), (7,), (3, 2, 4), (9,)
    ]


@pytest.mark.parametrize("case", ["non_contiguous", "maximize", "shared"])
def test_read_in_place_edge_cases(case, read_in_place):
    """A non-contiguous large gradient is copied (the others still read in place);
    ``maximize`` copies everything (the gradients are negated in our buffer); gradients that
    already are views of the buffer (``zero_grad(set_to_none=False)``) take one call."""
    base = make_params()
    kwargs = {"lr": 0.01, "maximize": case == "maximize"}
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(O.Adam, params, fast, kwargs)
        before = O.fast_path_stats()
        for step in range(6):
            if case == "shared" and step > 0:
                opt.zero_grad(set_to_none=False)
                g = torch.Generator().manual_seed(step)
                for p in params:
                    p.grad.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            else:
                set_grads(params, step)
            if case == "non_contiguous":
                params[0].grad = params[0].grad.t().contiguous().t()
                assert not params[0].grad.is_contiguous()
            opt.step()
        after = O.fast_path_stats()
        runs.append((opt, params, after["segmented_steps"] - before["segmented_steps"]))
    (slow, slow_p, _), (fast, fast_p, segmented) = runs
    assert_same(slow, slow_p, fast, fast_p, case)
    expected = {"non_contiguous": 2 * 5, "maximize": 0, "shared": 0}[case]
    assert segmented == expected


# --- hyperparameters a scheduler changes every step ---


def one_cycle(opt):
    """OneCycleLR with its defaults: it also cycles Adam's beta1 and SGD's momentum."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=40)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (O.Adam, {"lr": 0.01, "weight_decay": 0.01}),
        (O.AdamW, {"lr": 0.01}),
        (O.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
    ],
    ids=["Adam", "AdamW", "SGD"],
)
def test_cycled_hyperparameters_become_tensors_not_recompiles(cls, kwargs, fast_everywhere):
    """OneCycleLR changes beta1 (momentum) every step: the compiled step takes it as a tensor
    from its first change on (one more graph) instead of recompiling per value until dynamo
    gives up after 8 and the readable path takes over."""
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(cls, kwargs, steps=14, sched=one_cycle)
    after = O.fast_path_stats()
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert after["compiled_steps"] - before["compiled_steps"] == 2 * 13
    assert after["compiles"] - before["compiles"] <= 2


def test_undeclared_hyperparameter_stays_a_constant(fast_everywhere, monkeypatch):
    """Nesterov passes momentum to torch as ``alpha=``, which must be a number (traced with a
    tensor there, the first value would be baked into the graph), so SGD does not declare it
    then: momentum stays a constant; after a few new values (each a recompile) the group stops
    compiling, with a warning. The results are the readable path's throughout."""
    monkeypatch.setattr(_fast, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slow, slow_p, fast, fast_p = run_both(
            O.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True}, steps=12, sched=one_cycle
        )
    layout = fast._fast.layouts[0]
    assert not layout.tensor_keys
    assert fast.tensor_hyperparameters(fast.param_groups[0]) == {}
    assert not layout.compiled_ok and layout.constant_changes == _fast._MAX_CONSTANT_CHANGES + 1
    assert [w for w in caught if "keeps changing" in str(w.message)]


def test_many_optimizers_with_different_constants_all_compile(fast_everywhere, monkeypatch):
    """A sweep in one process: each optimizer's constants make a graph of their own for the one
    shared ``Adam.update``; more than dynamo's default of 8 still compile."""
    monkeypatch.setattr(_fast, "_WARNED", set())
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(12):
            params = [p.requires_grad_() for p in make_params()]
            opt = O.Adam(params, lr=0.01, eps=1e-8 * (i + 1), weight_decay=0.001 * i)
            for step in range(3):
                set_grads(params, step)
                opt.step()
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert O.fast_path_stats()["compiled_steps"] - before["compiled_steps"] == 12 * 2


def test_cycled_beta1_in_float32(fast_everywhere):
    """The tensor beta1 (a 0-d float64) mixes into float32 state the way the number did."""
    base = [p.float() for p in make_params()]
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(O.Adam, params, fast, {"lr": 0.01})
        sched = one_cycle(opt)
        for step in range(10):
            set_grads(params, step)
            opt.step()
            sched.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


class BranchingSGD(O.SGD):
    """Declares momentum as tensor-safe but branches on it in Python: not compilable as a tensor."""

    def tensor_hyperparameters(self, group):
        return {"momentum": None}

    def update(self, group, params, grads, states):
        if group["momentum"] > 0.5:  # a data-dependent branch once momentum is a tensor
            return super().update(group, params, grads, states)
        return super().update(group, params, grads, states)


def test_declared_hyperparameter_that_does_not_compile_falls_back_to_a_constant(fast_everywhere):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, _, fast, _ = run_both(BranchingSGD, {"lr": 0.01, "momentum": 0.9}, steps=6,
                                 sched=one_cycle)
    layout = fast._fast.layouts[0]
    assert "momentum" in layout.static_keys and "momentum" not in layout.tensor_keys
