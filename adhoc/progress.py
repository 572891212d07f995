"""Progress on stderr for the commands that work for more than a few seconds before they print anything
(``adhoc crossplay``, ``evaluate``, ``populations check``, ``sweep``, the reproduce scripts).

A command's progress is a tqdm bar over its stages (loading the base model, the members, playing the pairs,
...), shown only on a terminal: ``shown(quiet)`` is False with ``--quiet`` and when stderr is not a TTY (a
log file, a pipe, a test's captured stream), so the bar never mixes into what a program reads. It writes to
stderr only and is cleared when it ends (``leave=False``): stdout, the files written and every result are
the same with or without it. The training commands keep their own bars (``adhoc.engine``).
"""

from __future__ import annotations

import sys


def shown(quiet: bool = False) -> bool:
    """Whether a command shows its progress: not ``--quiet``, and stderr is a terminal."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


class Stages:
    """A bar over a command's named stages: ``stage(name)`` ends the stage before it and shows ``name``;
    ``done()`` (or leaving the ``with``) ends the last. Disabled, it does nothing."""

    def __init__(self, desc: str, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="step", file=sys.stderr,
                        bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {postfix} [{elapsed}]")
        self.started = 0

    def stage(self, name: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started += 1
        self.bar.set_postfix_str(name)

    def done(self) -> None:
        if self.started and self.bar.n < self.started:
            self.bar.update(1)
        self.bar.close()

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.done()
        else:
            self.bar.close()
