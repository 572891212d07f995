"""Held-out bad input to every command: each case is one line on stderr (no traceback) naming the bad value or
field, exit code 2, and every file under the test's folder byte for byte unchanged (no new file: no empty
database, no lock, no output folder). Cases are named by class: seed-, range-, type-, manifest-, adapter-,
member-, recording-, db-, jsonl-, sweep-, base-, partners-, ray-."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adhoc.cli import main

ROOT = Path(__file__).resolve().parent.parent
POP = ROOT / "populations" / "lever-selfplay"
CONFIG = str(ROOT / "configs" / "lever-selfplay.yaml")
REPEATED = str(ROOT / "configs" / "repeated-lever-selfplay.yaml")  # a game with scripted strategies, to play
SCRIPTED = ["--partner", "scripted:repeated:stubborn-1", "--human", "scripted:repeated:copy-1"]


def snapshot(root: Path) -> dict[str, bytes | str]:
    """relative path -> bytes (a link: its target, a folder: 'dir'), for everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            out[rel] = "-> " + os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A recording of a few lever episodes (a database) and its JSONL export."""
    from adhoc import recording as rec
    from adhoc.play import game_of, play_terminal

    root = tmp_path_factory.mktemp("rec")
    db = root / "play.sqlite"
    for k in (1, 2):
        play_terminal(game_of(REPEATED, []), f"scripted:repeated:stubborn-{k}", seat=1, episodes=2, db=db,
                      human="scripted:repeated:copy-1", seed=k, write=lambda text: None)
    with open(root / "play.jsonl", "w") as f:
        rec.export_jsonl(db, f)
    return db, root / "play.jsonl"


def pop(t: Path, name: str = "pop") -> Path:
    dst = t / name
    shutil.copytree(POP, dst, ignore=shutil.ignore_patterns("tb", "crossplay"))
    return dst


def manifest(change, command=("populations", "show")):
    def setup(t, fx):
        p = pop(t)
        m = yaml.safe_load((p / "population.yaml").read_text())
        change(m)
        (p / "population.yaml").write_text(yaml.safe_dump(m))
        return [*command, str(p)] if command[0] != "evaluate" else ["evaluate", str(p), "--partners", str(p)]
    return setup


def raw_manifest(text):
    def setup(t, fx):
        p = pop(t)
        (p / "population.yaml").write_text(text)
        return ["populations", "show", str(p)]
    return setup


def set_key(section, key, value):
    def change(m):
        m[section][key] = value
    return change


def set_member(key, value):
    def change(m):
        m["members"][1][key] = value
    return change


def adapter_config(key, value):
    def setup(t, fx):
        p = pop(t)
        f = p / "members" / "member-03" / "adapter_config.json"
        cfg = json.loads(f.read_text())
        cfg[key] = value
        f.write_text(json.dumps(cfg))
        return ["crossplay", str(p), "--episodes", "2", "--out", str(t / "xp")]
    return setup


def adapter_text(text):
    def setup(t, fx):
        p = pop(t)
        (p / "members" / "member-03" / "adapter_config.json").write_text(text)
        return ["populations", "show", str(p)]
    return setup


def int_tensors(t, fx):
    from safetensors.torch import load_file, save_file

    p = pop(t)
    f = p / "members" / "member-02" / "adapter_model.safetensors"
    tensors = {k: v.round().long() for k, v in load_file(str(f)).items()}
    save_file(tensors, str(f))
    return ["crossplay", str(p), "--episodes", "2", "--out", str(t / "xp")]


def link_loop(rel):
    def setup(t, fx):
        p = pop(t)
        target = p / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.symlink_to(target.name)  # a link to itself
        return ["populations", "show", str(p)]
    return setup


def nested(depth):
    return "members: " + "[" * depth + "]" * depth + "\n"


def database(change, command):
    """A copy of the recording database, changed by ``change(connection)``, given to ``command``."""
    def setup(t, fx):
        db = t / "play.sqlite"
        shutil.copy(fx["db"], db)
        conn = sqlite3.connect(db)
        change(conn)
        conn.commit()
        conn.close()
        return command(t, db)
    return setup


def drop_steps(conn):
    conn.execute("DROP TABLE steps")


def bad_game(conn):
    conn.execute("UPDATE sessions SET game = 'not json {'")


def deep_game(conn):
    conn.execute("UPDATE sessions SET game = ?", ("[" * 5000 + "]" * 5000,))


EXPORT = lambda t, db: ["data", "export", str(db)]  # noqa: E731
STATS = lambda t, db: ["data", "stats", str(db)]  # noqa: E731
PROXY = lambda t, db: ["train-proxy", str(db), "--out", str(t / "proxy"), "--iterations", "1", "--quiet"]  # noqa: E731


def read_only_db(t, fx):
    db = t / "ro.sqlite"
    shutil.copy(fx["db"], db)
    db.chmod(0o444)
    return ["play", REPEATED, *SCRIPTED, "--episodes", "1", "--seed", "0", "--db", str(db)]


def dangling_db(t, fx):
    (t / "db.sqlite").symlink_to(t / "nowhere" / "x.sqlite")
    return ["play", REPEATED, *SCRIPTED, "--episodes", "1", "--seed", "0", "--db", str(t / "db.sqlite")]


def linked_db(t, fx):
    shutil.copy(fx["db"], t / "real.sqlite")
    (t / "db.sqlite").symlink_to(t / "real.sqlite")
    return ["play", REPEATED, *SCRIPTED, "--episodes", "1", "--seed", "0", "--db", str(t / "db.sqlite")]


def jsonl(change):
    """The JSONL export with its first decision's record changed by ``change(record)`` (or a raw line)."""
    def setup(t, fx):
        lines = fx["jsonl"].read_text().splitlines()
        first = next(i for i, line in enumerate(lines) if len(json.loads(line)["legal"]) > 1)
        record = json.loads(lines[first])
        new = change(record)
        lines[first] = new if isinstance(new, str) else json.dumps(record)
        (t / "rec.jsonl").write_text("\n".join(lines) + "\n")
        return ["train-proxy", str(t / "rec.jsonl"), "--out", str(t / "proxy"), "--iterations", "1", "--quiet"]
    return setup


