"""The fast path (flat buffers + torch.compile) computes what the readable path computes.

Each registered configuration (``tests/optimizers.py``) runs twice on the same float64 problem —
once with every group on the readable per-tensor path (``"fast": False``), once on the fast path
(forced on small tensors by ``min_numel=1``) — and parameters and every state entry must agree
after every step. Then the fallbacks (a ``None`` gradient, a tiny problem, a failing compiler, a
class the fast path does not know), everything a user may do between steps (``load_state_dict``,
clearing or rewriting state, switching the fast path off and on, holding views of parameters),
schedulers, and the gradient buffer sharing of ``zero_grad(set_to_none=False)``.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import course_lib.optim as O
from course_lib.optim import fastpath
from course_lib.optim.fastpath import compiler, settings, torch_internals
from tests.optimizers import BY_ID, CONFIGS

MUST_COMPILE = ("Adam", "AdamW", "SGD", "Lion", "RAdam")  # compiled on every run of the suite


@pytest.fixture(autouse=True)
def fresh_warnings():
    settings.forget_warnings()  # a warning issued by an earlier test is issued again
    yield


@pytest.fixture
def fast_everywhere():
    """Fast path on, compiled, for any size, every gradient copied into the flat buffer (no
    parameter large enough to be read in place); restored afterwards."""
    previous = O.set_fast_path(True, compile=True, min_numel=1, direct_min=1 << 40)
    yield
    O.set_fast_path(**previous)


def make_params(seed: int = 0, dtype=torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (7,), (3, 2, 4), (9,)]
    return [torch.randn(s, generator=g, dtype=dtype) for s in shapes]


def make_opt(config, params, fast: bool, **extra):
    groups = [{"params": params[:2], **config.groups[0]}, {"params": params[2:], **config.groups[1]}]
    if not fast:
        for group in groups:
            group["fast"] = False
    return config.build(groups, **extra)


def set_grads(params, step: int, none: tuple[int, ...] = ()) -> None:
    g = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        grad = torch.randn(p.shape, generator=g, dtype=p.dtype) + 0.1 * p.detach()
        p.grad = None if i in none else grad


def assert_same(opt_a, params_a, opt_b, params_b, where: str, rtol=1e-9, atol=1e-11) -> None:
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"{where}: param {i}")
        sa, sb = opt_a.state[a], opt_b.state[b]
        assert list(sa) == list(sb), f"{where}: state keys of param {i}: {list(sa)} vs {list(sb)}"
        for key in sa:
            va, vb = sa[key], sb[key]
            assert type(va) is type(vb), f"{where}: type of state {key!r} of param {i}"
            if isinstance(va, torch.Tensor):
                assert va.shape == a.shape or va.dim() == 0, f"{where}: shape of {key!r}"
                torch.testing.assert_close(va, vb, rtol=rtol, atol=atol, msg=f"{where}: {key}")
            else:
                assert va == pytest.approx(vb, rel=1e-12), f"{where}: state {key!r} of param {i}"


def run_both(config, steps=10, none_steps=(), sched=None, between=None, **extra):
    """Readable and fast optimizers side by side; ``between(opt, params, step)`` runs on both
    before each step. Returns them with their params."""
    base = make_params()
    slow_p = [p.clone().requires_grad_() for p in base]
    fast_p = [p.clone().requires_grad_() for p in base]
    slow = make_opt(config, slow_p, False, **extra)
    fast = make_opt(config, fast_p, True, **extra)
    scheds = [sched(slow), sched(fast)] if sched else []
    for step in range(steps):
        none = (3,) if step in none_steps else ()
        for params, opt in ((slow_p, slow), (fast_p, fast)):
            set_grads(params, step, none)
            if between is not None:
                between(opt, params, step)
            opt.step()
        for s in scheds:
            s.step()
        assert_same(slow, slow_p, fast, fast_p, f"{config.id} step {step}")
    return slow, slow_p, fast, fast_p


def compile_failures(caught) -> list[str]:
    return [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]


def delta(before: dict, key: str) -> int:
    return O.fast_path_stats()[key] - before[key]


# --- every optimizer, flat and compiled ---


@pytest.mark.parametrize("compiled", [False, True], ids=["flat", "compiled"])
@pytest.mark.parametrize("config", [BY_ID[name].param() for name in MUST_COMPILE])
def test_core_optimizers_take_the_fast_path(config, compiled, fast_everywhere):
    O.set_fast_path(compile=compiled)
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(config)
    assert not compile_failures(caught)
    flat, done = delta(before, "eager_flat_steps"), delta(before, "compiled_steps")
    if compiled:
        assert (flat, done) == (2, 2 * 9)  # the first step creates the state, uncompiled
    else:
        assert (flat, done) == (20, 0)


@pytest.mark.parametrize("config", [c.param() for c in CONFIGS])
def test_every_configuration_same_on_flat_path(config, fast_everywhere):
    O.set_fast_path(compile=False)
    before = O.fast_path_stats()
    run_both(config)
    assert delta(before, "eager_flat_steps") == 20


@pytest.mark.parametrize(
    "config", [c.param(pytest.mark.slow) for c in CONFIGS if c.id not in MUST_COMPILE]
)
def test_every_configuration_same_compiled(config, fast_everywhere):
    """Every course optimizer compiles (no fallback) and equals the readable path."""
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(config)
    assert not compile_failures(caught)
    assert delta(before, "compiled_steps") == 2 * 9


def test_radam_switch_is_a_guard_not_a_recompile_per_step(fast_everywhere):
    """RAdam's Python ``if`` on ρ_t (from the integer step) becomes a guard: one graph before the
    switch at step 6, one after, then none however many steps follow."""
    config = BY_ID["RAdam"]
    run_both(config, steps=3)  # warm: whatever compiles for the early steps
    before = O.fast_path_stats()
    run_both(config, steps=20)
    assert delta(before, "compiles") <= 2  # the rectified branch, for each group's beta2


# --- when the readable path takes over ---


def test_none_grad_falls_back_to_readable_path(fast_everywhere):
    O.set_fast_path(compile=False)
    before = O.fast_path_stats()
    run_both(BY_ID["Adam"], steps=8, none_steps=(3,))
    # group 0 always flat (8); group 1 flat before the None grad (3) and at it (its other
    # parameter alone), readable from then on (its parameters' step counters differ).
    assert delta(before, "eager_flat_steps") == 8 + 4


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
    assert delta(before, "compiled_steps") == 5
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
    assert O.fast_path_stats() == before, "a 2-parameter problem touched the fast path"


def test_compile_failure_warns_and_falls_back(fast_everywhere, monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(compiler, "backend_for", lambda internals: broken_backend)
    before = O.fast_path_stats()
    with pytest.warns(RuntimeWarning, match="torch.compile failed for Adam"):
        run_both(BY_ID["Adam"], steps=6)
    assert delta(before, "layouts") == 2  # one per group, never rebuilt per step
    assert delta(before, "eager_flat_steps") == 2  # the first step, then readable
    assert delta(before, "compiled_steps") == 0


def test_disabled_switch_and_group_opt_out(fast_everywhere):
    before = O.fast_path_stats()
    O.set_fast_path(False)
    run_both(BY_ID["Adam"], steps=3)
    assert O.fast_path_stats() == before
    O.set_fast_path(True, compile=False)
    p = make_params()
    opt = O.Adam([{"params": p[:2], "fast": False}, {"params": p[2:]}])
    for step in range(3):
        set_grads(p, step)
        opt.step()
    assert delta(before, "eager_flat_steps") == 3


class OwnUpdateAdam(O.Adam):
    """A subclass whose update the fast path has never seen: it may not be elementwise."""

    def update(self, group, params, grads, states):
        return super().update(group, params, grads, states)


def test_unknown_subclass_takes_the_readable_path_until_registered(fast_everywhere, monkeypatch):
    params = [p.requires_grad_() for p in make_params()]
    before = O.fast_path_stats()
    opt = OwnUpdateAdam(params, lr=0.01)
    for step in range(3):
        set_grads(params, step)
        opt.step()
    assert O.fast_path_stats() == before
    monkeypatch.setattr(fastpath.traits, "_TRAITS", dict(fastpath.traits._TRAITS))
    fastpath.register(OwnUpdateAdam)
    opt = OwnUpdateAdam(params, lr=0.01)
    for step in range(3):
        set_grads(params, step)
        opt.step()
    assert delta(before, "compiled_steps") == 2
    with pytest.raises(TypeError):
        fastpath.register(torch.optim.Adam)


# --- what a user may do between steps ---


@pytest.mark.parametrize("direction", ["fast_to_readable", "readable_to_fast"])
def test_state_dict_moves_between_paths(direction, fast_everywhere):
    config = BY_ID["AdamW"]
    base = make_params()
    pa = [p.clone().requires_grad_() for p in base]
    src_fast = direction == "fast_to_readable"
    src = make_opt(config, pa, src_fast)
    for step in range(4):
        set_grads(pa, step)
        src.step()
    saved = copy.deepcopy(src.state_dict())
    pb = [p.detach().clone().requires_grad_() for p in pa]
    dst = make_opt(config, pb, not src_fast)
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


def test_load_state_dict_mid_run_rebuilds_the_layout(fast_everywhere):
    config = BY_ID["Adam"]
    base = make_params()
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(config, params, fast)
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


def _clear_all(opt, params, step):
    if step == 4:  # "reset the moments": torch and the readable path start the state afresh
        for p in params:
            opt.state[p].clear()


def _replace_m(opt, params, step):
    if step == 4:
        for p in params:
            opt.state[p]["m"] = torch.zeros_like(p)


def _rewind_step(opt, params, step):
    if step == 4:
        for p in params:
            opt.state[p]["step"] = 1


def _rewrite_in_place(opt, params, step):
    if step == 4:
        for p in params:
            opt.state[p]["v"].mul_(4.0)


def _clear_one(opt, params, step):
    if step == 4:  # one parameter restarts: the group's steps differ from then on
        opt.state[params[0]].clear()


@pytest.mark.parametrize(
    "change", [_clear_all, _replace_m, _rewind_step, _rewrite_in_place, _clear_one],
    ids=["clear", "replace-m", "rewind-step", "rewrite-in-place", "clear-one"],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["flat", "compiled"])
def test_state_changes_between_steps_are_honoured(change, compiled, fast_everywhere):
    """Regression: the fast path compared only the identity of the state dicts and wrote its
    stale buffers back over a cleared, replaced or rewritten state."""
    O.set_fast_path(compile=compiled)
    slow, slow_p, fast, fast_p = run_both(BY_ID["Adam"], steps=8, between=change)
    reference = [p.clone().requires_grad_() for p in make_params()]
    torch_opt = torch.optim.Adam(
        [{"params": reference[:2], **BY_ID["Adam"].groups[0]},
         {"params": reference[2:], **BY_ID["Adam"].groups[1]}]
    )
    names = {"m": "exp_avg", "v": "exp_avg_sq"}
    for step in range(8):
        set_grads(reference, step)
        if step == 4:  # the same change, in torch's names
            for p in reference:
                st = torch_opt.state[p]
                if change is _clear_all or (change is _clear_one and p is reference[0]):
                    st.clear()
                elif change is _replace_m:
                    st[names["m"]] = torch.zeros_like(p)
                elif change is _rewind_step:
                    st["step"] = torch.tensor(1.0)
                elif change is _rewrite_in_place:
                    st[names["v"]].mul_(4.0)
        torch_opt.step()
    for a, b in zip(fast_p, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_switching_the_fast_path_off_and_on_keeps_counting_steps(fast_everywhere):
    """Regression: a few readable steps with ``set_fast_path(False)`` rewound the step counter
    (the layout kept its own) once the fast path was back on."""

    def toggle(opt, params, step):
        O.set_fast_path(enabled=step not in (3, 4, 5))

    slow, slow_p, fast, fast_p = run_both(BY_ID["Adam"], steps=9, between=toggle)
    assert fast.state[fast_p[0]]["step"] == 9


def test_a_view_of_a_parameter_keeps_following_it(fast_everywhere):
    """Regression: re-pointing ``p.data`` into the flat buffer left a view taken before training
    behind. Now the group that has such an alias takes the readable path (one warning), so the
    view follows, as with torch."""
    model = torch.nn.Linear(6, 4).double()
    row = model.weight[0]  # a view
    held = model.state_dict()  # aliases, kept without a copy
    opt = O.Adam(model.parameters(), lr=0.1)
    x = torch.randn(8, 6, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="share memory with other tensors"):
        for _ in range(3):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    assert torch.equal(row, model.weight[0])
    assert torch.equal(held["weight"], model.weight) and torch.equal(held["bias"], model.bias)
    del row, held  # the aliases are gone: the next step lays the group out
    before = O.fast_path_stats()
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    assert delta(before, "layouts") == 1
    view = model.weight[1]  # a view taken after the layout is a view of the flat buffer
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()
    assert torch.equal(view, model.weight[1])


def test_parameters_that_are_views_of_one_tensor_stay_where_they_are(fast_everywhere):
    base = torch.randn(20, dtype=torch.float64)
    a = base[:10].clone().requires_grad_()  # independent
    w = torch.nn.Parameter(base.clone())
    parts = [w]
    opt = O.SGD(parts + [a], lr=0.1)
    held = w.detach()[5:]  # an alias of w
    for _ in range(2):
        w.grad = torch.ones_like(w)
        a.grad = torch.ones_like(a)
        with pytest.warns(RuntimeWarning, match="share memory"):
            opt.step()
        settings.forget_warnings()
    assert torch.equal(held, w.detach()[5:])


def test_complex_parameters_take_the_readable_path_and_match_torch(fast_everywhere):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(40, dtype=torch.complex128, generator=g)
    ours_p = z0.clone().requires_grad_()
    ref_p = z0.clone().requires_grad_()
    opt = O.Adam([ours_p], lr=0.01, weight_decay=0.1)
    ref = torch.optim.Adam([ref_p], lr=0.01, weight_decay=0.1)
    before = O.fast_path_stats()
    for _ in range(5):
        grad = torch.randn(40, dtype=torch.complex128, generator=g)
        ours_p.grad, ref_p.grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    assert O.fast_path_stats() == before
    torch.testing.assert_close(ours_p, ref_p, rtol=1e-12, atol=1e-14)


# --- schedulers and constants ---


def test_scheduler_changes_lr_without_recompiling(fast_everywhere):
    def sched(opt):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))

    run_both(BY_ID["Adam"], steps=3, sched=sched)  # warm: compiled once at most
    before = O.fast_path_stats()
    run_both(BY_ID["Adam"], steps=10, sched=sched)
    assert delta(before, "compiles") == 0, "a new lr or step recompiled"
    assert delta(before, "compiled_steps") == 18


def one_cycle(opt):
    """OneCycleLR with its defaults: it also cycles Adam's beta1 and SGD's momentum."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=40)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RAdam"])
