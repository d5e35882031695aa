"""The mock is a package of its own, `cdf_workflows_mock`: it states the facts of CDF itself, imports
nothing of the suite, and its modules import each other without a circle.

The facts are written twice on purpose (the suite reads its limits from the spec, the mock states what
CDF documents), so that a mistake in one is not silently shared by the other; the first tests here make
sure the two never drift apart.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import cdf_workflows_mock
from cdf_workflows_mock import MockConfig, cdf, loopback
from cdf_workflows_mock.app import create_faithful_app
from retry_contract import app_target, contract, domain

PACKAGE = "cdf_workflows_mock"
SUITE = "retry_contract"
PACKAGE_DIR = Path(cdf_workflows_mock.__file__).parent

# --- the same facts, stated twice --------------------------------------------------------------

# Every fact both packages state; a name missing from either side fails the comparison.
SHARED_FACTS = (
    "ExecutionStatus",
    "TaskStatus",
    "OnFailure",
    "TaskType",
    "RETRYABLE_EXECUTION_STATUSES",
    "RETRYABLE_TASK_STATUSES",
    "COMPLETED_TASK_STATUSES",
    "PENDING_TASK_STATUSES",
    "UPDATABLE_TASK_STATUSES",
    "CONTAINER_TASK_TYPES",
    "TASK_RETRIES_MAX",
    "TASK_RETRIES_DEFAULT",
    "TASK_TIMEOUT_DEFAULT_SECONDS",
    "WORKFLOW_READ",
    "WORKFLOW_WRITE",
    "SESSIONS_CREATE",
)


def _plain(value: object) -> object:
    """A value as plain data, so that two packages' own enums and dataclasses compare by content."""
    if isinstance(value, type) and issubclass(value, enum.Enum):
        return {member.name: member.value for member in value}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(str(_plain(item)) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


@pytest.mark.parametrize("name", SHARED_FACTS)
def test_the_mock_states_the_same_statuses_and_capabilities_as_the_suite(name: str) -> None:
    assert _plain(getattr(cdf, name)) == _plain(getattr(domain, name))


def test_the_mock_states_the_same_limits_as_the_spec() -> None:
    assert dataclasses.asdict(cdf.METADATA_LIMITS) == dataclasses.asdict(contract.METADATA_LIMITS)
    assert cdf.IDENTIFIER_MAX_LENGTH == contract.IDENTIFIER_MAX_LENGTH


def test_every_status_set_of_the_suite_is_compared() -> None:
    # A set added to the suite's vocabulary must be stated by the mock too, or knowingly left out here.
    suite_sets = {name for name, value in vars(domain).items() if isinstance(value, frozenset)}
    assert suite_sets <= set(SHARED_FACTS)


# --- nothing of the suite -------------------------------------------------------------------------


def _modules() -> dict[str, Path]:
    """Every module of the mock package, by dotted name, packages included (as their `__init__.py`)."""
    modules = {PACKAGE: PACKAGE_DIR / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix=f"{PACKAGE}."):
        path = PACKAGE_DIR.joinpath(*info.name.split(".")[1:])
        modules[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return modules


def _imported_names(module: str, path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) of every import statement in the file, at any depth (function-level imports too);
    relative imports resolved; name is None for `import x.y`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from . import x` in a package's __init__ is relative to the package itself.
                parts = module.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


def _import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Which of the package's modules each one imports, by the target it names: `from a.b import c` is
    an edge to `a.b.c` when that is a module, else to `a.b`. A parent package that Python runs on the
    way is not an edge: no code of it is used, and counting it would make every `__init__` a circle."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        for target, name in _imported_names(module, path):
            submodule = f"{target}.{name}" if name is not None else None
            edge = submodule if submodule in modules else target
            if edge in modules and edge != module:
                graph[module].add(edge)
    return graph


def test_no_module_of_the_mock_imports_the_suite() -> None:
    modules = _modules()
    assert len(modules) >= 20 and f"{PACKAGE}.defects.catalogue" in modules
    offending = sorted(
        f"{module} imports {target}"
        for module, path in modules.items()
        for target, name in _imported_names(module, path)
        for full in (target, f"{target}.{name}")
        if full == SUITE or full.startswith(f"{SUITE}.")
    )
    assert not offending


def test_importing_every_module_of_the_mock_loads_nothing_of_the_suite() -> None:
    # In a fresh interpreter: this one has the suite loaded already.
    program = (
        "import importlib, json, sys\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, json.dumps(sorted(_modules()))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert f"{PACKAGE}.defects.catalogue" in loaded
    assert [name for name in loaded if name == SUITE or name.startswith(f"{SUITE}.")] == []


# --- no circles -----------------------------------------------------------------------------------


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    # The finder itself, on two modules that import each other, one of them inside a function.
    (tmp_path / "one.py").write_text("from pkg.two import helper\n")
    (tmp_path / "two.py").write_text("def helper() -> None:\n    from pkg import one\n")
    modules = {"pkg.one": tmp_path / "one.py", "pkg.two": tmp_path / "two.py"}
    assert _cycles(_import_graph(modules)) == [["pkg.one", "pkg.two"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_modules_of_the_mock_import_each_other_without_a_circle() -> None:
    assert _cycles(_import_graph(_modules())) == []


def _reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for successor in graph[node] - seen:
            seen.add(successor)
            todo.append(successor)
    return seen


@pytest.mark.parametrize("module", ["app", "config", "store", "engine", "validation", "loopback"])
def test_the_faithful_model_knows_nothing_of_the_defects(module: str) -> None:
    graph = _import_graph(_modules())
    reached = _reachable(graph, f"{PACKAGE}.{module}")
    assert not {name for name in reached if name.startswith(f"{PACKAGE}.defects")}


def test_the_faithful_app_refuses_a_configuration_with_defects() -> None:
    config = MockConfig(defects=frozenset({"success-202"}))
    with pytest.raises(ValueError, match=r"cdf_workflows_mock\.create_app"):
        create_faithful_app(config)
    assert cdf_workflows_mock.create_app(config).state.config is config


# --- the suite reuses the mock's loopback server ------------------------------------------------


def test_the_suite_serves_apps_with_the_mock_packages_loopback_server() -> None:
    assert issubclass(app_target.InProcessServer, loopback.InProcessServer)
    assert app_target.bind is loopback.bind
    assert app_target.MAX_REQUEST_HEAD_BYTES == loopback.MAX_REQUEST_HEAD_BYTES
    assert not hasattr(app_target, "_SignallingServer")


def test_the_catalogue_is_the_families_declarations_in_order() -> None:
    declared: list[Any] = []
    for family in ("auth", "state", "wire", "responses", "values", "semantics"):
        declared.extend(importlib.import_module(f"{PACKAGE}.defects.{family}").DEFECTS)
    assert tuple(declared) == cdf_workflows_mock.DEFECTS
    assert not hasattr(importlib.import_module(f"{PACKAGE}.config"), "install_defect_check")


def test_a_defect_declared_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdf_workflows_mock.defects import auth, catalogue

    monkeypatch.setattr(auth, "DEFECTS", auth.DEFECTS + auth.DEFECTS[:1])
    with pytest.raises(RuntimeError, match=f"declared twice: {auth.DEFECTS[0].name}"):
        catalogue._gather()
