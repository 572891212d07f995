"""The ``adhoc`` command. Each subcommand parses its arguments, loads the config and calls a recipe.

Errors a user can cause are printed as one line (``adhoc: error: ...``) with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from adhoc.errors import Interrupted, MissingExtra, UserError


def _tensorboard_hint(path) -> str:
    """TensorBoard names a run by its folder relative to --logdir: the parent shows this one as <name>/tb."""
    return f"TensorBoard: tensorboard --logdir {path.parent}, run {path.name}/tb"


def _train_population(args: argparse.Namespace) -> None:
    from adhoc.config import RunConfig, load_config

    if args.config is None or "=" in args.config and not os.path.exists(args.config):
        given = " ".join(x for x in [args.config, *args.overrides] if x)
        raise UserError(f"train-population needs a CONFIG file{f' before the overrides ({given})' if given else ''}, "
                        f"e.g. adhoc train-population configs/lever-selfplay.yaml population.size=4")
    config = load_config(args.config, args.overrides)
    if not isinstance(config, RunConfig):
        raise UserError(f"{args.config} is a learner config: run it with adhoc train-learner")
    if config.backend == "ray":  # an unreachable cluster is found before torch, transformers and Ray load
        from adhoc.distributed.cluster import check_reachable

        check_reachable(config.ray)
    from adhoc.recipes.train_population import train_population

    pop = train_population(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet, resume=args.resume)
    print(pop.summary())
    print(f"\nsaved to {pop.path}   ({_tensorboard_hint(pop.path)})")
    if args.crossplay_episodes > 0:
        from adhoc.recipes.crossplay import run_crossplay
        from adhoc.report import terminal_table

        from adhoc.progress import shown

        result, out = run_crossplay([str(pop.path)], episodes=args.crossplay_episodes, out=pop.path / "crossplay",
                                    progress=shown(args.quiet))
        print("\n" + terminal_table(result))
        print(f"\ncross-play report: {out / 'report.html'}")


def _train_learner(args: argparse.Namespace) -> None:
    from adhoc.config import load_learner_config
    from adhoc.recipes.train_learner import summary, train_learner

    config = load_learner_config(args.config, args.overrides)
    pops = train_learner(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet, resume=args.resume)
    for pop in pops if isinstance(pops, list) else [pops]:  # learners: one population per slot
        print(summary(pop))
        print(f"\nsaved to {pop.path}   ({_tensorboard_hint(pop.path)})")


def _evaluate(args: argparse.Namespace) -> None:
    from adhoc.distributed.blocks import player
    from adhoc.progress import shown
    from adhoc.recipes.evaluate import run_evaluate
    from adhoc.report import evaluation_table

    play = player(args.overrides, args.backend, args.block_size)  # backend=ray ray.workers=4, --backend ray
    result, out = run_evaluate(args.agent, args.partners, member=args.member, episodes=args.episodes,
                               out=args.out, seed=args.seed, mixture=args.mixture, overwrite=args.overwrite,
                               bound=args.bound, play=play, transcript=args.transcript,
                               exploitability=args.exploitability,
                               seat=None if args.seat is None else args.seat if args.seat == "both" else int(args.seat),
                               progress=shown(args.quiet))
    print(evaluation_table(result))
    print(f"\nwrote {out}/: evaluation.json, returns.png, report.md, report.html")


def _crossplay(args: argparse.Namespace) -> None:
    from adhoc.distributed.blocks import player
    from adhoc.progress import shown
    from adhoc.recipes.crossplay import run_crossplay
    from adhoc.report import terminal_table

    populations, overrides = split_overrides(args.populations)
    overrides += args.overrides
    play = player(overrides, args.backend, args.block_size)  # backend=ray ray.workers=4, --backend ray
    if not populations:
        raise UserError("crossplay needs a population folder")
    result, out = run_crossplay(populations, episodes=args.episodes, out=args.out, seed=args.seed,
                                threshold=args.threshold, overwrite=args.overwrite, play=play,
                                progress=shown(args.quiet))
    print(terminal_table(result))
    print(f"\nwrote {out}/: matrix.npy, crossplay.json, heatmap.png, report.md, report.html, tb/")


def _sweep(args: argparse.Namespace) -> None:
    from adhoc.recipes.sweep import run_sweep

    configs, overrides = split_overrides(args.configs)
    seeds = []
    for item in args.seeds:  # `--seeds 0 1 2 train.iterations=5`: overrides may follow the seeds
        if "=" in item:
            overrides.append(item)
        elif item.isdigit():
            seeds.append(int(item))
        else:
            raise UserError(f"--seeds takes integers >= 0 (got {item!r})")
    from adhoc.progress import shown

    run_sweep(configs, seeds, [*overrides, *args.overrides], out=args.out, episodes=args.episodes,
              retries=args.retries, progress=shown(args.quiet))


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """(config files or folders, ``key=value`` overrides): an argument holding ``=`` that is not an existing
    path is an override, as everywhere on the command line; anything else names a config file or a folder."""
    configs, overrides = [], []
    for item in items:
        (overrides if "=" in item and not os.path.exists(item) else configs).append(item)
    return configs, overrides


def _validate(args: argparse.Namespace) -> None:
    import yaml

    from adhoc.config import load_config

    configs, overrides = split_overrides(args.configs)
    overrides = [*args.set, *overrides, *args.overrides]
    if not configs:
        raise UserError(f"validate needs a config file (got only the overrides {' '.join(overrides)})")
    for i, path in enumerate(configs):
        try:
            config = load_config(path, overrides)
        except MissingExtra as exc:  # checked where the extra is installed; the others are still checked here
            print(f"not checked: {path}: {str(exc).removeprefix('config error: ')}")
            continue
        if args.print:
            print(f"{'' if i == 0 else chr(10)}# {' '.join([path, *overrides])}  (resolved by adhoc validate --print)")
            print(yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None), end="")
        else:
            print(f"ok: {path}")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _class_sentence(strategy) -> str:
    """The first sentence of a scripted strategy's class docstring (what all strategies of the class are)."""
    doc = " ".join((type(strategy).__doc__ or "").split())
    return doc.split(": ")[0].split(". ")[0].rstrip(".")


