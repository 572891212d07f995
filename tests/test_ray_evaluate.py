"""``adhoc evaluate`` on Ray: the evaluation's pairs (the agent with every partner in both seatings, the
partners' self-play) played in seeded blocks on Ray workers give exactly the returns of the same blocks
played in this process, scripted partners and the per-round curve of a repeated game included; the CLI's
``--backend ray`` writes the evaluation.json of ``--block-size T``; bad execution flags are one line, exit 2,
before any work. One two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``), started once for
this file, as in tests/test_ray.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray", reason='the Ray backend needs ray: pip install -e ".[ray]"')

from ray.cluster_utils import Cluster  # noqa: E402

from adhoc.cli import main  # noqa: E402
from adhoc.config import RayConfig  # noqa: E402
from adhoc.distributed.blocks import LocalBlocks, RayBlocks  # noqa: E402
from adhoc.recipes.evaluate import evaluate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "repeated-lever-selfplay.yaml")
# 3 barely trained members of a 3-round lever game: stochastic policies, so every seed gives other returns
TINY = ["population.size=3", "game.rounds=3", "game.stage_params.n_levers=4", "train.iterations=1",
        "train.episodes_per_pair=4", "train.eval_episodes=4"]
SCRIPTED = "scripted:repeated:stubborn-1,stubborn-2"  # seat-free scripted partners, shipped to the workers


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    c.add_node(num_cpus=2)
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Path:
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    out = tmp_path_factory.mktemp("pop") / "repeated"
    return train_population(load_config(CONFIG, TINY), out=out, progress=False).path


@pytest.fixture(scope="module")
def mixture_agent(population, tmp_path_factory) -> Path:
    """The population with a stored mixture over two of its members (what train-learner writes)."""
    path = tmp_path_factory.mktemp("mix") / "agent"
    shutil.copytree(population, path)
    manifest = yaml.safe_load((path / "population.yaml").read_text())
    manifest["mixture"] = {"member-00": 0.25, "member-02": 0.75}
    (path / "population.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def test_one_stream_play_gives_the_default_numbers(population):
    """Played through ``play`` as one stream, the pairs come in the default path's order: the same returns."""
    partners = [str(population), SCRIPTED]
    default = evaluate(population, partners, episodes=6, seed=7)
    one_stream = evaluate(population, partners, episodes=6, seed=7, play=LocalBlocks(0))
    assert np.array_equal(default.returns, one_stream.returns, equal_nan=True)
    assert default.metrics == one_stream.metrics


def test_evaluate_blocks_on_ray_workers_equal_the_same_blocks_in_process(cluster, population):
    partners = [str(population), SCRIPTED]
    here = evaluate(population, partners, episodes=6, seed=7, play=LocalBlocks(2))
    on_ray = RayBlocks(RayConfig(workers=2, cpus_per_worker=1), 2)
    there = evaluate(population, partners, episodes=6, seed=7, play=on_ray)
    assert on_ray.workers_used == 2
    assert np.array_equal(here.returns, there.returns, equal_nan=True) and here.metrics == there.metrics
    assert len(there.metrics["episode_payoffs"]) == 3  # the per-round curve came back from the workers
    assert [p["partner"].split("/")[1] for p in there.metrics["per_partner"]] == [  # scripted ones played there too
        "member-00", "member-01", "member-02", "stubborn-1", "stubborn-2"]
    other = evaluate(population, partners, episodes=6, seed=8, play=LocalBlocks(2))
    assert not np.array_equal(here.returns, other.returns, equal_nan=True)  # the comparison above could fail


def test_cli_backend_ray_writes_the_evaluation_of_the_same_blocks_here(cluster, population, mixture_agent, tmp_path,
                                                                       capsys):
    args = [str(mixture_agent), "--partners", str(population), "--partners", SCRIPTED, "--mixture",
            "--episodes", "6", "--seed", "3", "--block-size", "2"]
    assert main(["evaluate", *args, "--backend", "ray", "ray.workers=2", "--out", str(tmp_path / "ray")]) == 0
    assert main(["evaluate", *args, "--out", str(tmp_path / "local")]) == 0
    on_ray, here = (json.loads((tmp_path / d / "evaluation.json").read_text()) for d in ("ray", "local"))
    assert on_ray == here and set(here["snapshots"]) == {"member-00", "member-02"}
    assert main(["evaluate", *args[:-2], "--out", str(tmp_path / "default")]) == 0  # one stream: another draw
    assert json.loads((tmp_path / "default" / "evaluation.json").read_text())["mean_return"] != here["mean_return"]
    capsys.readouterr()


@pytest.mark.parametrize("flags, message", [
    (["--block-size", "-1"], "adhoc: error: --block-size must be >= 0 and <= 4,096 (got -1)"),
    (["--backend", "ray", "--block-size", "0"], "adhoc: error: backend=ray plays blocks of pairs: --block-size must"),
    (["ray.wrkers=2"], "adhoc: error: config error: unknown key ray.wrkers"),
])
def test_bad_execution_flags_are_one_line_and_exit_2_before_any_work(population, tmp_path, capsys, flags, message):
    out = tmp_path / "ev"
    code = main(["evaluate", str(population), "--partners", str(population), *flags, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert not out.exists() and list(tmp_path.iterdir()) == []
