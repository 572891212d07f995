"""``adhoc crossplay``: compute the cross-play matrix of one or more populations and write the report.

Outputs (in ``--out``, by default ``runs/crossplay-<POP>-<time>-<id>/``), written into a locked staging folder and
renamed into place (an existing ``--out`` is replaced only with ``overwrite`` and only if it is a cross-play report):
``matrix.npy`` (float64 [N, N], row = seat 0), ``crossplay.json`` (members, matrix, sp_mean, xp_mean, gap,
proportional_loss, ci95, row_xp, col_xp, normalised, conventions, member_conventions, cross, …),
``heatmap.png``, ``report.md``, ``report.html`` (self-contained), ``tb/`` (TensorBoard scalars
``crossplay/sp_mean``, ``crossplay/xp_mean``, ``crossplay/gap``, ``crossplay/n_conventions``).
"""

from __future__ import annotations

import json
import io
import re
from pathlib import Path

import numpy as np

from adhoc.crossplay import CrossPlayResult, crossplay
from adhoc.paths import OutputFolder, check_out, unique_default
from adhoc.report import heatmap_png, html_report, markdown


def write_folder(out: str | Path, kind: str, files: dict[str, bytes | str], overwrite: bool = False,
                 tb_scalars: dict[str, float] | None = None) -> Path:
    """Write a derived output (a report) of ``kind``: staged under a lock beside ``out``, renamed into place;
    an earlier output of the same kind is replaced only with ``overwrite`` (``adhoc.paths.OutputFolder``)."""
    folder = OutputFolder(out, kind, overwrite=overwrite)
    try:
        for name, data in files.items():
            (folder.staging / name).write_bytes(data.encode() if isinstance(data, str) else data)
        if tb_scalars:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(folder.staging / "tb"))
            for key, value in tb_scalars.items():
                tb.add_scalar(key, value, 0)
            tb.close()
    except BaseException:
        folder.abandon(keep=False)
        raise
    return folder.commit()


def input_label(path: str | Path) -> str:
    """A plain name for a default output folder from an input folder or partner spec."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", Path(str(path).rstrip("/")).name or "out").lstrip(".-")[:40] or "out"


def write_outputs(result: CrossPlayResult, out: str | Path, overwrite: bool = False) -> Path:
    buf = io.BytesIO()
    np.save(buf, result.matrix)
    png = heatmap_png(result)
    files = {"matrix.npy": buf.getvalue(), "crossplay.json": json.dumps(result.to_json(), indent=1),
             "heatmap.png": png, "report.md": markdown(result), "report.html": html_report(result, png)}
    scalars = {f"crossplay/{key}": result.metrics[key] for key in ("sp_mean", "xp_mean", "gap")}
    scalars["crossplay/n_conventions"] = len(result.conventions)
    return write_folder(out, "crossplay", files, overwrite=overwrite, tb_scalars=scalars)


def run_crossplay(populations: list[str], episodes: int = 64, out: str | None = None, seed: int = 0,
                  threshold: float = 0.5, overwrite: bool = False, play=None) -> tuple[CrossPlayResult, Path]:
    """Cross-play of ``populations``, written to ``out`` (default ``runs/crossplay-<first>-<time>-<id>``).
    ``out`` is checked before any episode is played. ``play``: how the pairs are played (``crossplay``'s)."""
    out = Path(out) if out is not None else unique_default("crossplay", input_label(populations[0]))
    check_out(out, "crossplay", overwrite, inputs=tuple(populations))
    result = crossplay(populations, episodes=episodes, seed=seed, threshold=threshold, play=play)
    return result, write_outputs(result, out, overwrite)