def test_cycled_beta1_becomes_a_tensor_not_recompiles(name, fast_everywhere):
    """OneCycleLR changes beta1 every step: the compiled step takes it as a tensor from its first
    change on (one more graph) instead of recompiling per value."""
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(BY_ID[name], steps=14, sched=one_cycle)
    assert not compile_failures(caught)
    assert delta(before, "compiled_steps") == 2 * 13
    switch = 2 if name == "RAdam" else 0  # per group, the graph after RAdam's switch at rho_t > 5
    assert delta(before, "compiles") <= 4 + switch  # per group: the constant and the tensor one


def test_cycled_momentum_of_sgd_stays_a_constant_then_reads(fast_everywhere):
    """SGD's momentum decides a Python branch (no velocity when it is 0), so it is a constant of
    the graph: OneCycleLR's new values recompile, and after a few the group stops compiling, with
    a warning. The results are the readable path's throughout."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, fast, _ = run_both(BY_ID["SGD-nesterov"], steps=12, sched=one_cycle)
    history = fast._step_engine().engine.history[0]
    assert not history.tensor_keys and not history.ok
    assert history.constant_changes == compiler.MAX_CONSTANT_CHANGES + 1
    assert [w for w in caught if "keeps changing" in str(w.message)]


def test_many_optimizers_with_different_constants_all_compile(fast_everywhere):
    """A sweep in one process: each optimizer's constants make a graph of their own for the one
    shared ``Adam.update``; more than dynamo's default of 8 still compile."""
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(12):
            params = [p.requires_grad_() for p in make_params()]
            opt = O.Adam(params, lr=0.01, eps=1e-8 * (i + 1), weight_decay=0.001 * i)
            for step in range(3):
                set_grads(params, step)
                opt.step()
    assert not compile_failures(caught)
    assert delta(before, "compiled_steps") == 12 * 2


