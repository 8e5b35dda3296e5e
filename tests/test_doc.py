"""Every module's docstring examples run (``doctest``), so that the documentation stays true."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import dmaster

MODULES = ["dmaster", *sorted(info.name for info in pkgutil.walk_packages(dmaster.__path__, "dmaster."))]
NEEDS_CUDA: set[str] = set()
"""Modules whose examples need a GPU: skipped without one."""
PENDING: dict[str, str] = {}
"""Modules whose examples do not run yet, with the reason: expected to fail until fixed (strict, so that a
fix is noticed and the entry removed)."""


def marks(name: str) -> list:
    if name in PENDING:
        return [pytest.mark.xfail(reason=PENDING[name], strict=True)]
    if name in NEEDS_CUDA:
        return [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
    return []


@pytest.mark.parametrize("name", [pytest.param(name, marks=marks(name)) for name in MODULES])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with torch.random.fork_rng():  # examples that draw from torch's global generator leave it as it was
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                  verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (output above)"
