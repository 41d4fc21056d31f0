"""MkDocs hook: the pages that are generated at build time, so that they cannot drift from the code.

* `reference/cli.md`: the help of `twograd` and of every command, from the argparse parsers
  `models.cli.build_parser()` builds (the same table `twograd --help` lists).
* `reference/api/*.md`: one page per package listing every public name (models' `_PUBLIC`, the
  `__all__` of engine, nn and viz) for mkdocstrings, and one page per module of `nn` (each
  piece's derivation lives in its module's docstrings).
* `notebooks/phase*.md`: the notebooks of docs/notebooks, executed (or taken from the run the
  notebook test kept, see notebooks.py), with their outputs.
* `benchmarks.md`: benchmarks/README.md, so the numbers have one home.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

HOOKS = Path(__file__).resolve().parent
ROOT = HOOKS.parents[1]
if str(ROOT) not in sys.path:  # the checkout's packages, even when another copy is installed
    sys.path.insert(0, str(ROOT))
if str(HOOKS) not in sys.path:
    sys.path.insert(0, str(HOOKS))

import notebooks  # noqa: E402  (docs/_hooks/notebooks.py)

log = logging.getLogger("mkdocs.hooks.twograd")

#: the width argparse wraps help at, fixed so the page does not depend on the terminal
HELP_COLUMNS = "88"


# ------------------------------------------------------------------------------ CLI reference
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """name -> parser of the parser's subcommands (none for a command without them)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_block(heading: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    """A heading, then the parser's --help; then the same for each of its subcommands, one level down."""
    parts = [f"{'#' * level} {heading}", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, child in _subcommands(parser).items():
        parts += _help_block(f"{heading} {name}", child, min(level + 1, 4))
    return parts


def cli_page() -> str:
    """The help text of `twograd` and of each command of `models.cli.COMMANDS` (and their own
    subcommands, as `twograd learn start`), in table order."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        from models.cli import COMMANDS, build_parser

        parser = build_parser()
        commands = _subcommands(parser)
        parts = [
            "# Command line reference",
            "",
            "Generated at build time from the argparse parsers of `models.cli` (what `twograd --help` and "
            "`twograd COMMAND --help` print), so it cannot drift from the command. Exit codes and `--json` "
            "are described in [Exit status and --json](../guide/exit-status.md).",
            "",
            "## twograd",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for command in COMMANDS:
            parts += _help_block(f"twograd {command.name}", commands[command.name], 2)
        return "\n".join(parts)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


# ------------------------------------------------------------------------------ API reference
PACKAGE_INTROS = {
    "models": "The public API of `models`: the commands as functions, their reports, the zoo's models and configs, "
    "the trainer. `from models import NAME` loads each name from the module shown.",
    "nn": "Layers, optimizers and the three-way checks. Each layer's math is on its module's page under "
    "[nn modules](nn/index.md).",
    "engine": "The scalar autodiff engine: `Value`, its functions (which work on floats and Values alike), "
    "`explain`, and the gradient checker.",
    "viz": "Drawing computation graphs (`draw`) and the plots (`viz.plots`, matplotlib, imported when it draws).",
}


def public_names(package: str) -> list[tuple[str, str]]:
    """(name, the dotted path mkdocstrings documents it at) for every public name of `package`."""
    mod = importlib.import_module(package)
    if package == "models":  # names load lazily: document each where it is defined
        return [(name, f"{where}.{name}") for name, where in mod._PUBLIC.items()]
    return [(name, f"{package}.{name}") for name in mod.__all__]


def api_package_page(package: str) -> str:
    parts = [f"# `{package}`", "", PACKAGE_INTROS[package], ""]
    for _name, path in public_names(package):
        parts += [f"::: {path}", "    options:", "      heading_level: 2", ""]
    if package == "viz":
        parts += ["::: viz.plots", "    options:", "      heading_level: 2", ""]
    return "\n".join(parts)


def nn_modules() -> list[str]:
    """The modules of nn, one file per piece (private helpers left out)."""
    return sorted(p.stem for p in (ROOT / "nn").glob("*.py") if not p.stem.startswith("_"))


def nn_module_page(module: str) -> str:
    return "\n".join(
        [f"::: nn.{module}", "    options:", "      show_root_heading: true", "      heading_level: 1", ""]
    )


def nn_index_page() -> str:
    lines = [
        "# `nn` modules",
        "",
        "One file per piece: its shape legend, the loops form, the manual forward/backward pair with the "
        "derivation in its docstring, the class that owns the parameters, and its registry entry.",
        "",
    ]
    for module in nn_modules():
        first = (importlib.import_module(f"nn.{module}").__doc__ or "").strip().splitlines()
        lines.append(f"- [`nn.{module}`]({module}.md): {first[0] if first else ''}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ benchmarks
def benchmarks_page() -> str:
    """benchmarks/README.md as it is (it links to nothing outside itself)."""
    return (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ hooks
def _add(files: Files, config: Any, path: str, content: str | bytes) -> None:
    old = files.get_file_from_path(path)
    if old is not None:
        files.remove(old)
    files.append(File.generated(config, path, content=content))


def on_files(files: Files, config: Any) -> Files:
    _add(files, config, "reference/cli.md", cli_page())
    for package in ("models", "nn", "engine", "viz"):
        _add(files, config, f"reference/api/{package}.md", api_package_page(package))
    _add(files, config, "reference/api/nn/index.md", nn_index_page())
    for module in nn_modules():
        _add(files, config, f"reference/api/nn/{module}.md", nn_module_page(module))
    _add(files, config, "benchmarks.md", benchmarks_page())
    for path in notebooks.notebook_paths():
        nb = notebooks.executed(path, log=log.info)
        page, images = notebooks.to_markdown(nb, path.stem)
        source = f"[`docs/notebooks/{path.name}`]({path.name})"
        note = (
            f'!!! note "This page is a notebook"\n    Executed when the site was built. Its source, '
            f"{source}, is a jupytext percent-format file: open it in Jupyter with jupytext installed, "
            f"or run it as a script.\n\n"
        )
        first, _, rest = page.partition("\n")  # the note goes under the title
        _add(files, config, f"notebooks/{path.stem}.md", f"{first}\n\n{note}{rest}")
        for name, data in images.items():
            _add(files, config, f"notebooks/{name}", data)
    return files


#: a link from a page to the repository's benchmarks/README.md (right on GitHub) is the site's benchmarks page
_BENCHMARKS_LINK = re.compile(r"\]\((?:\.\./)+benchmarks/README\.md(#[^)]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    depth = page.file.src_uri.count("/")
    return _BENCHMARKS_LINK.sub(lambda m: f"]({'../' * depth}benchmarks.md{m.group(1) or ''})", markdown)


def on_config(config: Any) -> Any:
    """List every nn module page under "nn modules" in the navigation (the modules are found, not listed by hand)."""

    def expand(items: list) -> None:
        for item in items:
            if isinstance(item, dict):
                for title, value in item.items():
                    if value == "reference/api/nn/index.md":
                        item[title] = [value] + [{f"nn.{m}": f"reference/api/nn/{m}.md"} for m in nn_modules()]
                    elif isinstance(value, list):
                        expand(value)

    expand(config["nav"])
    return config
