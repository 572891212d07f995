"""benchmarks/harness.py, with an injected fake clock: no test here reads or asserts wall time."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402


class FakeClock:
    """A clock that only moves when a fake workload says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def work(self, costs):
        """A callable that advances the clock by the next of ``costs`` per call and counts its calls."""
        costs = iter(costs)

        def fn():
            fn.calls += 1
            self.now += next(costs)
            return fn.calls

        fn.calls = 0
        return fn


def test_timeit_median_and_spread_of_the_repeats():
    clock = FakeClock()
    fn = clock.work([3.0, 1.0, 2.0, 10.0, 4.0])
    t = harness.timeit(fn, repeats=5, clock=clock)
    assert t.times == [3.0, 1.0, 2.0, 10.0, 4.0]
    assert t.median == 3.0 and t.min == 1.0 and t.max == 10.0 and t.spread == 9.0 and t.repeats == 5
    assert t.result == 5  # the last call's return value
    assert harness.median([4.0, 1.0, 2.0, 3.0]) == 2.5 and harness.spread([2.0]) == 0.0


def test_warmup_runs_are_called_but_not_counted():
    clock = FakeClock()
    fn = clock.work([50.0, 60.0, 1.0, 2.0, 3.0])
    t = harness.timeit(fn, repeats=3, warmup=2, clock=clock)
    assert fn.calls == 5
    assert t.times == [1.0, 2.0, 3.0] and t.median == 2.0


def test_sync_runs_around_every_timed_call():
    clock, events = FakeClock(), []
    fn = clock.work([1.0, 1.0])
    harness.timeit(lambda: events.append("call") or fn(), repeats=2, clock=clock, sync=lambda: events.append("sync"))
    assert events == ["sync", "call", "sync"] * 2
    assert harness.cuda_sync("cpu") is None and harness.cuda_sync(None) is None


def test_ratio_of_two_timings_from_the_same_run():
    clock = FakeClock()
    fast, slow = clock.work([1.0, 2.0, 3.0, 100.0]), clock.work([4.0, 6.0, 9.0, 100.0])
    times = harness.interleaved({"fast": fast, "slow": slow}, repeats=3, warmup=1, clock=clock)
    assert times["fast"].times == [2.0, 3.0, 100.0] and times["slow"].times == [6.0, 9.0, 100.0]
    assert harness.ratio(times["slow"], times["fast"]) == 3.0  # medians 9 / 3
    assert harness.ratio(6.0, 2.0) == 3.0 and harness.ratio(1.0, 0.0) == float("inf")


def test_interleaved_takes_turns_and_honours_per_variant_repeats():
    clock, order = FakeClock(), []

    def variant(name):
        def fn():
            order.append(name)
            clock.now += 1.0
        return fn

    times = harness.interleaved({"a": variant("a"), "b": variant("b")}, repeats={"a": 3, "b": 1},
                                warmup={"a": 0, "b": 1}, clock=clock)
    assert order == ["b", "a", "b", "a", "a"]  # warm-up first, then one call of each per round
    assert times["a"].repeats == 3 and times["b"].repeats == 1


def test_laps_and_parts():
    clock = FakeClock()
    laps = harness.Laps(clock)
    clock.now += 2.0
    assert laps.lap("rollout") == 2.0
    clock.now += 0.5
    laps.lap("loss")
    clock.now += 1.0
    assert laps.laps == {"rollout": 2.0, "loss": 0.5} and laps.total() == 3.5

    parts = harness.Parts(clock)
    step = parts.wrap("forward", clock.work([1.5, 2.5]))
    step(), step()
    assert parts["forward"] == 4.0 and parts["sampling"] == 0.0
    parts.reset()
    assert parts["forward"] == 0.0


def test_measure_returns_seconds_and_the_value():
    clock = FakeClock()
    assert harness.measure(clock.work([7.0]), clock=clock) == (7.0, 1)


def test_common_flags_are_parsed():
    parser = harness.add_common_args(argparse.ArgumentParser(), repeats=5, warmup=2)
    args = parser.parse_args([])
    assert (args.repeats, args.warmup, args.json) == (5, 2, None)
    args = parser.parse_args(["--repeats", "1", "--warmup", "0", "--json", "out/r.json"])
    assert (args.repeats, args.warmup, args.json) == (1, 0, Path("out/r.json"))
    only_json = harness.add_common_args(argparse.ArgumentParser())  # a benchmark without repeats keeps none
    assert vars(only_json.parse_args([])) == {"json": None}
    with pytest.raises(SystemExit):
        only_json.parse_args(["--repeats", "3"])


def test_json_record_is_written_atomically_with_the_expected_keys(tmp_path, monkeypatch):
    clock = FakeClock()
    timing = harness.timeit(clock.work([1.0, 3.0, 2.0]), repeats=3, clock=clock)
    args = harness.add_common_args(argparse.ArgumentParser(), repeats=3).parse_args(["--json", str(tmp_path / "r.json")])
    record = harness.Record("bench_fake", args)
    record.add(step=timing, ratio=harness.ratio(3.0, 1.5), path=tmp_path)
    record["rows"] = [{"n": 8, "s": 0.25}]

    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        assert Path(src).parent == Path(dst).parent and Path(src) != Path(dst)  # a temp file beside the target
        assert not Path(dst).exists()  # nothing written to the target before the rename
        real_replace(src, dst)

    monkeypatch.setattr(harness.os, "replace", spy)
    out = record.finish(args.json, device="cpu")
    assert out == tmp_path / "r.json" and replaced == [(replaced[0][0], out)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # the temp file is gone

    data = json.loads(out.read_text())
    assert {"benchmark", "machine", "args", "results"} <= set(data)
    assert data["benchmark"] == "bench_fake"
    assert {"platform", "python", "torch", "cpu_count", "device"} <= set(data["machine"])
    assert data["machine"]["device"] == "cpu"
    assert data["args"] == {"repeats": 3, "json": str(tmp_path / "r.json")}
    results = data["results"]
    assert results["step"]["median_s"] == 2.0 and results["step"]["times_s"] == [1.0, 3.0, 2.0]
    assert results["step"]["spread_s"] == 2.0 and results["ratio"] == 2.0
    assert results["path"] == str(tmp_path) and results["rows"] == [{"n": 8, "s": 0.25}]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(harness.os, "replace", boom)
    with pytest.raises(OSError):
        harness.Record("bench_fake").write(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert harness.Record("bench_fake").finish(None) is None  # no --json: nothing written


def test_every_benchmark_uses_the_harness():
    """The 14 benchmarks live in benchmarks/ and import the harness instead of timing on their own."""
    files = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    assert len(files) == 14
    for f in files:
        text = f.read_text()
        assert "from benchmarks import harness" in text, f.name
        assert "time.perf_counter" not in text and "statistics.median" not in text, f.name
