"""Project rules checked on the source itself: what importing each package pulls in, no ML
framework or pickle in the package, type hints on public functions, and an assert in every test.

These read files and start fresh interpreters; they import nothing heavy themselves.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "nn", "models", "viz")
TESTS = ROOT / "tests"

#: an ML framework in the package would make the "from first principles" claim false; torch is
#: only ever a referee inside tests/.
FRAMEWORKS = ("torch", "jax", "tensorflow", "autograd")
FRAMEWORK_IMPORT_RE = re.compile(r"^\s*(import|from)\s+(torch|jax|tensorflow|autograd)\b", re.M)
#: ways to (un)pickle: loading a pickle runs arbitrary code, so checkpoints are plain npz arrays.
PICKLE_MODULES = ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve")
PICKLE_IMPORT_RE = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve)\b", re.M)
PICKLE_CALL_RE = re.compile(r"\bpickle\.\w+")
ALLOW_PICKLE_TRUE_RE = re.compile(r"allow_pickle\s*=\s*True")

#: generous: each import takes about a second; the bound only catches a hang.
IMPORT_TIMEOUT_SECONDS = 120

# (code run in a fresh interpreter, so no other test's imports count; top-level modules it must
# not load). The engine is pure Python; nn/models/viz use numpy, load matplotlib only when asked
# to plot, and never load torch.
IMPORT_CASES = [
    ("import engine", ("numpy", "matplotlib") + FRAMEWORKS),
    ("import nn", ("matplotlib",) + FRAMEWORKS),
    ("import models", ("matplotlib",) + FRAMEWORKS),
    ("import models.cli", ("matplotlib",) + FRAMEWORKS),
    ("import viz", ("matplotlib",) + FRAMEWORKS),
    ("import nn.registry; nn.registry.all_pieces()", ("matplotlib",) + FRAMEWORKS),
]


def package_files() -> list[Path]:
    """Every .py file of the four packages, sorted."""
    files = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    assert files, f"no package files found under {ROOT}"
    return files


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ------------------------------------------------------------------ what an import pulls in
@pytest.mark.parametrize("code,banned", IMPORT_CASES, ids=[c for c, _ in IMPORT_CASES])
def test_import_loads_no_heavy_or_framework_module(code: str, banned: tuple[str, ...]) -> None:
    probe = (
        f"{code}\n"
        "import sys\n"
        f"banned = {banned!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(banned)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, f"`{code}` failed:\n{result.stderr}"
    loaded = result.stdout.strip().splitlines()[-1]
    assert loaded == "[]", f"`{code}` loaded {loaded}"


# ------------------------------------------------------------------ no ML framework, no pickle
def test_package_files_are_found() -> None:
    names = {_relative(p) for p in package_files()}
    for must in ("engine/value.py", "nn/registry.py", "models/cli/__init__.py", "viz/draw.py"):
        assert must in names


def _imported_tops(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the file, from its AST."""
    found = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_no_framework_import_in_the_package() -> None:
    offenders = []
    for path in package_files():
        text = path.read_text(encoding="utf-8")
        for m in FRAMEWORK_IMPORT_RE.finditer(text):
            offenders.append(f"{_relative(path)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0).strip()}")
        # The AST also sees `import os, torch` and imports inside functions written on one line.
        offenders += [
            f"{_relative(path)}:{line}: imports {top}" for line, top in _imported_tops(path) if top in FRAMEWORKS
        ]
    assert not offenders, "ML framework imported in the package:\n" + "\n".join(sorted(set(offenders)))


