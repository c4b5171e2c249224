"""The examples in ``course_lib``'s docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.import_graph import MODULES

WITH_EXAMPLES = sorted(m for m, path in MODULES.items() if ">>> " in path.read_text())


def test_some_docstrings_have_examples():
    assert len(WITH_EXAMPLES) >= 3, WITH_EXAMPLES


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples(module):
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0 and result.attempted > 0
