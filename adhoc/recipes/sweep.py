"""``adhoc sweep``: every (config, seed) trained as an ordinary population folder under one sweep folder, then one
table (self-play, cross-play, gap, conventions, train time per experiment, mean ± sd over seeds).

- Trials: ``DIR/<config stem>-s<seed>`` is trained by ``train_population`` from the config with the sweep's
  ``key=value`` overrides and ``population.seed=<seed>``; then its cross-play report goes to
  ``DIR/<trial>/crossplay`` (as ``adhoc train-population`` writes it), from which the table row is read.
- Execution settings (``backend``, ``ray.*``) belong to the sweep: every trial config records ``backend: local``
  and the default ``ray`` section (it trains in one process, wherever that is), so a trial is the same run,
  and resumes from the same checkpoint, whichever backend runs the sweep.
- ``backend: local``: one trial after another in this process. ``backend: ray``: each trial is one Ray task
  with ``ray.cpus_per_worker`` CPUs and ``ray.gpus_per_worker`` of a GPU (0.25: four trials share one), at most
  ``ray.workers`` at once. The folder must be on a file system every Ray node sees (one machine, or NFS).
- Failures: a trial that raises (or whose worker dies) is retried ``retries`` times; each retry resumes the
  trial from its last checkpoint (``train.checkpoint_every``). A config error is not retried.
- Re-runs: a trial whose population folder is complete is skipped (its config must be the one asked for), and
  one left half-done (driver killed, machine lost) resumes from its checkpoint: re-running the same command
  after a crash completes only the missing trials.
- Data safety: ``DIR`` is created by the sweep, or is a sweep folder written earlier (``sweep.json``); the sweep
  writes only its trial folders (each through ``PopulationWriter``/``OutputFolder``), ``sweep.json`` and
  ``sweep.md``, and holds a lock on ``DIR/.sweep.lock`` while it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from adhoc.errors import Interrupted, UserError

SWEEP_FILE = "sweep.json"
TABLE_FILE = "sweep.md"
FORMAT = "adhoc-sweep/1"
LOCK = ".sweep.lock"


@dataclasses.dataclass
class Trial:
    name: str  # <config stem>-s<seed>: the trial's folder under the sweep folder
    experiment: str  # the config's stem: rows of one experiment are averaged over seeds
    seed: int
    config: Any  # RunConfig (backend local, default ray section)
    source: str  # the config file, as given


def plan(configs: list[str], seeds: list[int], overrides: list[str]) -> tuple[list[Trial], str, Any]:
    """Every (config, seed) as a Trial, validated before anything runs; (trials, backend, ray section)."""
    from adhoc.config import RayConfig, RunConfig, load_config
    from adhoc.paths import check_name

    if not configs:
        raise UserError("sweep needs at least one config file")
    if not seeds:
        raise UserError("sweep needs at least one seed (--seeds 0 1 2)")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds names a seed twice ({' '.join(map(str, seeds))})")
    trials, execution = [], None
    for path in configs:
        experiment = check_name(Path(path).stem, "config file name")
        for seed in seeds:
            config = load_config(path, [*overrides, f"population.seed={seed}"])
            if not isinstance(config, RunConfig):
                raise UserError(f"{path} is a learner config; a sweep trains populations")
            setting = (config.backend, config.ray)
            if execution is None:
                execution = setting
            elif setting != execution:
                raise UserError(f"{path} asks for backend={config.backend} {config.ray}, but {configs[0]} for "
                                f"backend={execution[0]} {execution[1]}: set backend and ray.* on the command line")
            trial_config = dataclasses.replace(config, backend="local", ray=RayConfig())
            trials.append(Trial(f"{experiment}-s{seed}", experiment, seed, trial_config, str(path)))
    names = [t.name for t in trials]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"two config files share the name of trial {twice[0]}; rename one of them")
    return trials, execution[0], execution[1]


# ---------------------------------------------------------------------------- one trial (runs anywhere)
def run_trial(name: str, config: Any, out: str, episodes: int, progress: bool = False) -> dict:
    """Train (or find complete, or resume) the population of one trial and its cross-play report; its table row.
    A UserError comes back as {"error": ...} (it would fail the same way again); anything else raises.
    ``progress``: the training and cross-play progress on stderr (a local sweep on a terminal)."""
    from adhoc.population import MANIFEST, Population
    from adhoc.recipes.crossplay import run_crossplay
    from adhoc.recipes.train_population import train_population

    folder = Path(out) / name
    t0 = time.perf_counter()
    try:
        if (folder / MANIFEST).is_file():
            saved = folder / "config.yaml"
            if not saved.is_file() or saved.read_text() != config.to_yaml():
                raise UserError(f"{folder} holds a population trained with another config than this sweep asks "
                                f"for; choose another --out (or move that folder away)")
            pop, trained = Population.load(folder), False
        elif folder.exists() or folder.is_symlink():
            raise UserError(f"{folder} exists and is not a population; move it away or choose another --out")
        else:
            pop, trained = train_population(config, out=folder, resume=True, progress=progress), True
        report = folder / "crossplay" / "crossplay.json"
        xp = json.loads(report.read_text()) if report.is_file() else None
        if xp is None or xp.get("episodes") != episodes:
            result, _ = run_crossplay([str(folder)], episodes=episodes, out=str(folder / "crossplay"),
                                      seed=config.population.seed, overwrite=True, progress=progress)
            xp = result.to_json()
    except UserError as exc:
        return {"trial": name, "error": str(exc)}
    row = measure(name.rpartition("-s")[0], config, pop, xp)
    return {"trial": name, "row": row, "trained": trained, "seconds": round(time.perf_counter() - t0, 2),
            "host": os.uname().nodename, "pid": os.getpid()}


def measure(experiment: str, config: Any, pop: Any, xp: dict) -> dict:
    """The table row of one population from its cross-play report (``CrossPlayResult.to_json()``). Of a zero-sum
    game self-play, cross-play and conventions do not apply (None, shown as n/a)."""
    if xp.get("payoff") == "zero_sum":
        return {"experiment": experiment, "game": config.game.name, "method": config.method.name,
                "seed": config.population.seed, "members": len(pop.members), "sp": None, "xp": None, "gap": None,
                "conventions": None, "train_s": pop.manifest["wall_time_s"], "population": str(pop.path)}
    # a convention is discovered by a member that plays it greedily AND coordinates with itself on it
    plays = {name: v for (name, v), sp in zip(xp["member_conventions"].items(), xp["self_play"]) if sp >= 0.5}
    row = {"experiment": experiment, "game": config.game.name, "method": config.method.name,
           "seed": config.population.seed, "members": len(pop.members), "sp": xp["sp_mean"], "xp": xp["xp_mean"],
           "gap": xp["gap"], "conventions": len({v["convention"] for v in plays.values()}),
           "train_s": pop.manifest["wall_time_s"], "population": str(pop.path)}
    if config.game.name == "lever":
        unique = int(config.game.unique_lever)
        row["on_unique_lever"] = sum(v["convention"] == unique and v["probability"] >= 0.9
                                     for v in xp["member_conventions"].values())
    return row


def _ms(values: list[float], digits: int = 3) -> str:
    if any(v is None for v in values):
        return "n/a"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def conventions(rs: list[dict]) -> str:
    """The conventions column of one experiment's rows."""
    if any(r["conventions"] is None for r in rs):
        return "n/a"
    return (f"{_ms([r['conventions'] for r in rs], 1)} / {rs[0]['members']} "
            f"(per seed: {', '.join(str(r['conventions']) for r in rs)})")


