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
        rows.append(
            {"number": i, "name": ex.name, "phase": ex.phase, "title": ex.title, **st.to_dict(), "text": st.text()}
        )
    counts = {s: sum(r["status"] == s for r in rows) for s in workspace.STATUSES}
    return {"workspace": str(directory), "exercises": rows, "counts": counts}


def format_plan(p: dict[str, Any]) -> str:
    counts = p["counts"]
    lines = [
        f"twograd learn: {len(p['exercises'])} exercises, workspace {p['workspace']}/ "
        f"({counts['passed']} passed, {counts['failing']} failing, {counts['started']} started)"
    ]
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
        lines += [
            "",
            f"next: twograd learn {verb} {todo['name']}{in_dir}   (what it asks: twograd learn show {todo['name']})",
        ]
    return "\n".join(lines)


def exercise_info(ex: Exercise) -> dict[str, Any]:
    """What `learn show` prints: the forward's math and what to derive (names and shapes), never the derivation."""
    from models.learn.template import RETURN_CONTRACT, backward_contract

    def contract(f: Any) -> str:
        return f.contract or (backward_contract(ex, f) if f.name.endswith("_backward") else "")

    has_pair = any(f.name.endswith("_backward") for f in ex.functions)
    return {
        "name": ex.name,
        "phase": ex.phase,
        "title": ex.title,
        "builds_on": list(ex.builds_on),
        "derive": ex.derive,
        "functions": [
            {"name": f.name, "signature": f.text_signature(), "optional": f.optional, "contract": contract(f)}
            for f in ex.functions
        ],
        "returns": RETURN_CONTRACT if has_pair else "",
        "math": ex.math_text(),
        "hints": len(ex.hints),
        "formula_hint": ex.formula_level,
    }


def format_exercise(info: dict[str, Any]) -> str:
    lines = [
        f"{info['name']} ({info['phase']}): {info['title']}",
        f"builds on: {', '.join(info['builds_on']) or 'nothing before it'}",
        f"derive: {info['derive']}",
        "",
        f"write in {info['name']}.py, with exactly these names and signatures:",
    ]
    for f in info["functions"]:
        lines.append(f"    {f['signature']}" + ("    (stretch: optional)" if f["optional"] else ""))
        if f["contract"]:
            lines.append(textwrap.indent(f["contract"], "        "))
    if info["returns"]:
        lines += ["", textwrap.indent(info["returns"], "")]
    heading = (
        f"the math of the forward (twograd's own docstrings; the derivation comes with "
        f"`twograd learn hint {info['name']} --level {info['formula_hint']}`):"
        if info["returns"]
        else "the math (twograd's own docstrings):"
    )
    lines += ["", heading, "", textwrap.indent(info["math"], "    ")]
    return "\n".join(lines)


#: a check stopped by these did not get to the math: the report points at the error, not at the hints
STOPPED = ("error", "timeout")


def hint_info(ex: Exercise, directory: str | Path, level: int) -> dict[str, Any]:
    """`learn hint NAME --level N`: the N-th hint; at level 1 first what the workspace's last (failing) check points at;
    at the formula's level the backward's derivation (twograd's docstrings). InputError past the last level."""
    from engine import InputError
    from models.learn.diagnose import LOOK_AT

    k = len(ex.hints)
    if level > k:
        raise InputError(f"{ex.name} has only {k} hint{'s' if k != 1 else ''} (--level 1 to {k})")
    last = workspace.last_diagnosis(directory, ex.name) if Path(directory).is_dir() else None
    about = ""
    if last and level == 1:
        what = last.get("input", "").split(": ", 1)[-1] or ex.name
        if last.get("kind") in STOPPED:
            about = (
                f"your last check stopped at {'an error' if last['kind'] == 'error' else 'the time limit'}, before "
                f"any number was compared: {last.get('message', '')}; fix that first (the hints are about the math)"
            )
        elif last.get("kind") in LOOK_AT:
            about = LOOK_AT[last["kind"]].format(what=what)
    return {
        "exercise": ex.name,
        "level": level,
        "levels": k,
        "hint": ex.hints[level - 1],
        "last_check": last if about else None,
        "about_last_check": about,
        "derivation": ex.derivation_text() if level == ex.formula_level else "",
    }


def format_hint(h: dict[str, Any]) -> str:
    name, level, k = h["exercise"], h["level"], h["levels"]
    lines = []
    if h["about_last_check"]:
        last = h["last_check"]
        lines.append(
            textwrap.fill(
                f"about your last check ([{last['kind']}] {last['input']}): {h['about_last_check']}.",
                width=110,
                subsequent_indent="    ",
            )
        )
        lines.append(
            textwrap.fill(
                f"hint {level} of {k} for {name}, in general: {h['hint']}", width=110, subsequent_indent="    "
            )
        )
    else:
        lines.append(f"hint {level} of {k} for {name}: {h['hint']}")
    if h["derivation"]:
        lines += ["", "the derivation (twograd's own docstrings):", "", textwrap.indent(h["derivation"], "    ")]
    if level < k:
        lines += [""] * bool(h["derivation"]) + [f"(the next one: twograd learn hint {name} --level {level + 1})"]
    return "\n".join(lines)


def format_check(result: CheckResult) -> str:
    """A reviewer's text: the verdict, then one paragraph per finding (the first one is the headline)."""
    name = result.exercise
    if result.passed:
        return f"{name}: passed ({result.cases} cases: the forward against twograd's, then the backward three ways)"
    n = len(result.findings)
    lines = [f"{name}: FAILED, {n} problem{'s' if n != 1 else ''} ({result.cases} cases)"]
    for f in result.findings[:6]:
        lines.append(
            textwrap.fill(f"[{f.kind}] {f.message}", width=110, initial_indent="  ", subsequent_indent="      ")
        )
    if n > 6:
        lines.append(f"  ... and {n - 6} more (--json lists them all)")
    if any(f.case.startswith("random") for f in result.findings):
        lines.append(f"to repeat the random cases: twograd learn check {name} --random-seed {result.random_seed}")
    if result.findings[0].kind in STOPPED:  # no number was compared: the math hints do not help yet
        lines.append("fix that first (your line is in the message), then check again")
    else:
        lines.append(f"a hint: twograd learn hint {name}")
    return "\n".join(lines)
