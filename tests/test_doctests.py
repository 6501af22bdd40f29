"""Every docstring example in the package is executed and must hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import relayminer

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(relayminer.__path__, "relayminer.")
    if ".proto." not in m.name and m.name != "relayminer.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