def _scripted_description(strategy) -> str:
    """A strategy's own ``description`` if it has one; else its seats and the fields that tell it apart."""
    import dataclasses

    if getattr(strategy, "description", None):
        return _first_line(strategy.description)
    fields = [f.name for f in dataclasses.fields(strategy)] if dataclasses.is_dataclass(strategy) else []
    shown = ", ".join(f"{f}={getattr(strategy, f)}" for f in fields if f not in ("name", "seats"))
    seats = getattr(strategy, "seats", ())
    return "; ".join(x for x in (f"seat {'/'.join(map(str, seats))}" if seats else "", shown) if x)


def _scripted_rows(game_name: str | None) -> list[tuple[str, str]]:
    from adhoc.games import GAMES, GameError, build_game
    from adhoc.scripted import PREFIX, scripted_strategies

    if game_name is not None and game_name not in GAMES:
        raise UserError(f"unknown game '{game_name}' (allowed: {', '.join(sorted(GAMES))})")
    rows = []
    for name in [game_name] if game_name else list(GAMES):
        try:
            game = build_game({"name": name})  # the game's defaults
        except GameError:  # a game without defaults (matrix) ships no scripted strategies
            continue
        strategies = scripted_strategies(game)
        if not strategies:
            continue
        kinds = "; ".join(dict.fromkeys(_class_sentence(s) for s in strategies.values() if _class_sentence(s)))
        rows.append((f"{PREFIX}{name}", f"{kinds + ' - ' if kinds else ''}all of them, or {PREFIX}{name}:NAME,NAME"))
        rows += [(f"  {key}", _scripted_description(s)) for key, s in strategies.items()]
        if getattr(game, "scripted_pattern", ""):
            rows.append(("  or by name", game.scripted_pattern))
    return rows


LISTABLE = ["games", "methods", "solvers", "scripted"]


def _list(args: argparse.Namespace) -> None:
    if args.what is None:
        print(f"adhoc list WHAT: one of {', '.join(LISTABLE[:-1])}, {LISTABLE[-1]} [GAME] (e.g. adhoc list games)")
        return
    if args.game is not None and args.what != "scripted":
        raise UserError(f"adhoc list {args.what} takes no GAME (only adhoc list scripted GAME does)")
    if args.what == "games":
        from adhoc.games import GAMES

        rows = [(name, spec.description) for name, spec in GAMES.items()]
    elif args.what == "methods":
        from adhoc.methods import METHODS

        rows = [(name, spec.description) for name, spec in METHODS.items()]
    elif args.what == "solvers":
        from adhoc.solvers import SOLVERS

        rows = [(name, _first_line(fn.__doc__)) for name, fn in SOLVERS.items()]
    else:
        rows = _scripted_rows(args.game)
        if not rows:
            print(f"game {args.game} has no scripted strategies" if args.game else "no game has scripted strategies")
            return
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}".rstrip())


