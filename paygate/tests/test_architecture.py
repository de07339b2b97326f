"""The house rules of docs/architecture.md, checked on the source: which package may import which.

Lowest first: core → gateways → payments → vault → callbacks → webhooks → checkout → ops → paygate.
A package imports only those below it (and itself); the sandbox, a stand-in third party, and the process harness
import none of them. Imports inside functions count the same, and no module imports itself
back through others: a lazy import that dodges a cycle is the cycle.

The tooling (`testing`, what tests and benchmarks build on; `bench`, `chaos`, `apicheck`) may import the
apps; none of them imports it.
Tests and benchmarks import neither `conftest` nor a test module: fixtures reach a test through pytest.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["core", "gateways", "payments", "vault", "callbacks", "webhooks", "checkout", "ops", "paygate"]
INDEPENDENT = ["sandbox", "harness"]  # import no project package at all
PROJECT = set(LAYERS) | set(INDEPENDENT)
TEST_HELPERS = "testing"
# Tooling: it starts, checks and measures the product, which never imports it.
TOOLING = {TEST_HELPERS, "bench", "chaos", "apicheck"}


def source_files() -> Iterator[Path]:
    for package in LAYERS + INDEPENDENT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every project module `path` imports, anywhere in it, with the line.

    `from package import name` counts as importing `package.name` when that is a module,
    and as importing `package` otherwise.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [
                f"{module}.{alias.name}" if is_module(f"{module}.{alias.name}") else module for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT | TOOLING:
                yield name, node.lineno


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_packages_import_only_downwards() -> None:
    wrong = []
    for path in source_files():
        source = path.relative_to(ROOT).parts[0]
        for name, line in imported_modules(path):
            target = name.split(".")[0]
            if target == source:
                continue
            allowed = source in LAYERS and target in LAYERS and LAYERS.index(target) < LAYERS.index(source)
            if not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == []


def test_no_module_imports_itself_back() -> None:
    modules = {module_name(path): path for path in source_files()}
    graph = {
        module: {name for name, _ in imported_modules(path) if name in modules and name != module}
        for module, path in modules.items()
    }
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" → ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_product_code_imports_the_tooling() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in source_files()
        for name, line in imported_modules(path)
        if name.split(".")[0] in TOOLING
    ]
    assert wrong == []


def test_no_test_or_benchmark_imports_conftest_or_a_test_module() -> None:
    """What two test modules share lives in `testing`, so that each test module stands on its own."""
    wrong = []
    folders = [folder for folder in sorted(ROOT.iterdir()) if folder.is_dir() and not folder.name.startswith(".")]
    for path in (path for folder in folders for path in sorted(folder.rglob("*.py"))):
        parts = path.relative_to(ROOT).parts
        if not ("tests" in parts or parts[0] in (TEST_HELPERS, "bench")):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if not node.level else [f".{node.module or ''}"]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if last == "conftest" or last.startswith("test_"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert wrong == []
