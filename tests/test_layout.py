"""The shape of the project: a package without import cycles that carries its own data and does not
need Snakemake, and workflow scripts that find it installed rather than by patching sys.path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tiny_model import PROJECT

SRC = PROJECT / "src"
PACKAGE = SRC / "react"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every react module ``path`` imports, at the top or inside a function alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            # `from react.x import y`: y is a module of react.x, or a name defined in react.x.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "react":
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    return {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_library_has_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_does_not_import_snakemake():
    for name, path in library_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not any(m == "snakemake" or m.startswith("snakemake.") for m in imported), name


def test_workflow_scripts_do_not_patch_sys_path():
    for script in (PROJECT / "workflow/scripts").glob("*.py"):
        assert "sys.path" not in script.read_text(encoding="utf-8"), script


def test_the_catalog_layout():
    for path in ("workflow/Snakefile", "workflow/rules/common.smk", "workflow/envs/core.yaml",
                 "workflow/schemas/config.schema.yaml", "workflow/report/workflow.rst", "config/config.yaml",
                 "config/README.md", ".test/config/config.yaml", ".snakemake-workflow-catalog.yml"):
        assert (PROJECT / path).exists(), path
    # The workflow's schema is the library's, not a copy.
    assert (PROJECT / "workflow/schemas/config.schema.yaml").resolve() == PACKAGE / "config/schema.yaml"


@pytest.mark.slow
def test_the_installed_package_carries_its_schema_sql_prompts_and_templates(tmp_path):
    """Built as a wheel and installed elsewhere: validation, prompts and SQL work outside the checkout."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheel_dir), str(PROJECT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheel_dir.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("react/config/schema.yaml", "react/results/sql/views.sql", "react/prompts/instruction.txt",
                 "react/prompts/react/prompts_naive.json", "react/prompts/react/instruction.txt",
                 "react/training/templates/smollm2_training.jinja"):
        assert data in names, data
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import sys; sys.modules['snakemake'] = None\n"
        "import react, react.results.tables as t\n"
        "from react.config.validate import load_schema, validate_config\n"
        "from react.agent.prompts import read_prompt\n"
        "assert react.__file__.startswith(sys.argv[1]), react.__file__\n"
        "config = validate_config({'data': {'dev': {'source': 'huggingface', 'name': 'hotpot_qa', 'split': 'x'}},\n"
        "    'models': {'m': {'hf_id': 'a/b', 'backend': 'transformers'}}, 'corpus': {'live': {'live': {}}},\n"
        "    'evaluation': {'models': ['m'], 'corpus': 'live'}, 'report': {'published': None}})\n"
        "print(len(read_prompt(config['prompt'])), len(t.sql('views.sql')) > 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["6414", "True"]


def test_a_job_reads_relative_paths_from_the_project_whatever_its_working_directory(tmp_path):
    """Snakemake hands scripts a scriptdir such as workflow/rules/../scripts; the job runs in --directory."""
    code = (
        "from types import SimpleNamespace\n"
        "from react.pipeline.jobs import start\n"
        "from react.paths import resolve_path\n"
        f"start(SimpleNamespace(scriptdir={str(PROJECT / 'workflow/rules/../scripts')!r}, threads=1, log=[], rule='x'))\n"
        "print(resolve_path('resources/hotpotqa/dev_distractor.jsonl.gz'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(PROJECT / "resources/hotpotqa/dev_distractor.jsonl.gz")


def test_results_paths_are_defined_once_in_react_paths():
    """Rules, scripts and library name result files through react.paths' templates, never literally."""
    files = [*(PROJECT / "workflow").rglob("*.smk"), PROJECT / "workflow/Snakefile",
             *(PROJECT / "workflow/scripts").glob("*.py"), *(p for p in PACKAGE.rglob("*.py") if p.name != "paths.py")]
    for path in files:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            assert '"results/' not in code and "'results/" not in code, f"{path}:{line_no}: {line.strip()}"