def _populations_show(args: argparse.Namespace) -> None:
    from adhoc.population import Population

    print(Population.load(args.population).summary())


def _populations_check(args: argparse.Namespace) -> None:
    """The manifest and adapter files, then the base model (loaded once; most of the time is importing torch
    and transformers), then every member onto it."""
    from adhoc.progress import Stages, shown

    with Stages("populations check", 3, shown(args.quiet)) as stages:
        stages.stage("reading the manifest and adapters")
        from adhoc.population import Population

        pop = Population.load(args.population)
        stages.stage(f"loading base model {args.base or pop.base_model['id']}")
        from adhoc.lm.base import load_base

        base = load_base(args.base or pop.base_model["id"], device="cpu", dtype="float32")
        stages.stage(f"loading {len(pop.members)} members")
        pop.build_bank(base)
    print(f"ok: {len(pop.members)} members of {pop.path} load onto {base.model_id} (fingerprint {base.fingerprint})")


def _pretrain_base(args: argparse.Namespace) -> None:
    from pathlib import Path

    from adhoc.lm.pretrain import PretrainConfig, card_markdown, pretrain_base

    config = PretrainConfig(arch=args.arch, data=args.data, steps=args.steps, batch=args.batch, seq_len=args.seq_len,
                            lr=args.lr, warmup=args.warmup, seed=args.seed, threads=args.threads,
                            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, loss=args.loss)
    card = pretrain_base(config, out=args.out, overwrite=args.overwrite, resume=args.resume, progress=not args.quiet)
    print(card_markdown(card))
    print(f"saved to {args.out}   (use it: model.base={args.out}; {_tensorboard_hint(Path(args.out))})")


def _base_card(args: argparse.Namespace) -> None:
    from adhoc.lm.pretrain import prior_report, report_text

    print(report_text(prior_report(args.base)))


def _play(args: argparse.Namespace) -> int:
    from adhoc.play import play_command

    return play_command(args.config, args.overrides, args.partner, args.seat, args.episodes, args.db,
                        args.participant, args.human, args.seed)


def _data(args: argparse.Namespace) -> None:
    from adhoc import recording

    if args.action == "stats":
        print(recording.stats_text(recording.stats(args.db)))
    elif args.action == "import":
        from adhoc.games.overcooked_human import import_trials

        n = import_trials(args.split, args.layout, args.db, horizon=args.horizon, file=args.file)
        print(f"imported {n['trials']} {n['split']} trials of {n['layout']} ({n['transitions']} transitions; "
              f"{n['sessions']} sessions, one per player; {n['episodes']} episodes of at most {args.horizon} steps) "
              f"into {args.db}")
    else:
        recording.export_jsonl(args.db, sys.stdout)


def _train_proxy(args: argparse.Namespace) -> None:
    from adhoc.recipes.train_proxy import proxy_summary, train_proxy

    pop = train_proxy(args.recording, out=args.out, game_name=args.game, pooled=args.pooled, base_model=args.base,
                      iterations=args.iterations, lr=args.lr, batch=args.batch, holdout=args.holdout, seed=args.seed,
                      lora_rank=args.lora_rank, overwrite=args.overwrite, progress=not args.quiet,
                      heldout_source=args.heldout, min_decisions=args.min_decisions)
    print(proxy_summary(pop))
    print(f"\nsaved to {pop.path}   (a population: adhoc crossplay / evaluate --partners / train-learner partners=)")