def test_no_pickle_in_the_package() -> None:
    """No pickle module, no pickle.* call, no allow_pickle=True. The word may appear in prose
    (nn/checkpoint.py explains why it refuses object arrays), so prose is not scanned."""
    offenders = []
    for path in package_files():
        text = path.read_text(encoding="utf-8")
        for regex in (PICKLE_IMPORT_RE, PICKLE_CALL_RE, ALLOW_PICKLE_TRUE_RE):
            for m in regex.finditer(text):
                offenders.append(f"{_relative(path)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0).strip()}")
        offenders += [
            f"{_relative(path)}:{line}: imports {top}" for line, top in _imported_tops(path) if top in PICKLE_MODULES
        ]
    assert not offenders, "pickle in the package:\n" + "\n".join(sorted(set(offenders)))


def test_every_np_load_refuses_pickles() -> None:
    """np.load / numpy.load always with allow_pickle=False spelled out, so a reader sees it."""
    offenders = []
    for path in package_files():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.load", "numpy.load"):
                flags = [k for k in node.keywords if k.arg == "allow_pickle"]
                if not (flags and isinstance(flags[0].value, ast.Constant) and flags[0].value.value is False):
                    offenders.append(f"{_relative(path)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "np.load without allow_pickle=False:\n" + "\n".join(offenders)


# ------------------------------------------------------------------ type hints
def _missing_hints(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    """Names of fn's unannotated parameters (self/cls of a method excepted), plus 'return'."""
    a = fn.args
    params = a.posonlyargs + a.args
    if is_method and params and params[0].arg in ("self", "cls"):
        params = params[1:]
    missing = [p.arg for p in params + a.kwonlyargs if p.annotation is None]
    for stars, star_arg in (("*", a.vararg), ("**", a.kwarg)):
        if star_arg is not None and star_arg.annotation is None:
            missing.append(stars + star_arg.arg)
    if fn.returns is None:
        missing.append("return")
    return missing


def test_public_functions_have_type_hints() -> None:
    """Every public module-level function, and every public method of a public module-level
    class, in engine/ nn/ models/ viz/ annotates its parameters and its return."""
    offenders = []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for path in package_files():
        for node in _parse(path).body:
            if isinstance(node, functions) and not node.name.startswith("_"):
                missing = _missing_hints(node, is_method=False)
                if missing:
                    offenders.append(f"{_relative(path)}:{node.lineno} {node.name}: {', '.join(missing)}")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, functions) and not item.name.startswith("_"):
                        missing = _missing_hints(item, is_method=True)
                        if missing:
                            where = f"{_relative(path)}:{item.lineno} {node.name}.{item.name}"
                            offenders.append(f"{where}: {', '.join(missing)}")
    assert not offenders, "public functions without type hints:\n" + "\n".join(offenders)


# ------------------------------------------------------------------ every test asserts
ASSERTING_CALL_PREFIXES = ("pytest.raises", "pytest.warns", "pytest.fail", "np.testing.", "numpy.testing.")


def _asserts(node: ast.AST, helpers: dict[str, ast.AST], seen: frozenset[str] = frozenset()) -> bool:
    """True if node holds an assert, a pytest.raises/warns, an np.testing call, a call to a
    function named assert_* / _assert_*, or a call to a same-module helper that does."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Call):
            name = ast.unparse(sub.func)
            if name.startswith(ASSERTING_CALL_PREFIXES) or name.split(".")[-1].lstrip("_").startswith("assert"):
                return True
            if isinstance(sub.func, ast.Name) and sub.func.id in helpers and sub.func.id not in seen:
                if _asserts(helpers[sub.func.id], helpers, seen | {sub.func.id}):
                    return True
    return False


def test_every_test_asserts_something() -> None:
    """STYLE.md: no test without an assert. Checks every test_* function and Test* method in tests/."""
    offenders = []
    files = sorted(TESTS.glob("test_*.py"))
    assert Path(__file__).resolve() in files
    for path in files:
        tree = _parse(path)
        helpers = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        tests = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")):
            tests += [m for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for fn in tests:
            if fn.name.startswith("test") and not _asserts(fn, helpers):
                offenders.append(f"{_relative(path)}:{fn.lineno} {fn.name}")
    assert not offenders, "tests that assert nothing:\n" + "\n".join(offenders)
