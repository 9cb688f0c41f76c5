"""Keeps BUILD truthful to the tree.

BUILD is Starlark, which parses as Python: the test reads every py_library / py_binary /
py_test call and checks that each .py file of the package, the tests and the benchmarks
is in exactly one target, that every source exists, and that each target's deps cover
what its sources import (project modules by target, PyPI packages by `requirement()`).
"""

import ast
import os
import re
import sys

import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ("tf_cgan_transfer", "tests", "benchmarks")
RULES = ("py_library", "py_binary", "py_test")
# Import name -> PyPI distribution name used in requirement("...").
THIRD_PARTY = {
    "absl": "absl-py",
    "google": "protobuf",
    "matplotlib": "matplotlib",
    "numpy": "numpy",
    "scipy": "scipy",
    "tensorflow": "tensorflow",
    "tensorflow_datasets": "tensorflow-datasets",
    "tensorflow_gan": "tensorflow-gan",
    "tensorflow_hub": "tensorflow-hub",
    "tensorflow_probability": "tensorflow-probability",
    "tensorflow_serving": "tensorflow-serving-api",
    "torch": "torch",
}
PROJECT_PACKAGES = ("tf_cgan_transfer", "tests", "benchmarks")


def parse_build(text):
    """`{name: {"rule", "srcs", "deps", "requirements"}}` from BUILD text."""
    targets = {}
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in RULES):
            continue
        kwargs = {k.arg: k.value for k in node.keywords}
        name = ast.literal_eval(kwargs["name"])
        if name in targets:
            raise ValueError(f"target {name!r} is defined twice")
        srcs = ast.literal_eval(kwargs["srcs"]) if "srcs" in kwargs else []
        deps, requirements = [], []
        for dep in kwargs["deps"].elts if "deps" in kwargs else []:
            if isinstance(dep, ast.Call) and dep.func.id == "requirement":
                requirements.append(ast.literal_eval(dep.args[0]))
            else:
                deps.append(ast.literal_eval(dep))
        targets[name] = dict(rule=node.func.id, srcs=srcs, deps=deps, requirements=requirements)
    return targets