def _populations_ls(args: argparse.Namespace) -> int:
    """Populations in the folders (a folder that is one, or its sub-folders that are): one row each; a bad
    manifest is one stderr line naming its folder, and makes the exit code 2 once the rest are listed."""
    from pathlib import Path

    from adhoc.population import MANIFEST, check_manifest
    from adhoc.readers import parse_json, parse_yaml, read_text

    folders = [Path(f) for f in args.folders or ["runs", "populations"]]
    missing = [str(f) for f in folders if not f.is_dir()]
    if args.folders and missing:
        raise UserError(f"not a folder: {missing[0]}")
    rows, bad = [], []
    for folder in (f for f in folders if f.is_dir()):
        for path in [folder] if (folder / MANIFEST).is_file() else sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()):
            try:
                m = parse_yaml(read_text(path / MANIFEST, MANIFEST), MANIFEST)
                check_manifest(m, path)
                row = [str(path), m["game"]["name"], m["method"]["name"], str(len(m["members"])), m["base_model"]["id"]]
            except UserError as exc:
                bad.append(f"adhoc: error: population {path}: {str(exc).replace(f'population {path}: ', '')}")
                continue
            xp = "-"
            for f in (path / "crossplay" / "crossplay.json", path / "crossplay.json"):
                try:
                    d = parse_json(read_text(f, str(f)), str(f))
                    xp = f"sp {d['sp_mean']:.3f}  xp {d['xp_mean']:.3f}  conventions {d['n_conventions']}"
                    break
                except (UserError, ValueError, TypeError, KeyError):
                    continue
            rows.append(row + [xp])
    if rows:
        rows.insert(0, ["population", "game", "method", "size", "base model", "cross-play"])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(f"{v:<{w}}" for v, w in zip(r, widths)) + "  " + r[5])
    elif not bad:
        print(f"no populations in {', '.join(map(str, folders))}")
    sys.stdout.flush()
    for line in bad:
        print(line, file=sys.stderr)
    return 2 if bad else 0


def _serve(args: argparse.Namespace) -> None:
    from adhoc.serve import serve_command

    serve_command(args.partners, port=args.port, host=args.host, db=args.db, episodes_per_partner=args.episodes_per_partner,
                  seat=args.seat, config=args.config, overrides=args.overrides, seed=args.seed,
                  allow_origins=args.allow_origin, start_limit=args.start_limit, trusted_proxies=args.trusted_proxy)


