"""Rebuild ``builtin:copy``, the pretrained base shipped in adhoc/lm/bases/copy, with the exact recipe it was
built with (the same as its card's ``arch``, ``data``, ``steps`` and ``seed``)::

    .venv/bin/python scripts/build_copy_base.py                 # writes runs/copy-base (about 5 min on one core)
    .venv/bin/python scripts/build_copy_base.py --install       # ... and copies its weights and card into the package

The run is ``adhoc pretrain-base`` with the arguments below, so ``--resume`` works as for that command. It is
deterministic for its seed on one machine; another CPU or torch build can round differently, so compare the
fingerprint this prints with the shipped card's before installing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "adhoc/lm/bases/copy"
RECIPE = ["--arch", "tiny", "--data", "repeat", "--loss", "predictable", "--steps", "1500", "--seed", "0"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/copy-base")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--install", action="store_true",
                        help="copy model.safetensors, card.json and README.md into adhoc/lm/bases/copy")
    args = parser.parse_args()
    from adhoc.cli import main as adhoc
    from adhoc.lm.base import read_card

    out = Path(args.out)
    if not (out / "card.json").is_file():
        code = adhoc(["pretrain-base", *RECIPE, "--out", str(out), *(["--resume"] if args.resume else [])])
        if code:
            return code
    built, shipped = read_card(str(out)), read_card("builtin:copy")
    print(f"built {built['fingerprint']}; shipped {shipped['fingerprint'] if shipped else '(none)'}")
    if args.install:
        SHIPPED.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "card.json", "README.md"):
            shutil.copyfile(out / name, SHIPPED / name)
        print(f"installed into {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