def table(rows: list[dict]) -> str:
    """The reproduction table (docs/results.md): one line per experiment, mean ± sd over its seeds."""
    lines = ["| game | method | seeds | self-play | cross-play | gap | conventions discovered | on unique lever | train time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        rs = [r for r in rows if r["experiment"] == experiment]
        n = rs[0]["members"]
        lever = f"{_ms([r['on_unique_lever'] for r in rs], 1)} / {n}" if "on_unique_lever" in rs[0] else "–"
        lines.append(f"| {rs[0]['game']} | {rs[0]['method']} | {len(rs)} | {_ms([r['sp'] for r in rs])} | "
                     f"{_ms([r['xp'] for r in rs])} | {_ms([r['gap'] for r in rs])} | "
                     f"{conventions(rs)} | {lever} | "
                     f"{_ms([r['train_s'] for r in rs], 1)} |")
    return "\n".join(lines)


def _same_config(out: Path, trial: Trial) -> bool:
    """The trial's folder holds a complete population trained with exactly the trial's config."""
    saved = out / trial.name / "config.yaml"
    return (out / trial.name / "population.yaml").is_file() and saved.is_file() and \
        saved.read_text() == trial.config.to_yaml()


# ---------------------------------------------------------------------------- the sweep folder
class SweepFolder:
    """``DIR``: created here, or a sweep folder written before (``sweep.json``); locked while the sweep runs."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).expanduser()
        self.state = self.check(self.out)
        if self.state is None:
            self.out.mkdir(parents=True)
            self.state = {"format": FORMAT, "trials": {}}
            self.save()
        self._created_lock = not (self.out / LOCK).exists()  # removed again by close: nothing is left behind
        self._fd = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._created_lock = False
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f"another adhoc sweep is running in {self.out}; wait for it or choose another "
                                f"--out") from None
            raise

    @staticmethod
    def check(out: Path) -> dict | None:
        """The record of the sweep folder ``out``; None if ``out`` is a new folder the sweep may make; else a
        UserError (a symbolic link, a folder that is not a sweep's, a protected folder, an unwritable place)."""
        from adhoc.paths import check_out

        if out.is_symlink():
            raise UserError(f"--out {out} is a symbolic link; choose a real folder")
        if not out.exists():
            check_out(out, "sweep")
            return None
        marker = out / SWEEP_FILE
        if not out.is_dir() or not marker.is_file() or marker.is_symlink():
            raise UserError(f"{out} exists and is not a sweep folder (no {SWEEP_FILE}); choose a new --out, "
                            f"or the folder of an earlier sweep to continue it")
        from adhoc.readers import parse_json, read_text

        state = parse_json(read_text(marker, str(marker)), str(marker))
        if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("trials"), dict):
            raise UserError(f"{marker} is not a sweep record of this adhoc (format {FORMAT})")
        for name, record in state["trials"].items():
            if not isinstance(record, dict) or not isinstance(record.get("status", ""), str) or \
                    not isinstance(record.get("row", {}), dict):
                raise UserError(f"{marker}: trial {name[:100]!r} must be a mapping of config, seed, status (and row) "
                                f"(got {type(record).__name__} {str(record)[:40]}); this is not a sweep record "
                                f"adhoc wrote")
        return state

    def save(self) -> None:
        from adhoc.paths import atomic_write

        atomic_write(self.out / SWEEP_FILE, json.dumps(self.state, indent=1))

    def close(self) -> None:
        if self._created_lock:  # still held: no other sweep can have it
            (self.out / LOCK).unlink(missing_ok=True)
        os.close(self._fd)


# ---------------------------------------------------------------------------- running the trials
TrialFn = Callable[[str, Any, str, int], dict]


class SweepInterrupted(Interrupted):
    """A sweep stopped by SIGTERM / Ctrl-C during a trial, which kept its checkpoint."""

    def __init__(self, out: Path, trial: str, exc: Interrupted) -> None:
        Exception.__init__(self, f"sweep stopped during trial {trial} ({exc.args[0].split(';')[0]}); run the same "
                                 f"adhoc sweep command (--out {out}) to continue it")
        self.exit_code = exc.exit_code


def _run_local(trials: list[Trial], out: Path, episodes: int, retries: int, trial_fn: TrialFn,
               done: Callable[[Trial, dict], None], bar: Any = None) -> None:
    """One trial after another; ``bar``: the sweep's progress bar (then each trial shows its own progress)."""
    for trial in trials:
        if bar is not None:
            bar.set_postfix_str(trial.name)
        for attempt in range(retries + 1):
            try:
                result = trial_fn(trial.name, trial.config, str(out), episodes,
                                  **({"progress": True} if bar is not None and not bar.disable else {}))
                break
            except Interrupted as exc:  # SIGTERM / Ctrl-C: the trial saved its checkpoint; the sweep stops
                raise SweepInterrupted(out, trial.name, exc) from None
            except Exception as exc:  # noqa: BLE001 (a crash of one trial: retried, then recorded)
                result = {"trial": trial.name, "failed": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=-3)}
        done(trial, result | {"attempts": attempt + 1})