def imports_of(path):
    """Top-level imported names: project modules as paths, others as package names."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module in PROJECT_PACKAGES:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def python_files(root):
    found = []
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            found += [
                os.path.relpath(os.path.join(dirpath, f), root) for f in files if f.endswith(".py")
            ]
    return sorted(found)


def check(build_text, root, requirement_names):
    """Every inconsistency between BUILD and the tree, as readable lines."""
    problems = []
    targets = parse_build(build_text)
    owner = {}
    for name, target in targets.items():
        for src in target["srcs"]:
            if src in owner:
                problems.append(f"{src} is in both :{owner[src]} and :{name}")
            owner[src] = name
            if not os.path.exists(os.path.join(root, src)):
                problems.append(f":{name} lists {src}, which does not exist")
        for dep in target["deps"]:
            if dep.lstrip(":") not in targets:
                problems.append(f":{name} depends on unknown target {dep}")
            elif targets[dep.lstrip(":")]["rule"] != "py_library":
                problems.append(f":{name} depends on {dep}, which is not a py_library")
        for req in target["requirements"]:
            if req not in requirement_names:
                problems.append(f':{name} uses requirement("{req}"), not in requirements*.txt')
    for path in python_files(root):
        if path not in owner:
            problems.append(f"{path} is in no BUILD target: add it to one")
    for src, name in owner.items():
        if not src.endswith(".py") or not os.path.exists(os.path.join(root, src)):
            continue
        target = targets[name]
        for imported in sorted(imports_of(os.path.join(root, src))):
            top = imported.split(".")[0]
            if top in PROJECT_PACKAGES:
                module_path = imported.replace(".", "/") + ".py"
                dep = owner.get(module_path)
                if dep is None and os.path.isdir(os.path.join(root, imported.replace(".", "/"))):
                    continue  # a package import, e.g. `import tests`
                if dep is None:
                    problems.append(f"{src} imports {imported}, which no target provides")
                elif dep != name and f":{dep}" not in target["deps"]:
                    problems.append(f':{name} ({src}) imports {imported}: add ":{dep}" to deps')
            elif top in THIRD_PARTY:
                if THIRD_PARTY[top] not in target["requirements"]:
                    problems.append(
                        f':{name} ({src}) imports {top}: add requirement("{THIRD_PARTY[top]}")'
                    )
            elif top not in sys.stdlib_module_names:
                problems.append(f"{src} imports {top}: unknown package, map it in build_test.py")
    return problems


def requirement_names(root, filename="requirements-test.txt"):
    """Package names in `filename` (what CI installs) and the files it includes (`-r`)."""
    names = set()
    with open(os.path.join(root, filename)) as f:
        for line in f:
            include = re.match(r"^\s*-r\s+(\S+)", line)
            if include:
                names |= requirement_names(root, include.group(1))
            match = re.match(r"^\s*([A-Za-z0-9_.\-]+)", line)
            if match and not line.lstrip().startswith(("#", "-")):
                names.add(match.group(1).lower())
    return names


class BuildFileTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        with open(os.path.join(REPO_ROOT, "BUILD")) as f:
            self.build_text = f.read()
        self.requirements = requirement_names(REPO_ROOT)

    def test_build_matches_the_tree(self):
        problems = check(self.build_text, REPO_ROOT, self.requirements)
        self.assertEqual(problems, [], "BUILD is out of date:\n" + "\n".join(problems))

    def test_every_test_file_is_a_py_test(self):
        targets = parse_build(self.build_text)
        tests = {s for t in targets.values() if t["rule"] == "py_test" for s in t["srcs"]}
        test_files = {p for p in python_files(REPO_ROOT) if p.endswith("_test.py")}
        self.assertEqual(test_files - tests, set())

    def test_detects_a_missing_file_and_a_missing_dep(self):
        # The checker itself must fail on a stale BUILD, or the test above proves nothing.
        root = self.create_tempdir().full_path
        os.makedirs(os.path.join(root, "tf_cgan_transfer"))
        for name, text in (
            ("a.py", "import numpy\n"),
            ("b.py", "from tf_cgan_transfer import a\n"),
            ("c.py", "import os\n"),
        ):
            with open(os.path.join(root, "tf_cgan_transfer", name), "w") as f:
                f.write(text)
        stale = (
            'py_library(name = "a", srcs = ["tf_cgan_transfer/a.py"])\n'
            'py_library(name = "b", srcs = ["tf_cgan_transfer/b.py"], deps = [":zz", ":t"])\n'
            'py_test(name = "t", srcs = [])\n'
        )
        problems = check(stale, root, {"numpy"})
        self.assertIn("tf_cgan_transfer/c.py is in no BUILD target: add it to one", problems)
        self.assertIn(":b depends on unknown target :zz", problems)
        self.assertIn(
            ':b (tf_cgan_transfer/b.py) imports tf_cgan_transfer.a: add ":a" to deps', problems
        )
        self.assertIn(
            ':a (tf_cgan_transfer/a.py) imports numpy: add requirement("numpy")', problems
        )

    def test_requirement_names_follow_includes(self):
        root = self.create_tempdir().full_path
        for name, text in (
            ("requirements-test.txt", "# comment\n-r runtime.txt\npytest>=7\n"),
            ("runtime.txt", "-r plots.txt\nNumPy<2\n"),
            ("plots.txt", "matplotlib==3.8.4\n"),
        ):
            with open(os.path.join(root, name), "w") as f:
                f.write(text)
        self.assertEqual(requirement_names(root), {"pytest", "numpy", "matplotlib"})


class CiEntryPointTest(tf.test.TestCase):
    def test_ci_runs_exactly_the_readme_commands(self):
        with open(os.path.join(REPO_ROOT, "README.md")) as f:
            block = re.search(r"```\n(.*?)```", f.read(), re.S).group(1)
        readme_commands = [line.strip() for line in block.splitlines() if line.strip()]
        self.assertLen(readme_commands, 2, "README opens with: install, then test")
        with open(os.path.join(REPO_ROOT, ".ci", "run")) as f:
            ci_lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        self.assertEqual([l for l in ci_lines if l in readme_commands], readme_commands)
        self.assertIn("set -euo pipefail", ci_lines)


if __name__ == "__main__":
    tf.test.main()
