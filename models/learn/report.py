"""What `twograd learn` prints: the plan with progress, one exercise, a check's result as a reviewer's text."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from models.learn import catalog, workspace
from models.learn.exercise import PHASES, Exercise
from models.learn.grade import CheckResult


def plan(directory: str | Path) -> dict[str, Any]:
    """The plan in order with each exercise's progress in `directory` (JSON-able)."""
    progress = workspace.read_progress(directory) if Path(directory).is_dir() else {}
    rows = []
    for i, ex in enumerate(catalog.EXERCISES, start=1):
        st = workspace.status(directory, ex.name, progress)
        rows.append({"number": i, "name": ex.name, "phase": ex.phase, "title": ex.title, **st.to_dict(), "text": st.text()})
    counts = {s: sum(r["status"] == s for r in rows) for s in workspace.STATUSES}
    return {"workspace": str(directory), "exercises": rows, "counts": counts}


def format_plan(p: dict[str, Any]) -> str:
    counts = p["counts"]
    lines = [f"twograd learn: {len(p['exercises'])} exercises, workspace {p['workspace']}/ "
             f"({counts['passed']} passed, {counts['failing']} failing, {counts['started']} started)"]
    width = max(len(r["name"]) for r in p["exercises"])
    twidth = max(len(r["title"]) for r in p["exercises"])
    for phase in PHASES:
        lines += ["", phase]
        for r in p["exercises"]:
            if r["phase"] == phase:
                lines.append(f"  {r['number']:2d}  {r['name']:<{width}}  {r['title']:<{twidth}}  {r['text']}")
    todo = next((r for r in p["exercises"] if r["status"] != "passed"), None)
    if todo is not None:
        verb = "start" if todo["status"] == "not started" else "check"
        in_dir = f" --dir {p['workspace']}" if p["workspace"] != str(workspace.DEFAULT_DIR) else ""
        lines += ["", f"next: twograd learn {verb} {todo['name']}{in_dir}   (what it asks: twograd learn show {todo['name']})"]
    return "\n".join(lines)


def exercise_info(ex: Exercise) -> dict[str, Any]:
    return {
        "name": ex.name, "phase": ex.phase, "title": ex.title, "builds_on": list(ex.builds_on), "derive": ex.derive,
        "functions": [{"name": f.name, "signature": f.text_signature(), "optional": f.optional, "contract": f.contract}
                      for f in ex.functions],
        "math": ex.math_text(), "hints": len(ex.hints),
    }


def format_exercise(info: dict[str, Any]) -> str:
    lines = [f"{info['name']} ({info['phase']}): {info['title']}",
             f"builds on: {', '.join(info['builds_on']) or 'nothing before it'}",
             f"derive: {info['derive']}", "", f"write in {info['name']}.py, with exactly these names and signatures:"]
    for f in info["functions"]:
        lines.append(f"    {f['signature']}" + ("    (stretch: optional)" if f["optional"] else ""))
        if f["contract"]:
            lines.append(textwrap.indent(f["contract"], "        "))
    lines += ["", "the math (twograd's own docstrings):", "", textwrap.indent(info["math"], "    ")]
    return "\n".join(lines)


def format_check(result: CheckResult) -> str:
    """A reviewer's text: the verdict, then one paragraph per finding (the first one is the headline)."""
    name = result.exercise
    if result.passed:
        return f"{name}: passed ({result.cases} cases: the forward against twograd's, then the backward three ways)"
    n = len(result.findings)
    lines = [f"{name}: FAILED, {n} problem{'s' if n != 1 else ''} ({result.cases} cases)"]
    for f in result.findings[:6]:
        lines.append(textwrap.fill(f"[{f.kind}] {f.message}", width=110, initial_indent="  ", subsequent_indent="      "))
    if n > 6:
        lines.append(f"  ... and {n - 6} more (--json lists them all)")
    if any(f.case.startswith("random") for f in result.findings):
        lines.append(f"to repeat the random cases: twograd learn check {name} --random-seed {result.random_seed}")
    lines.append(f"a hint: twograd learn hint {name}")
    return "\n".join(lines)
