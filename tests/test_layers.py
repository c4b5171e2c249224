"""``course_lib``'s layers only point down, and no module imports itself round a circle.

The layers, from the bottom (``course_lib/__init__.py`` describes them): a module may import from
its own layer and from the layers below, never from a layer above. Inside ``optim`` the layers are
finer: blocks, then the argument checks and the state translation, then the base class, the
optimizers, the schedules, and the fast path plug-in on top (the base never imports it).
"""

from __future__ import annotations

import pytest

from tests.import_graph import MODULES, cycle_from, imports_of, is_in

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # the package itself: every import of a submodule runs it, and it imports nothing eagerly
    ("package", ("course_lib", "course_lib.utils")),
    ("optim.blocks", ("course_lib.optim.blocks",)),
    ("optim.checks", ("course_lib.optim.validation", "course_lib.optim.interop")),
    ("optim.base", ("course_lib.optim.base",)),
    ("optim.optimizers", tuple(
        f"course_lib.optim.{m}" for m in ("classic", "adam", "frontier", "online")
    )),
    ("optim.schedules", ("course_lib.optim.schedules",)),
    ("optim.fastpath", ("course_lib.optim.fastpath",)),
    ("optim", ("course_lib.optim",)),
    ("problems", ("course_lib.data", "course_lib.train", "course_lib.landscapes")),
    ("experiments", ("course_lib.experiments",)),
    ("presentation", ("course_lib.plotting", "course_lib.widgets", "course_lib.listing")),
    ("exercises", ("course_lib.exercises", "course_lib.checks")),
    ("grading", ("course_lib.grading", "course_lib.grade")),
]


def layer_of(module: str) -> int:
    """The index of the layer whose most specific prefix holds ``module``."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if is_in(module, prefix) and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to tests/test_layers.py")
    return best


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    mine = layer_of(module)
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]})" for m in sorted(imports_of(module)) if layer_of(m) > mine
    ]
    assert not upward, f"{module} ({LAYERS[mine][0]}) imports from above: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_circle(module):
    assert cycle_from(module) is None


def test_the_old_shapes_would_fail():
    """The checks would have caught what the restructure removed."""
    assert layer_of("course_lib.optim.base") < layer_of("course_lib.optim.fastpath")  # the back edge
    graph = {"a": {"b"}, "b": {"a"}}
    assert cycle_from("a", lambda m: graph.get(m, set())) == ["a", "b", "a"]


def test_the_fast_path_is_a_plug_in():
    for module in MODULES:
        if is_in(module, "course_lib.optim") and not is_in(module, "course_lib.optim.fastpath"):
            if module != "course_lib.optim":
                assert not [m for m in imports_of(module) if is_in(m, "course_lib.optim.fastpath")]
