"""``adhoc crossplay``: compute the cross-play matrix of one or more populations and write the report.

Outputs (in ``--out``, by default ``POP/crossplay/``), written into a staging folder and renamed into place:
``matrix.npy`` (float64 [N, N], row = seat 0), ``crossplay.json`` (members, matrix, sp_mean, xp_mean, gap,
proportional_loss, ci95, row_xp, col_xp, normalised, conventions, member_conventions, cross, …),
``heatmap.png``, ``report.md``, ``report.html`` (self-contained), ``tb/`` (TensorBoard scalars
``crossplay/sp_mean``, ``crossplay/xp_mean``, ``crossplay/gap``, ``crossplay/n_conventions``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from adhoc.crossplay import CrossPlayResult, crossplay
from adhoc.report import heatmap_png, html_report, markdown


def staging_for(out: str | Path) -> Path:
    """A fresh hidden staging folder beside ``out`` (``.<name>.partial``) to write derived outputs into."""
    out = Path(out)
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, out: str | Path) -> Path:
    """Rename a complete staging folder into place; an earlier ``out`` (derived data) is replaced whole."""
    out = Path(out)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old)
    else:
        os.rename(staging, out)
    return out


def write_outputs(result: CrossPlayResult, out: str | Path) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    staging = staging_for(out)
    np.save(staging / "matrix.npy", result.matrix)
    (staging / "crossplay.json").write_text(json.dumps(result.to_json(), indent=1))
    png = heatmap_png(result)
    (staging / "heatmap.png").write_bytes(png)
    (staging / "report.md").write_text(markdown(result))
    (staging / "report.html").write_text(html_report(result, png))
    tb = SummaryWriter(str(staging / "tb"))
    for key in ("sp_mean", "xp_mean", "gap"):
        tb.add_scalar(f"crossplay/{key}", result.metrics[key], 0)
    tb.add_scalar("crossplay/n_conventions", len(result.conventions), 0)
    tb.close()
    return publish(staging, out)


def run_crossplay(populations: list[str], episodes: int = 64, out: str | None = None, seed: int = 0,
                  threshold: float = 0.5) -> tuple[CrossPlayResult, Path]:
    result = crossplay(populations, episodes=episodes, seed=seed, threshold=threshold)
    if out is None:
        out = Path(populations[0]) / "crossplay"
    return result, write_outputs(result, out)
