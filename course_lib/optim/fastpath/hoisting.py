"""Scalar arithmetic computed once per step, not once per element.

An update computes a few numbers from the step counter — ``1 - beta**t``, NAdam's momentum
schedule, RAdam's rectification — and then uses them on every element. Inductor inlines such
producers into the loop over the flat buffer, so ``beta**t`` would be evaluated for every vector
of 16 floats: ``pow`` in the innermost loop made Adam's compiled step 2-3x slower (measured with
``benchmarks/bench_optim.py``). :func:`hoist_scalars` rewrites the traced graph so that each such
number is computed once, as a 0-d tensor the kernel loads, by passing it through an opaque
identity op (the *barrier*) that the compiler cannot inline. It changes what is computed where,
never what is computed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["hoist_scalars"]

# Ops that take a tensor wherever they take a number positionally (after the first argument).
_ARITHMETIC_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv,
    torch.add, torch.sub, torch.mul, torch.div, torch.where,
}
_ARITHMETIC_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}


def _value(node: torch.fx.Node) -> Any:
    return node.meta.get("example_value")


def _is_scalar_value(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dim() == 0
    return isinstance(value, (torch.SymFloat, torch.SymInt, float, int)) and not isinstance(
        value, bool
    )


def _takes_a_tensor(user: torch.fx.Node, node: torch.fx.Node) -> bool:
    """Does ``user`` take ``node`` only positionally, where a 0-d tensor may stand for it?"""
    if node in user.kwargs.values():
        return False
    if user.op == "call_function" and user.target in _ARITHMETIC_FUNCTIONS:
        return node not in user.args[:1] or user.target is torch.where
    if user.op == "call_method" and user.target in _ARITHMETIC_METHODS:
        return node not in user.args[:1]  # not as the tensor the method is called on
    return False


def hoist_scalars(gm: torch.fx.GraphModule, barrier: Callable) -> None:
    """Route every number (a 0-d tensor or a symbolic float) that depends only on numbers, and
    that feeds an elementwise computation, through ``barrier``."""
    graph = gm.graph
    scalar: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if not _is_scalar_value(_value(node)):
            continue
        if node.op == "placeholder" or (
            node.op in ("call_function", "call_method")
            and all(i in scalar for i in node.all_input_nodes)
        ):
            scalar.add(node)
    changed = False
    for node in list(graph.nodes):
        if node not in scalar or node.op == "placeholder":
            continue
        users = [u for u in node.users if u not in scalar and u.op != "output"]
        value = _value(node)
        if isinstance(value, Tensor):
            source = node
        elif isinstance(value, torch.SymFloat):
            users = [u for u in users if _takes_a_tensor(u, node)]
            if not users:
                continue
            with graph.inserting_after(node):
                source = graph.call_function(
                    torch.scalar_tensor, (node,), {"dtype": torch.float64}
                )
            source.meta["example_value"] = torch.empty((), dtype=torch.float64)
        else:
            continue
        if not users:
            continue
        with graph.inserting_after(source):
            hoisted = graph.call_function(barrier, (source,))
        hoisted.meta = dict(source.meta)
        for user in users:
            if source is node:  # a 0-d tensor: it may stand anywhere
                user.replace_input_with(node, hoisted)
            else:  # a number turned tensor: only where the op takes a tensor
                user.args = tuple(hoisted if a is node else a for a in user.args)
        changed = True
    if changed:
        graph.lint()
        gm.recompile()