def _write_options(p: argparse.ArgumentParser, kind: str, resume: bool = False) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace --out if it holds an earlier {kind} (never any other folder)")
    if resume:
        p.add_argument("--resume", action="store_true",
                       help="continue the interrupted run of --out from its last checkpoint (same config)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def _block_options(p: argparse.ArgumentParser, after: str) -> None:
    """``--backend`` and ``--block-size``: where a command's pairs are played (``adhoc.distributed.blocks.player``;
    ``after``: what the ``ray.KEY=VALUE`` overrides follow on the command line)."""
    p.add_argument("--backend", choices=["local", "ray"],
                   help=f"ray: blocks of pairs on Ray workers (ray.address=..., ray.workers=N after {after})")
    p.add_argument("--block-size", type=int, metavar="T",
                   help="play T x T blocks of pairs, each seeded by (seed, block): the same returns on any backend "
                        "and number of workers (default: 32 on Ray; one stream locally)")


def build_parser() -> argparse.ArgumentParser:
    from adhoc import __version__

    parser = _Parser(prog="adhoc", description="Population-based ad hoc coordination with LM policies.",
                                     epilog="Every command that reads a config takes key=value overrides after it.")
    parser.add_argument("--version", action="version", version=f"adhoc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _training_commands(sub)
    _inspection_commands(sub)
    _people_commands(sub)
    return parser


def _training_commands(sub) -> None:
    """train-population, train-learner, evaluate, crossplay, sweep."""
    p = sub.add_parser("train-population", help="train a population of LoRA partner strategies",
                       usage="adhoc train-population [-h] CONFIG [key=value ...] [--out DIR] [options]")
    p.add_argument("config", nargs="?", metavar="CONFIG", help="YAML config, e.g. configs/lever-selfplay.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. population.size=4")
    p.add_argument("--out", help="population folder to write (default runs/<game>-<method>-seed<S>-<time>-<id>)")
    _write_options(p, "population", resume=True)
    p.add_argument("--crossplay-episodes", type=int, default=64, metavar="K",
                   help="end with a cross-play report of the new population, K episodes per pair (0: skip)")
    p.set_defaults(func=_train_population)

    p = sub.add_parser("train-learner", help="train a robust learner against frozen partner populations (PSRO loop)")
    p.add_argument("config", help="YAML config, e.g. configs/lever-learner.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides; partners=DIR, DIR:member[,member] or scripted:GAME[:a,b] (repeatable) names the partners "
                        "(population folders, or the scripted teachers of the config's game), solver=NAME the meta-solver")
    p.add_argument("--out", help="learner population folder to write (default runs/<game>-learner-<solver>-seed<S>-<time>-<id>); "
                                 "with a learners: list, the folder of one population per slot, OUT/<name>")
    _write_options(p, "population (with a learners: list: an earlier learners: output)", resume=True)
    p.set_defaults(func=_train_learner)

    p = sub.add_parser("evaluate", help="an agent's returns with (held-out) partner populations: mean, worst case, regret")
    p.add_argument("agent", metavar="AGENT", help="population folder holding the agent (e.g. a train-learner output)")
    p.add_argument("--partners", action="append", required=True, metavar="POP", help="partner population folder (DIR:a,b: those members), or scripted:GAME[:a,b] (the game's scripted teachers); repeatable")
    p.add_argument("--member", help="the agent's member name (default: the population's first member)")
    p.add_argument("--episodes", type=int, default=256, metavar="K", help="episodes per partner and seating (default 256)")
    p.add_argument("--out", help="output folder (default runs/evaluate-<AGENT>-<time>-<id>)")
    _write_options(p, "evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress (shown only on a terminal)")
    p.add_argument("--mixture", action="store_true",
                   help="evaluate the mixture over members stored in AGENT's manifest (train-learner: the maximin "
                        "mixture over its snapshots): return with partner j = sum_k x_k G(k, j)")
    p.add_argument("--seat", choices=["0", "1", "both"],
                   help="the agent's seat (default: the seat a train-learner agent was trained in, else both)")
    p.add_argument("--bound", action="store_true",
                   help="repeated games: also the best any history-dependent policy can do with these partners "
                        "(by backward induction over the game tree; seconds to a minute)")
    p.add_argument("--exploitability", action="store_true",
                   help="OpenSpiel games: also OpenSpiel's NashConv of the agent (member or --mixture) in both seats, "
                        "and on a zero-sum game its exploitability (tabulated at every information state)")
    p.add_argument("--transcript", choices=["rounds", "partner_last", "swapped", "padded"],
                   help="repeated games: render the history another way than in training (a probe of what the "
                        "agent reads: swapped seats' order, or filler words of random length)")
    p.add_argument("--seed", type=int, default=0)
    _block_options(p, "AGENT")
    p.set_defaults(func=_evaluate, overrides=[])

    p = sub.add_parser("crossplay", help="cross-play matrix, metrics, conventions and report of populations")
    p.add_argument("populations", nargs="+", metavar="POP", help="population folders (several: compared across)")
    p.add_argument("--episodes", type=int, default=64, metavar="K", help="episodes per ordered pair (default 64)")
    p.add_argument("--out", help="output folder (default runs/crossplay-<POP>-<time>-<id>)")
    _write_options(p, "crossplay")
    p.add_argument("--quiet", action="store_true", help="no progress (shown only on a terminal)")
    p.add_argument("--threshold", type=float, default=0.5, help="normalised cross-play for two members to share a convention")
    p.add_argument("--seed", type=int, default=0)
    _block_options(p, "the populations")
    p.set_defaults(func=_crossplay, overrides=[])

    p = sub.add_parser("sweep", help="train every (config, seed) as a population, locally or on Ray; one table",
                       usage="adhoc sweep [-h] CONFIG [CONFIG ...] --seeds S [S ...] [key=value ...] [--out DIR]")
    p.add_argument("configs", nargs="+", metavar="CONFIG [key=value]",
                   help="population configs, then overrides applied to each (backend=ray, ray.gpus_per_worker=0.25, ...)")
    p.add_argument("--seeds", nargs="+", required=True, metavar="S", help="population seeds: one trial per config and seed")
    p.add_argument("--out", metavar="DIR", help="sweep folder (default runs/sweep-<time>-<id>); rerun with it to finish a sweep")
    p.add_argument("--episodes", type=int, default=64, metavar="K", help="cross-play episodes per pair for the table")
    p.add_argument("--retries", type=int, default=2, metavar="R",
                   help="retries of a failed trial, each from its checkpoint (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress (shown only on a terminal)")
    p.set_defaults(func=_sweep, overrides=[])


def _inspection_commands(sub) -> None:
    """validate, list, populations, pretrain-base, base-card."""
    p = sub.add_parser("validate", help="check configs without running them (--print: show the resolved config)",
                       usage="adhoc validate [-h] [--print] CONFIG [CONFIG ...] [key=value ...]")
    p.add_argument("configs", nargs="+", metavar="CONFIG [key=value]",
                   help="YAML configs, then config overrides applied to each (e.g. train.lr=0.02, game=cmg-h)")
    p.add_argument("--print", action="store_true", help="print each resolved config (YAML) instead of ok")
    # deprecated, hidden from --help: `--set key=value` is `key=value` (to be removed once no caller uses it)
    p.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    p.set_defaults(func=_validate, overrides=[])

    p = sub.add_parser("list", help="the registered games, methods, solvers and scripted partners")
    p.add_argument("what", nargs="?", choices=LISTABLE, help="what to list (alone: what can be listed)")
    p.add_argument("game", nargs="?", metavar="GAME", help="with scripted: only this game's")
    p.set_defaults(func=_list)

    p = sub.add_parser("populations", help="inspect saved populations")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = psub.add_parser("show", help="print a population's summary")
    show.add_argument("population", metavar="DIR")
    show.set_defaults(func=_populations_show)
    check = psub.add_parser("check", help="load every member onto the base model, verifying its fingerprint")
    check.add_argument("population", metavar="DIR")
    check.add_argument("--base", help="base model to check against (default: the one the manifest names)")
    check.add_argument("--quiet", action="store_true", help="no progress (shown only on a terminal)")
    check.set_defaults(func=_populations_check)
    ls = psub.add_parser("ls", help="the populations under folders: game, method, size, base model, cross-play",
                         epilog="A population whose manifest cannot be read or is invalid is one line on stderr "
                                "(its folder and why); the rest are listed, then the exit code is 2.")
    ls.add_argument("folders", nargs="*", metavar="DIR", help="folders to look in (default: runs and populations)")
    ls.set_defaults(func=_populations_ls)

    p = sub.add_parser("pretrain-base", help="pretrain a base LM on task-agnostic in-context data (a prior for copying)")
    p.add_argument("--arch", default="tiny", help="tiny | small, then ,key=N for hidden, ffn, layers, heads "
                                                 "(e.g. tiny,hidden=128,ffn=256; default tiny, builtin:tiny's shape)")
    p.add_argument("--data", default="repeat",
                   help="sources NAME[=WEIGHT], comma-separated: repeat, recall, repeat-small, recall-small, "
                        "text:PATH (default: repeat, builtin:copy's recipe)")
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps (default 1500; 0: the random init)")
    p.add_argument("--batch", type=int, default=32, help="sequences per step (default 32)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps (default 100)")
    p.add_argument("--loss", choices=["all", "predictable"], default="predictable",
                   help="predictable (default): next-token loss only where the context determines the token (every "
                        "position of text); all: at every position")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights' init and of the data (default 0)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: deterministic, two runs fit 2 cores)")
    p.add_argument("--eval-every", type=int, default=250, help="held-out copy accuracy every N steps (default 250)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="checkpoint every N steps (default 250; 0: only on a stop)")
    p.add_argument("--out", required=True, help="the folder to write: an ordinary Hugging Face model folder")
    _write_options(p, "base", resume=True)
    p.set_defaults(func=_pretrain_base)

    p = sub.add_parser("base-card", help="what a base model brings: held-out copy and recall accuracy, its card")
    p.add_argument("base", metavar="BASE", help="builtin:NAME, a folder written by pretrain-base, or any HF causal LM "
                                                "with single-token digits")
    p.set_defaults(func=_base_card)


def _people_commands(sub) -> None:
    """play, data, train-proxy, serve: people and their recorded play."""
    p = sub.add_parser("play", help="play a game yourself with a population member or scripted partner (recorded)")
    p.add_argument("config", help="YAML config naming the game, e.g. configs/lever-selfplay.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. game.n_levers=4")
    p.add_argument("--partner", required=True, metavar="POP[:MEMBER]",
                   help="population folder (a member drawn per episode, or :MEMBER) or scripted:GAME[:NAME]")
    p.add_argument("--seat", type=int, default=0, choices=[0, 1], help="your seat (default 0)")
    p.add_argument("--episodes", type=int, default=5, metavar="K", help="episodes to play (default 5)")
    p.add_argument("--db", help="recording database (default a new runs/play-<time>-<id>.sqlite; an existing "
                                "recording is appended to)")
    p.add_argument("--participant", help="your participant id (a plain name; default terminal)")
    p.add_argument("--human", metavar="scripted:GAME:NAME",
                   help="let a scripted strategy play your seat (no questions): recordings of a known strategy")
    p.add_argument("--seed", type=int, help="seed of the partner's and the game's randomness (default: fresh)")
    p.set_defaults(func=_play)

    p = sub.add_parser("data", help="recorded play: export it, count it")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = dsub.add_parser("export", help="print every recorded step as one JSON object per line")
    export.add_argument("db", metavar="DB")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(func=_data)
    stats = dsub.add_parser("stats", help="sessions, participants, episodes, steps, mean return per partner")
    stats.add_argument("db", metavar="DB")
    stats.set_defaults(func=_data)
    imp = dsub.add_parser("import", help="convert published human play into a recording: overcooked-human, the "
                                         "human-human trials of Carroll et al. 2019 (extra: .[overcooked])")
    imp.add_argument("dataset", choices=["overcooked-human"])
    imp.add_argument("--split", required=True, choices=["train", "test"])
    imp.add_argument("--layout", required=True, help="cramped_room, asymmetric_advantages, coordination_ring, "
                                                     "forced_coordination (random0), counter_circuit_o_1order (random3)")
    imp.add_argument("--db", required=True, help="recording database to write (a new file, or a recording to append to)")
    imp.add_argument("--horizon", type=int, default=400, help="steps per episode, as game.horizon (default 400)")
    imp.add_argument("--file", help="the trials' pickle (default: the one the overcooked-ai package ships)")
    imp.set_defaults(func=_data)

    p = sub.add_parser("train-proxy", help="behaviour-clone recorded play into LoRA members (a proxy population)")
    p.add_argument("recording", metavar="DB_OR_JSONL", help="recording database or its JSONL export")
    p.add_argument("--out", help="population folder to write (default runs/proxy-<DB>-<time>-<id>)")
    p.add_argument("--game", help="the game to clone when the recording holds several")
    p.add_argument("--pooled", action="store_true", help="one member from everyone's play (default: one per participant)")
    p.add_argument("--base", default="builtin:tiny", help="base model (default builtin:tiny)")
    p.add_argument("--lora-rank", type=int, default=4)
    p.add_argument("--iterations", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=256, help="decisions per member per step (default 256)")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of each participant's episodes held out (0.2)")
    p.add_argument("--heldout", metavar="DB_OR_JSONL", help="score every member on this recording of the same game "
                                                            "instead (other people: a dataset's test split)")
    p.add_argument("--min-decisions", type=int, default=1, metavar="N",
                   help="a member per participant only for those with at least N decisions (default 1)")
    p.add_argument("--seed", type=int, default=0)
    _write_options(p, "population")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_proxy)

    p = sub.add_parser("serve", help="the play of adhoc play in a browser, for a human study (extra: .[serve])")
    p.add_argument("--partners", nargs="+", required=True, metavar="POP",
                   help="partners (population folders, POP:MEMBER, scripted:GAME:NAME), met in a counterbalanced order")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: every one)")
    p.add_argument("--db", help="recording database (default a new runs/play-<time>-<id>.sqlite; an existing "
                                "recording is appended to)")
    p.add_argument("--episodes-per-partner", type=int, default=3, metavar="K",
                   help="episodes each participant plays with each partner (default 3)")
    p.add_argument("--seat", type=int, default=0, choices=[0, 1], help="the participants' seat (default 0)")
    p.add_argument("--config", help="YAML config naming the game (default: the first population's game)")
    p.add_argument("--seed", type=int, help="seed of the partners' and the game's randomness (default: fresh)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="a public origin (https://study.example.org) a reverse proxy serves the study at; "
                        "repeatable (default: only this server's own address)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="IP",
                   help="a reverse proxy's address (or network) whose X-Forwarded-For names the client the rate "
                        "limits count; repeatable (default: none, the header is ignored)")
    p.add_argument("--start-limit", type=int, default=10, metavar="N",
                   help="sessions one client address may start per minute (default 10)")
    p.set_defaults(func=_serve, overrides=[])


# ---------------------------------------------------------------------------- numeric options
MAX_BLOCK_SIZE = 4096  # --block-size: a T x T block of pairs is one rollout batch
MAX_RETRIES = 100
MAX_PORT = 65535
EPISODE_BYTES = 1 << 10  # at least ~1 KiB of rollout state per episode played in one batch (adhoc.config._row_bytes)


def _option_ranges() -> dict[tuple[str | None, str], tuple]:
    """(command or None: any, dest) -> (Range, what a value above the limit would take, or None). Checked by
    ``check_options`` before any work; argparse has already checked the types."""
    from adhoc.params import (MAX_CPU_THREADS, MAX_EVAL_EPISODES, MAX_ITERATIONS, MAX_LORA_RANK, MAX_LR,
                              MAX_ROLLOUT_ROWS, MAX_SEED, Range, _bytes)

    def episodes(v):
        return f" (playing them in one batch would take at least {_bytes(v * EPISODE_BYTES)})"

    return {
        (None, "seed"): (Range(0, MAX_SEED, hi_open=True), None),
        (None, "episodes"): (Range(2, MAX_EVAL_EPISODES, why="the statistics need 2"), episodes),
        ("play", "episodes"): (Range(1, MAX_EVAL_EPISODES), episodes),
        (None, "crossplay_episodes"): (Range(0, MAX_EVAL_EPISODES, why="0: skip"), episodes),
        (None, "episodes_per_partner"): (Range(1, MAX_EVAL_EPISODES), episodes),
        (None, "block_size"): (Range(0, MAX_BLOCK_SIZE, why="0: one stream"),
                               lambda v: f" (one block's batch would take at least {_bytes(v * v * EPISODE_BYTES)})"),
        (None, "threshold"): (Range(0, 1), None),
        (None, "retries"): (Range(0, MAX_RETRIES), None),
        (None, "steps"): (Range(0, MAX_ITERATIONS), None),
        (None, "iterations"): (Range(1, MAX_ITERATIONS), None),
        (None, "warmup"): (Range(0, MAX_ITERATIONS), None),
        (None, "eval_every"): (Range(1, MAX_ITERATIONS), None),
        (None, "checkpoint_every"): (Range(0, MAX_ITERATIONS, why="0: only on a stop"), None),
        (None, "batch"): (Range(1, MAX_ROLLOUT_ROWS), lambda v: f" (one batch would take at least {_bytes(v * EPISODE_BYTES)})"),
        (None, "seq_len"): (Range(16, 2048, why="the built-in bases' positions"), None),
        (None, "lr"): (Range(0, MAX_LR, lo_open=True), None),
        (None, "threads"): (Range(1, MAX_CPU_THREADS), None),
        (None, "lora_rank"): (Range(1, MAX_LORA_RANK), None),
        (None, "holdout"): (Range(0, 1, hi_open=True), None),
        (None, "port"): (Range(1, MAX_PORT), None),
    }


def check_options(args: argparse.Namespace) -> None:
    """One UserError line for a numeric option out of its range, NaN or infinite, before any work."""
    import math

    from adhoc.params import ConfigError

    ranges = _option_ranges()
    for (command, dest), (rng, note) in ranges.items():
        if command not in (None, args.command) or (command is None and (args.command, dest) in ranges):
            continue
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool):
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, {rng.text()} (got {value})")
        try:
            rng.check(flag, value, note(value) if note and rng.hi is not None and value > rng.hi else "")
        except ConfigError as exc:
            raise UserError(str(exc).removeprefix("config error: ")) from None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``adhoc COMMAND: error: ...``, exit code 2), as every user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (`--out DIR game.n_levers=7`)
    if extra and isinstance(getattr(args, "overrides", None), list) and not any(e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        check_options(args)
        code = args.func(args)
        sys.stdout.flush()
        if isinstance(code, int):
            return code
    except UserError as exc:
        print(f"adhoc: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"adhoc: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("adhoc: interrupted (nothing was published; a run keeps its last checkpoint for --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `adhoc ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
    except OSError as exc:  # a full disk, a folder that became read-only, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"adhoc: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