def setter(key, value):
    def change(record):
        record[key] = value
    return change


def sweep_state(state):
    def setup(t, fx):
        (t / "sweep").mkdir()
        (t / "sweep" / "sweep.json").write_text(state if isinstance(state, str) else json.dumps(state))
        return ["sweep", CONFIG, "--seeds", "0", "--out", str(t / "sweep")]
    return setup


def pickled_base(t, fx):
    base = t / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 64, "hidden_size": 16,
                                                  "intermediate_size": 32, "num_hidden_layers": 1,
                                                  "num_attention_heads": 2, "num_key_value_heads": 2}))
    (base / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not loaded: a pickle is never read")
    return ["base-card", str(base)]


def learner_twice(t, fx):
    p = pop(t)
    (t / "learner.yaml").write_text(f"partners: [{p}, {p}]\nsolver: uniform\nlearner: {{}}\n"
                                    "train: {epochs: 1, iterations_per_epoch: 1, episodes: 4, eval_episodes: 4}\n")
    return ["train-learner", str(t / "learner.yaml"), "--out", str(t / "learner"), "--quiet"]


def argv(*items):
    """A fixed command line; ``{pop}`` is a fresh copy of the shipped population, ``{t}`` the test's folder."""
    def setup(t, fx):
        p = pop(t) if any("{pop}" in str(i) for i in items) else None
        return [str(i).format(pop=p, t=t) for i in items]
    return setup


EV = ("evaluate", "{pop}", "--partners", "{pop}", "--episodes", "2", "--out", "{t}/ev")
XP = ("crossplay", "{pop}", "--episodes", "2", "--out", "{t}/xp")
PLAY = ("play", REPEATED, *SCRIPTED, "--episodes", "1", "--db", "{t}/play.sqlite")
TP = ("train-proxy", "{t}/none.jsonl", "--out", "{t}/proxy")
PB = ("pretrain-base", "--out", "{t}/base", "--quiet")
SERVE = ("serve", "--partners", "scripted:repeated:stubborn-1", "--db", "{t}/serve.sqlite")
BIG = str(10**12)

CASES = {
    # seeds: >= 0 and < 2**63 everywhere
    "seed-negative-evaluate": (argv(*EV, "--seed", "-1"), "--seed"),
    "seed-negative-crossplay": (argv(*XP, "--seed", "-1"), "--seed"),
    "seed-negative-play": (argv(*PLAY, "--seed", "-1"), "--seed"),
    "seed-negative-train-proxy": (argv(*TP, "--seed", "-1"), "--seed"),
    "seed-negative-pretrain-base": (argv(*PB, "--seed", "-1"), "--seed"),
    "seed-negative-serve": (argv(*SERVE, "--seed", "-1"), "--seed"),
    "seed-huge-crossplay": (argv(*XP, "--seed", str(2**64)), "--seed"),
    "seed-huge-play": (argv(*PLAY, "--seed", str(2**70)), "--seed"),
    "seed-huge-sweep": (argv("sweep", CONFIG, "--seeds", str(2**64), "--out", "{t}/sweep"), "seed"),
    # numeric options: ranges, with what a value above the limit would take
    "range-episodes-huge-evaluate": (argv(*EV[:4], "--episodes", BIG), "would take"),
    "range-episodes-huge-crossplay": (argv(*XP[:2], "--episodes", BIG), "would take"),
    "range-episodes-huge-play": (argv(*PLAY[:-4], "--episodes", BIG, "--db", "{t}/p.sqlite"), "--episodes"),
    "range-episodes-zero-play": (argv(*PLAY[:-4], "--episodes", "0", "--db", "{t}/p.sqlite"), "--episodes"),
    "range-episodes-one-crossplay": (argv(*XP[:2], "--episodes", "1"), "--episodes"),
    "range-episodes-negative-sweep": (argv("sweep", CONFIG, "--seeds", "0", "--episodes", "-4", "--out", "{t}/s"), "--episodes"),
    "range-threshold-nan": (argv(*XP, "--threshold", "nan"), "--threshold"),
    "range-threshold-negative": (argv(*XP, "--threshold", "-5"), "--threshold"),
    "range-threshold-inf": (argv(*XP, "--threshold", "inf"), "--threshold"),
    "range-threshold-above-one": (argv(*XP, "--threshold", "2"), "--threshold"),
    "range-crossplay-episodes-negative": (argv("train-population", CONFIG, "--out", "{t}/run", "--crossplay-episodes", "-3"),
                                          "--crossplay-episodes"),
    "range-block-size-negative": (argv(*XP, "--block-size", "-2"), "--block-size"),
    "range-block-size-huge": (argv(*XP, "--block-size", BIG), "would take"),
    "range-retries-negative": (argv("sweep", CONFIG, "--seeds", "0", "--retries", "-1", "--out", "{t}/s"), "--retries"),
    "range-port-huge": (argv(*SERVE, "--port", "70000"), "--port"),
    "range-episodes-per-partner-zero": (argv(*SERVE, "--episodes-per-partner", "0"), "--episodes-per-partner"),
    "range-lr-nan-pretrain-base": (argv(*PB, "--lr", "nan"), "--lr"),
    "range-lr-inf-train-proxy": (argv(*TP, "--lr", "inf"), "--lr"),
    "range-holdout-one": (argv(*TP, "--holdout", "1"), "--holdout"),
    "range-lora-rank-zero": (argv(*TP, "--lora-rank", "0"), "--lora-rank"),
    "range-iterations-zero": (argv(*TP, "--iterations", "0"), "--iterations"),
    "range-batch-huge": (argv(*TP, "--batch", BIG), "would take"),
    "range-seq-len-huge": (argv(*PB, "--seq-len", "100000"), "--seq-len"),
    "range-threads-zero": (argv(*PB, "--threads", "0"), "--threads"),
    "range-steps-negative": (argv(*PB, "--steps", "-1"), "--steps"),
    # types: argparse's, in one line
    "type-episodes-float": (argv(*XP[:2], "--episodes", "1e12"), "--episodes"),
    "type-seed-text": (argv(*EV, "--seed", "abc"), "--seed"),
    "type-threshold-text": (argv(*XP, "--threshold", "high"), "--threshold"),
    # population manifests: every field's type and range, nesting depth, links
    "manifest-type-alpha": (manifest(set_key("adapter", "alpha", "abc")), "adapter.alpha"),
    "manifest-range-alpha": (manifest(set_key("adapter", "alpha", -8)), "adapter.alpha"),
    "manifest-nan-alpha": (manifest(set_key("adapter", "alpha", float("nan"))), "adapter.alpha"),
    "manifest-type-rank": (manifest(set_key("adapter", "rank", "4")), "adapter.rank"),
    "manifest-range-rank": (manifest(set_key("adapter", "rank", 0), ("crossplay",)), "adapter.rank"),
    "manifest-type-target-modules": (manifest(set_key("adapter", "target_modules", "q_proj")), "adapter.target_modules"),
    "manifest-type-self-play-return": (manifest(set_member("self_play_return", "high")), "self_play_return"),
    "manifest-inf-self-play-return": (manifest(set_member("self_play_return", float("inf"))), "self_play_return"),
    "manifest-type-seed": (manifest(set_member("seed", "x"), ("evaluate",)), "seed"),
    "manifest-range-seed": (manifest(set_member("seed", -5)), "seed"),
    "manifest-type-method": (manifest(lambda m: m.update(method="selfplay")), "method"),
    "manifest-type-game": (manifest(lambda m: m.update(game="lever"), ("crossplay",)), "game"),
    "manifest-type-base-id": (manifest(set_key("base_model", "id", 7)), "base_model.id"),
    "manifest-type-wall-time": (manifest(lambda m: m.update(wall_time_s="long")), "wall_time_s"),
    "manifest-depth-show": (raw_manifest(nested(20_000)), "nested deeper"),
    "manifest-depth-mapping": (raw_manifest("a:\n" + "".join("  " * i + " b:\n" for i in range(1, 200))), "nested deeper"),
    "manifest-link-loop": (link_loop("population.yaml"), "symlink loop"),
    # member adapters
    "adapter-lora-alpha-negative": (adapter_config("lora_alpha", -8), "lora_alpha"),
    "adapter-lora-alpha-text": (adapter_config("lora_alpha", "8"), "lora_alpha"),
    "adapter-lora-alpha-differs": (adapter_config("lora_alpha", 16.0), "lora_alpha"),
    "adapter-rank-text": (adapter_config("r", "4"), " r "),
    "adapter-int64-tensors": (int_tensors, "not floating point"),
    "adapter-config-nan": (adapter_text('{"peft_type": "LORA", "r": 4, "lora_alpha": NaN}'), "NaN"),
    "adapter-config-deep": (adapter_text("[" * 20_000 + "]" * 20_000), "adapter_config.json"),
    "member-link-loop": (link_loop("members/member-05"), "symlink loop"),
    # recorded play
    "recording-no-steps-table-export": (database(drop_steps, EXPORT), "steps"),
    "recording-no-steps-table-stats": (database(drop_steps, STATS), "steps"),
    "recording-no-steps-table-proxy": (database(drop_steps, PROXY), "steps"),
    "recording-game-not-json-export": (database(bad_game, EXPORT), "sessions.game"),
    "recording-game-not-json-stats": (database(bad_game, STATS), "sessions.game"),
    "recording-game-not-json-proxy": (database(bad_game, PROXY), "sessions.game"),
    "recording-game-deep-export": (database(deep_game, EXPORT), "sessions.game"),
    "db-read-only": (read_only_db, "read-only"),
    "db-dangling-link": (dangling_db, "link"),
    "db-link": (linked_db, "link"),
    # train-proxy JSONL
    "jsonl-session-list": (jsonl(setter("session", [1])), "session"),
    "jsonl-episode-float": (jsonl(setter("episode", 1.5)), "episode"),
    "jsonl-action-bool": (jsonl(setter("action", True)), "action"),
    "jsonl-seat-bool": (jsonl(setter("seat", True)), "seat"),
    "jsonl-participant-number": (jsonl(setter("participant", 3)), "participant"),
    "jsonl-legal-index-bool": (jsonl(lambda r: r.update(legal_index=[True, *r["legal_index"][1:]])), "legal_index"),
    "jsonl-nan": (jsonl(lambda r: json.dumps(r).replace(f'"t": {r["t"]}', '"t": NaN')), "NaN"),
    "jsonl-infinity": (jsonl(lambda r: json.dumps(r).replace(f'"seat": {r["seat"]}', '"seat": Infinity')), "Infinity"),
    "jsonl-deep": (jsonl(lambda r: json.dumps(r).replace(f'"t": {r["t"]}', '"t": ' + "[" * 5000 + "]" * 5000)), "line"),
    # sweep state
    "sweep-trials-not-mappings": (sweep_state({"format": "adhoc-sweep/1", "trials": {"lever-selfplay-s0": 1}}),
                                  "lever-selfplay-s0"),
    "sweep-trials-list": (sweep_state({"format": "adhoc-sweep/1", "trials": {"x": [1, 2]}}), "sweep.json"),
    "sweep-state-deep": (sweep_state("[" * 20_000 + "]" * 20_000), "sweep.json"),
    "sweep-state-nan": (sweep_state('{"format": "adhoc-sweep/1", "trials": {}, "x": NaN}'), "NaN"),
    # base models: safetensors only
    "base-pickle-only": (pickled_base, "pytorch_model.bin"),
    # partners given twice
    "partners-twice-train-learner": (learner_twice, "twice"),
    "partners-twice-evaluate": (argv("evaluate", "{pop}", "--partners", "{pop}", "--partners", "{pop}", "--episodes", "2",
                                     "--out", "{t}/ev"), "twice"),
    "partners-twice-member-evaluate": (argv("evaluate", "{pop}", "--partners", "{pop}:member-01,member-02",
                                            "--partners", "{pop}:member-02", "--episodes", "2", "--out", "{t}/ev"), "twice"),
    # an unreachable Ray cluster (a closed local port)
    "ray-unreachable-train-population": (argv("train-population", CONFIG, "backend=ray", "ray.address=127.0.0.1:1",
                                              "--out", "{t}/run"), "ray.address=127.0.0.1:1"),
    "ray-unreachable-crossplay": (argv(*XP, "--backend", "ray", "ray.address=127.0.0.1:1"), "ray.address=127.0.0.1:1"),
}


# root writes to a read-only file: the case runs only where permissions hold
NEEDS_PERMISSIONS = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


@pytest.mark.parametrize("name", [pytest.param(n, marks=NEEDS_PERMISSIONS) if n == "db-read-only" else n for n in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, tmp_path, recording, capsys, monkeypatch):
    setup, expect = CASES[name]
    monkeypatch.chdir(tmp_path)
    args = setup(tmp_path, {"db": recording[0], "jsonl": recording[1]})
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "error:" in err and expect in err, err
    assert snapshot(tmp_path) == before


def test_there_are_enough_cases_of_every_class():
    classes = {}
    for name in CASES:
        classes[name.split("-")[0]] = classes.get(name.split("-")[0], 0) + 1
    assert len(CASES) >= 60 and all(n >= 1 for n in classes.values())
    assert {"seed", "range", "type", "manifest", "adapter", "recording", "db", "jsonl", "sweep", "base",
            "partners", "ray"} <= set(classes)


def test_populations_ls_lists_the_rest_then_names_each_bad_manifest_and_exits_2(tmp_path, capsys):
    pop(tmp_path, "good")
    (pop(tmp_path, "deep") / "population.yaml").write_text(nested(20_000))
    m = yaml.safe_load((pop(tmp_path, "alpha") / "population.yaml").read_text())
    m["adapter"]["alpha"] = "abc"
    (tmp_path / "alpha" / "population.yaml").write_text(yaml.safe_dump(m))
    (pop(tmp_path, "binary") / "population.yaml").write_bytes(bytes(range(256)))
    assert main(["populations", "ls", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert list(rows) == [str(tmp_path / "good")]
    assert "lever" in rows[str(tmp_path / "good")] and "selfplay" in rows[str(tmp_path / "good")]
    errors = captured.err.splitlines()
    assert [e.split()[3] for e in errors] == [f"{tmp_path / name}:" for name in ("alpha", "binary", "deep")]
    assert all(e.startswith("adhoc: error: population ") for e in errors)
    assert "adapter.alpha" in errors[0] and "does not parse" in errors[1] and "nested deeper" in errors[2]
    # only bad ones: nothing on stdout, still exit code 2
    assert main(["populations", "ls", str(tmp_path / "deep")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "nested deeper" in captured.err


def test_the_same_partner_population_twice_is_refused_but_distinct_members_are_not(tmp_path):
    from adhoc.errors import UserError
    from adhoc.partners import load_partners

    p = pop(tmp_path)
    partners = load_partners([f"{p}:member-00,member-01", f"{p}:member-02"])
    assert partners.names[-1].endswith("member-02") and len(partners.names) == 3
    with pytest.raises(UserError, match="given twice"):
        load_partners([str(p), str(tmp_path / "." / "pop")])


def test_an_unreachable_ray_address_is_refused_before_any_heavy_import(tmp_path):
    """In a fresh interpreter: the refusal comes with neither torch, transformers nor ray loaded (whether Ray is
    installed or not), so it comes within seconds, not after half a minute of imports."""
    code = (f"import sys\nfrom adhoc.cli import main\n"
            f"code = main(['train-population', {CONFIG!r}, 'backend=ray', 'ray.address=127.0.0.1:1', "
            f"'--out', {str(tmp_path / 'run')!r}])\n"
            "print(code, sorted(m for m in ('torch', 'transformers', 'ray', 'peft') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.stdout.strip() == "2 []", (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "cannot reach the Ray cluster at ray.address=127.0.0.1:1" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _can_mount_read_only() -> bool:
    """A private mount namespace in which root may bind-mount a folder read-only (``unshare -m``)."""
    import subprocess

    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / /mnt && mount -o remount,bind,ro /mnt"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user the db-read-only case above runs")
def test_a_read_only_database_as_root(recording, tmp_path):
    """The db-read-only case where root runs it, whom file modes do not stop: ``adhoc play`` in a private mount
    namespace where the recording's folder is bind-mounted read-only. One line naming it read-only, exit 2, the
    recording unchanged."""
    import shlex
    import subprocess
    import sys

    if not _can_mount_read_only():
        pytest.skip("no private mount namespace here (unshare -m)")
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "ro.sqlite"
    shutil.copy(recording[0], db)
    db.chmod(0o444)
    before = snapshot(folder)
    play = shlex.join([sys.executable, "-m", "adhoc.cli", "play", REPEATED, *SCRIPTED, "--episodes", "1",
                       "--seed", "0", "--db", str(db)])
    mount = f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))} && " \
            f"mount -o remount,bind,ro {shlex.quote(str(folder))} && exec {play}"
    proc = subprocess.run(["unshare", "-m", "sh", "-c", mount], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "read-only" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(folder) == before
