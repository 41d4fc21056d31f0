"""A tiny transformer learns to reverse, shown: the `twograd tour` stage of the GPT tasks.

It trains the `reverse` task's recipe (a 2-block GPT of width 32 on questions of 5 symbols),
reports the held-out exact-sequence accuracy, answers a prompt by greedy decoding, and draws
the loss curves and the attention of each block on a held-out question.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.training.sampling import sample_run
from models.training.tasks import train

TOUR_PROMPT = "3 1 4 1 5"
#: what the stage must reach on the 500 held-out questions (the issue's bar).
EXACT_TARGET = 0.99


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Train reverse into out_dir/reverse (a new run each tour), then ask it to reverse a prompt."""
    folder = Path(out_dir) / "reverse"
    report = train("reverse", out=folder, overwrite=True, echo=echo)
    m, o = report.metrics, report.outcome
    echo(
        f"after {o.state.step} steps ({o.seconds:.1f} s): held-out loss {m['val_loss']:.4f} nats per token, "
        f"exact-sequence accuracy {100 * m['test_exact_accuracy']:.1f}% on 500 held-out questions"
    )
    answer = sample_run(folder, prompt=TOUR_PROMPT).samples[0]
    echo(f"reverse {TOUR_PROMPT!r} -> {answer!r} (greedy decoding, token by token)")
    for what, path in report.files.items():
        if what != "checkpoint":
            echo(f"wrote {path}")
    return m["test_exact_accuracy"] >= EXACT_TARGET and answer == " ".join(reversed(TOUR_PROMPT.split()))
