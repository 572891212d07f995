"""Kill a training run at random moments with SIGKILL, resume it each time, and compare the result with an
uninterrupted run of the same config and seed: iterations, members' self-play returns, adapter hashes.

    .venv/bin/python scripts/kill_resume.py                                   # lever FCP, 5 kills
    .venv/bin/python scripts/kill_resume.py configs/lever-otherplay.yaml --kills 5 --seed 3
    .venv/bin/python scripts/kill_resume.py configs/lever-learner.yaml train.epochs=4

Every run is the real CLI in a subprocess (``adhoc train-population`` or ``adhoc train-learner``, chosen by the
config). The kill moments are drawn uniformly over the uninterrupted run's wall time (start-up included), so some
land before the first checkpoint, some in the middle of writing one. A learner config needs its partners to
exist (``partners=...``). Prints one line per segment and a verdict; exits 1 if the results differ.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def command(config: Path, out: Path, overrides: list[str]) -> list[str]:
    learner = "learner" in (yaml.safe_load(config.read_text()) or {})
    cmd = [sys.executable, "-m", "adhoc.cli", "train-learner" if learner else "train-population", str(config),
           "--out", str(out), "--quiet", *overrides]
    return cmd if learner else cmd + ["--crossplay-episodes", "0"]


def fingerprint(pop: Path) -> dict:
    manifest = yaml.safe_load((pop / "population.yaml").read_text())
    hashes = {m["name"]: hashlib.sha256((pop / "members" / m["name"] / "adapter_model.safetensors").read_bytes())
              .hexdigest()[:16] for m in manifest["members"]}
    return {"iterations": manifest["training"]["iterations"],
            "returns": {m["name"]: m.get("self_play_return") or m.get("return_mean") for m in manifest["members"]},
            "adapters": hashes}


def done(staging: Path, total: int) -> float:
    """The fraction of the run its last checkpoint holds (0 without one)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(staging / "checkpoint.safetensors"), framework="pt") as f:
            return json.loads(f.metadata()["adhoc_checkpoint"])["iteration"] / total
    except Exception:  # none yet (or being replaced this instant)
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs/lever-fcp.yaml"))
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--checkpoint-every", type=int, default=5)
    args = parser.parse_args()
    import random

    rnd = random.Random(args.seed)
    overrides = [*args.overrides, f"train.checkpoint_every={args.checkpoint_every}"]
    work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command(Path(args.config), work / "whole", overrides), stdout=subprocess.DEVNULL)
        while not (work / ".whole.partial").exists() and proc.poll() is None:
            time.sleep(0.05)
        startup = time.perf_counter() - t0
        if proc.wait() != 0:
            return 1
        duration = time.perf_counter() - t0
        total = fingerprint(work / "whole")["iterations"]
        print(f"uninterrupted run: {duration:.1f} s ({startup:.1f} s start-up, {total} iterations)")
        out, resume, segments, t_total = work / "killed", [], 0, 0.0
        kills = 0
        while True:
            proc = subprocess.Popen(command(Path(args.config), out, overrides + resume), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            started = time.perf_counter()
            # a moment within what this segment still has to do: start-up plus the iterations not checkpointed
            remaining = startup + (duration - startup) * (1 - done(work / ".killed.partial", total))
            delay = rnd.uniform(startup / 2, 0.95 * remaining) if kills < args.kills else None
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            t_total += time.perf_counter() - started
            segments += 1
            if proc.returncode == 0 or (out / "population.yaml").exists():  # killed after its commit: complete
                print(f"segment {segments}: finished" + (" (killed after publishing)" if proc.returncode else ""))
                break
            if proc.returncode != -signal.SIGKILL:
                print(f"segment {segments}: failed with exit code {proc.returncode}: {proc.stderr.read().strip()}")
                return 1
            kills += 1
            ckpt = work / ".killed.partial" / "checkpoint.safetensors"
            progress = f"checkpoint at iteration {round(done(ckpt.parent, total) * total)}" if ckpt.exists() \
                else "no checkpoint yet"
            print(f"segment {segments}: SIGKILL after {delay:.1f} s ({progress})")
            resume = ["--resume"]
        a, b = fingerprint(work / "whole"), fingerprint(out)
        same = a == b
        print(f"{kills} kills, {segments} segments, {t_total:.1f} s in all (uninterrupted {duration:.1f} s)")
        print(f"iterations {a['iterations']} vs {b['iterations']}; members {len(a['adapters'])}; "
              f"returns equal: {a['returns'] == b['returns']}; adapter hashes equal: {a['adapters'] == b['adapters']}")
        print("RESULT: identical to the uninterrupted run" if same else "RESULT: DIFFERENT")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