def test_cycled_beta1_in_float32(fast_everywhere):
    """The tensor beta1 (a 0-d float64) mixes into float32 state the way the number did."""
    base = make_params(dtype=torch.float32)
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(BY_ID["Adam"], params, fast)
        sched = one_cycle(opt)
        for step in range(10):
            set_grads(params, step)
            opt.step()
            sched.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


class BranchingSGD(O.SGD):
    """Declared with momentum as tensor-safe but branching on it in Python: not compilable with a
    tensor there."""

    def update(self, group, params, grads, states):
        if group["momentum"] > 0.5:
            return super().update(group, params, grads, states)
        return super().update(group, params, grads, states)


def test_declared_hyperparameter_that_does_not_compile_falls_back_to_a_constant(
    fast_everywhere, monkeypatch
):
    monkeypatch.setattr(fastpath.traits, "_TRAITS", dict(fastpath.traits._TRAITS))
    fastpath.register(BranchingSGD, {"momentum": None})
    config = BY_ID["SGD"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = make_params()
        params = [p.clone().requires_grad_() for p in base]
        opt = BranchingSGD(params, lr=0.01, momentum=0.9)
        sched = one_cycle(opt)
        for step in range(6):
            set_grads(params, step)
            opt.step()
            sched.step()
    history = opt._step_engine().engine.history[0]
    assert "momentum" in history.static_keys and "momentum" not in history.tensor_keys
    assert config.cls is O.SGD


# --- gradients ---


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
    # the parameters are views of one flat buffer
    assert len({p.untyped_storage().data_ptr() for p in model.parameters()}) == 1


@pytest.mark.parametrize("maximize", [False, True])
def test_fast_path_never_writes_p_grad(maximize, fast_everywhere):
    params = [p.requires_grad_() for p in make_params()]
    opt = O.Adam(params, lr=0.01, maximize=maximize)
    before = O.fast_path_stats()
    for step in range(3):
        set_grads(params, step)
        grads = [p.grad for p in params]
        snapshot = [g.clone() for g in grads]
        opt.step()
        for p, g, b in zip(params, grads, snapshot):
            assert p.grad is g, "p.grad was re-pointed"
            assert torch.equal(p.grad, b), "p.grad values changed"
    assert delta(before, "compiled_steps") + delta(before, "eager_flat_steps") == 3


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
    ref_opt = O.Adam(
        [{"params": list(ref.parameters()), "fast": False}], lr=0.01, maximize=maximize
    )
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
    internals = torch_internals.resolve()
    config = torch._inductor.config
    calls, raising = [], []

    def fake_compile_fx(gm, example_inputs):
        calls.append((config.cpp.vec_isa_ok, config.cpp_cache_precompile_headers))
        if raising:
            raise raising.pop(0)
        return gm.forward

    backend = compiler.backend_for(
        internals.__class__(**{**internals.__dict__, "compile_fx": fake_compile_fx})
    )
    gm = torch.fx.symbolic_trace(lambda x: x + 1)
    restart = internals.restart_analysis()
    raising[:] = [restart]
    with pytest.raises(type(restart)):
        backend(gm, [torch.zeros(2)])
    assert len(calls) == 1
    calls.clear()
    raising[:] = [RuntimeError("cannot build for this instruction set")]
    assert backend(gm, [torch.zeros(2)])(torch.zeros(2)).tolist() == [1.0, 1.0]
    assert calls == [(True, config.cpp_cache_precompile_headers), (None, False)]


# --- large gradients read where they are: one compiled call per large parameter ---


@pytest.fixture
def read_in_place(fast_everywhere):
    """The fast path with the parameters of 20 elements or more read in place: in each group
    of :func:`make_params` the first parameter (30 and 24 elements), then the rest."""
    O.set_fast_path(direct_min=20)


@pytest.mark.parametrize("config", [c.param() for c in CONFIGS])
def test_large_gradients_read_in_place_same_result(config, read_in_place):
    before = O.fast_path_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_both(config)
    assert not compile_failures(caught)
    if not config.cls.two_pass:
        assert delta(before, "segmented_steps") == 2 * 9
    if config.id in MUST_COMPILE:
        assert delta(before, "compiles") <= 3, "a new length recompiled"


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
    runs = []
    for fast in (False, True):
        params = [p.clone().requires_grad_() for p in base]
        opt = make_opt(BY_ID["Adam"], params, fast, maximize=case == "maximize")
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
        runs.append((opt, params, delta(before, "segmented_steps")))
    (slow, slow_p, _), (fast, fast_p, segmented) = runs
    assert_same(slow, slow_p, fast, fast_p, case)
    assert segmented == {"non_contiguous": 2 * 5, "maximize": 0, "shared": 0}[case]


def test_numbers_computed_from_the_step_are_hoisted_out_of_the_loop(monkeypatch, fast_everywhere):
    """``1 - beta**t`` is computed once per step (through the barrier), not per element: the
    graph the compiler gets routes each such number through ``course_lib::scalar_barrier``."""
    from course_lib.optim.fastpath import hoisting

    seen = []
    real = hoisting.hoist_scalars

    def recording(gm, barrier):
        real(gm, barrier)
        seen.append(gm.graph)

    monkeypatch.setattr(compiler, "hoist_scalars", recording)
    monkeypatch.setattr(compiler, "_BACKENDS", {})  # a fresh backend that uses the recorder
    torch._dynamo.reset()
    run_both(BY_ID["Adam"], steps=3)
    torch._dynamo.reset()
    barrier = torch_internals.resolve().scalar_barrier
    assert seen
    for graph in seen:
        pows = [n for n in graph.nodes if n.target is pow or getattr(n.target, "__name__", "") == "pow"]
        assert pows, "no power of beta in the traced update"
        for node in pows:  # 1 - beta**t, then every elementwise use passes the barrier
            (sub,) = node.users
            consumers = [u for u in sub.users if u.target is not torch.scalar_tensor]
            assert not consumers, f"{sub} feeds {consumers} directly"
            (tensor,) = sub.users
            assert [u.target for u in tensor.users] == [barrier]


def test_a_small_problem_does_not_import_the_compiler():
    """The lessons' small problems never pay for resolving the torch internals (≈ 3 s)."""
    import subprocess
    import sys

    code = (
        "import sys, torch, course_lib.optim as O\n"
        "w = torch.zeros(3, requires_grad=True)\n"
        "opt = O.Adam([w], lr=0.1)\n"
        "w.grad = torch.ones(3); opt.step()\n"
        "from course_lib.optim.fastpath import torch_internals\n"
        "print('torch._inductor.compile_fx' in sys.modules, torch_internals._RESOLVED is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr
