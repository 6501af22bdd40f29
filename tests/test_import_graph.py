"""The simulator is a development tool: only ``chain/sim`` itself, the demo and the CLI may
import it (the chain factory only lazily, inside a function). Walks the AST of every module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "relayminer"
SIM = "relayminer.chain.sim"
ALLOWED = {"relayminer.demo", "relayminer.cli"}
LAZY_ONLY = {"relayminer.chain.factory", "relayminer.inspection.status"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str) -> list[tuple[str, bool]]:
    """Every imported module name, with whether the import sits inside a function."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative import
                    package = module.split(".")[: -child.level] if child.level else []
                    base = ".".join([*package, base]) if base else ".".join(package)
                found.append((base, inside))
                found.extend((f"{base}.{alias.name}", inside) for alias in child.names)
            visit(child, inside)

    visit(tree, False)
    return found


def _is_sim(name: str) -> bool:
    return name == SIM or name.startswith(SIM + ".")


def sim_importers() -> dict[str, list[tuple[str, bool]]]:
    out: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if _is_sim(module):
            continue
        hits = [
            (n, lazy) for n, lazy in _imports(ast.parse(path.read_text()), module) if _is_sim(n)
        ]
        if hits:
            out[module] = hits
    return out


def _allowed(module: str) -> bool:
    """The demo and the CLI, modules or packages."""
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def test_only_the_demo_the_cli_and_the_factory_import_the_simulator() -> None:
    importers = sim_importers()
    offenders = {
        module: hits
        for module, hits in importers.items()
        if not _allowed(module) and not (module in LAZY_ONLY and all(lazy for _name, lazy in hits))
    }
    assert offenders == {}, offenders
    # The check sees real imports (it would catch a regression).
    assert any(m.startswith("relayminer.demo") for m in importers)
    assert all(lazy for _n, lazy in importers["relayminer.chain.factory"])


def test_the_walker_catches_module_level_and_relative_imports() -> None:
    tree = ast.parse(
        "from relayminer.chain.sim.chain import SimulatedChain\n"
        "from .sim import rules\n"
        "def f():\n    import relayminer.chain.sim.state\n"
    )
    found = _imports(tree, "relayminer.chain.factory")
    assert ("relayminer.chain.sim.chain", False) in found
    assert ("relayminer.chain.sim", False) in found
    assert ("relayminer.chain.sim.state", True) in found
