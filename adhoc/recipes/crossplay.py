"""``adhoc crossplay``: compute the cross-play matrix of one or more populations and write the report.

Outputs (in ``--out``, by default ``runs/crossplay-<POP>-<time>-<id>/``), written into a locked staging folder and
renamed into place (an existing ``--out`` is replaced only with ``overwrite`` and only if it is a cross-play report):
``matrix.npy`` (float64 [N, N], row = seat 0), ``crossplay.json`` (members, matrix, sp_mean, xp_mean, gap,
proportional_loss, ci95, row_xp, col_xp, normalised, conventions, member_conventions, cross, …),
``heatmap.png``, ``report.md``, ``report.html`` (self-contained), ``tb/`` (TensorBoard scalars
``crossplay/sp_mean``, ``crossplay/xp_mean``, ``crossplay/gap``, ``crossplay/n_conventions``).

A game that pays each seat its own reward (``adhoc.crossplay``'s definitions): ``matrix.npy`` is seat 0's payoff
X0 and ``matrix_seat1.npy`` seat 1's X1; ``crossplay.json`` adds ``payoff`` and ``matrix_seat1``. General-sum:
``welfare``, ``score``/``payoff_seat0``/``payoff_seat1``, and SP/XP/gap/conventions on the welfare per seat (the
same scalars). Zero-sum: ``score``/``payoff_seat0``/``payoff_seat1``, ``win``/``draw``/``loss`` per cell,
``win_rate``/``draw_rate``/``loss_rate`` per member, ``ci95.score``; no SP/XP/gap/conventions (null or absent,
listed in ``not_applicable``); its TensorBoard scalar is ``crossplay/best_score`` (the largest score).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from adhoc.crossplay import CrossPlayResult, crossplay
from adhoc.paths import check_out, input_label, unique_default, write_folder
from adhoc.report import heatmap_png, html_report, markdown


def write_outputs(result: CrossPlayResult, out: str | Path, overwrite: bool = False) -> Path:
    png = heatmap_png(result)
    files = {"matrix.npy": _npy(result.matrix), "crossplay.json": json.dumps(result.to_json(), indent=1),
             "heatmap.png": png, "report.md": markdown(result), "report.html": html_report(result, png)}
    if result.matrix_seat1 is not None:
        files["matrix_seat1.npy"] = _npy(result.matrix_seat1)
    scalars = {f"crossplay/{key}": result.metrics[key] for key in ("sp_mean", "xp_mean", "gap") if key in result.metrics}
    if result.conventions is not None:
        scalars["crossplay/n_conventions"] = len(result.conventions)
    if result.payoff == "zero_sum":
        scalars["crossplay/best_score"] = float(np.nanmax(result.metrics["score"])) if len(result.members) > 1 \
            else float("nan")
    return write_folder(out, "crossplay", files, overwrite=overwrite, tb_scalars=scalars)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def run_crossplay(populations: list[str], episodes: int = 64, out: str | None = None, seed: int = 0,
                  threshold: float = 0.5, overwrite: bool = False, play=None,
                  progress: bool = False) -> tuple[CrossPlayResult, Path]:
    """Cross-play of ``populations``, written to ``out`` (default ``runs/crossplay-<first>-<time>-<id>``).
    ``out`` is checked before any episode is played. ``play``: how the pairs are played (``crossplay``'s).
    ``progress``: its stages on stderr (``adhoc.progress``)."""
    from adhoc.progress import Stages

    out = Path(out) if out is not None else unique_default("crossplay", input_label(populations[0]))
    check_out(out, "crossplay", overwrite, inputs=tuple(populations))
    with Stages("crossplay", 7, progress) as stages:
        result = crossplay(populations, episodes=episodes, seed=seed, threshold=threshold, play=play, stages=stages)
        stages.stage("writing the report")
        return result, write_outputs(result, out, overwrite)