def _run_ray(ray: Any, trials: list[Trial], out: Path, episodes: int, retries: int, trial_fn: TrialFn,
             done: Callable[[Trial, dict], None], ray_config: Any) -> None:
    from adhoc.distributed.cluster import worker_options

    remote = ray.remote(trial_fn).options(**worker_options(ray_config, retries), retry_exceptions=True)
    queue, pending = list(trials), {}
    while queue or pending:
        while queue and len(pending) < ray_config.workers:
            trial = queue.pop(0)
            pending[remote.remote(trial.name, trial.config, str(out.resolve()), episodes)] = trial
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            trial = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # failed after its retries (an exception, or a dead worker)
                cause = getattr(exc, "cause", None) or exc
                first = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
                result = {"trial": trial.name, "failed": f"{type(cause).__name__}: {first}"}
            done(trial, result)


def _peek(out: Path) -> dict:
    """The trial records of the sweep folder ``out`` as they are now (none if it is not one)."""
    try:
        return json.loads((out / SWEEP_FILE).read_text())["trials"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _pending(out: Path, trials: list[Trial], records: dict) -> list[Trial]:
    """The trials not yet complete: a complete one is recorded so and has its population, of its config."""
    return [t for t in trials if not (records.get(t.name, {}).get("status") == "complete" and _same_config(out, t))]


def run_sweep(configs: list[str], seeds: list[int], overrides: list[str] = (), out: str | Path | None = None,
              episodes: int = 64, retries: int = 2, trial_fn: TrialFn = run_trial,
              echo: Callable[[str], None] = print, progress: bool = False) -> tuple[list[dict], str, Path]:
    """Run (or continue) a sweep; (rows of the complete trials, the table, the sweep folder). Failed trials are
    recorded in ``sweep.json`` and reported with a UserError after the table is written. With backend ray, the
    cluster is joined (or started) before the sweep folder is made, and only if some trial is left to run.
    ``progress``: a bar of the trials done on stderr (and, locally, each trial's training and cross-play)."""
    from tqdm import tqdm
    from adhoc.paths import unique_default

    trials, backend, ray_config = plan(list(configs), list(seeds), list(overrides))
    if episodes < 2:
        raise UserError(f"--episodes must be >= 2 (got {episodes})")
    if retries < 0:
        raise UserError(f"--retries must be >= 0 (got {retries})")
    out = Path(out).expanduser() if out is not None else unique_default("sweep")
    with contextlib.ExitStack() as stack:
        ray = None
        if backend == "ray":
            from adhoc.distributed.cluster import cluster, require_ray

            require_ray()
            SweepFolder.check(out)  # a refused --out is said before Ray starts
            if _pending(out, trials, _peek(out)):
                ray = stack.enter_context(cluster(ray_config))
        folder = SweepFolder(out)
        stack.callback(folder.close)
        records = folder.state["trials"]
        for trial in trials:
            records.setdefault(trial.name, {"config": trial.source, "seed": trial.seed, "status": "pending"})
            records[trial.name]["overrides"] = list(overrides)
        folder.save()
        todo = _pending(folder.out, trials, records)
        echo(f"sweep {folder.out}: {len(trials)} trials, {len(trials) - len(todo)} complete, {len(todo)} to run "
             f"(backend {backend}{f', up to {ray_config.workers} at once' if backend == 'ray' else ''})")

        bar = stack.enter_context(tqdm(total=len(todo), desc="sweep", unit="trial", disable=not progress,
                                       leave=False, file=sys.stderr))

        def say(line: str) -> None:  # a line of stdout, the bar cleared around it
            with tqdm.external_write_mode(file=sys.stderr):
                echo(line)

        def done(trial: Trial, result: dict) -> None:
            bar.update(1)
            record = records[trial.name]
            record.pop("error", None)
            if "row" in result:
                record.update(status="complete", row=result["row"], seconds=result["seconds"], host=result["host"])
                say(f"{trial.name}: SP {result['row']['sp']:.3f} XP {result['row']['xp']:.3f} "
                    f"({'trained' if result['trained'] else 'found complete'} in {result['seconds']:.1f} s)")
            else:
                record.update(status="failed", error=result.get("error") or result.get("failed"))
                say(f"{trial.name}: FAILED: {record['error']}")
            folder.save()

        if ray is not None:
            _run_ray(ray, todo, folder.out, episodes, retries, trial_fn, done, ray_config)
        else:
            _run_local(todo, folder.out, episodes, retries, trial_fn, done, bar)
        bar.close()  # before the table
        rows = [records[t.name]["row"] for t in trials if records[t.name].get("status") == "complete"]
        md = table(rows) if rows else "(no trial complete)"
        from adhoc.paths import atomic_write

        atomic_write(folder.out / TABLE_FILE, md + "\n")
        echo("\n" + md)
        failed = [t.name for t in trials if records[t.name].get("status") != "complete"]
        if failed:
            raise UserError(f"{len(failed)} of {len(trials)} trials failed ({', '.join(failed[:4])}"
                            f"{', ...' if len(failed) > 4 else ''}: see {folder.out / SWEEP_FILE}); "
                            f"run the same command again to retry them")
        return rows, md, folder.out
