"""`twograd learn`: the study plan as exercises, graded three ways, with a diagnosis that names the mistake.

The rooms of this package, one concern per file:

    exercise.py   the Exercise type: one entry = one exercise (functions to write, math by import path,
                  hints, the terms of its derivation, the mistakes it can recognise)
    catalog.py    the one table of exercises, in the plan's order
    cases.py      the edge cases that catch the classic bugs (logits of +-1000, T = 1, float32, ...)
    special.py    the graders of the exercises that are not one nn piece (gradcheck, value, adam, ...)
    template.py   the learner's starting file and its pytest file (`learn start`)
    workspace.py  the learner's folder: files, progress.json, loading a file that passed its check
    sandbox.py    running the learner's file in a child process with a time and a memory limit
    runner.py     the program that child runs (numpy and the standard library only; never `models`)
    grade.py      forward cases and the three-way check of the backward, against twograd's own code
    diagnose.py   the fixed list of mistake kinds, and how a wrong result is told apart
    report.py     a check's result as a reviewer's text and as JSON
    draw.py       a wrong gradient painted on twograd's graph with viz.explore (`learn check --html`)
    selfcheck.py  the three-way check of a learner's functions in their own process (the `three_way` fixture)
    plugin.py     the pytest plugin (`three_way`, `learn_check` fixtures); imports almost nothing

Nothing here is imported by `import models`; the command is `twograd learn` (models/cli/learn.py).
"""
