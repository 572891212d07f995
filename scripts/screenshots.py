"""Screenshots for docs/people.md: ``adhoc serve`` on the lever, repeated lever, iterated prisoner's dilemma,
warehouse and Overcooked pages (rules shown, the game drawn, after a move or a few), and ``adhoc play`` in a
terminal. Starts each server on a free loopback port with the system Chromium (``.[serve]`` and Debian's
``chromium``), writes ``docs/img/serve-<name>.png`` and stops the server; plays the terminal session in a
pseudo-terminal (pexpect, the dev extra) with scripted input and renders its exact text as
``docs/img/play-terminal.png``. The databases go to a temporary folder; so does Overcooked's partner, a proxy
cloned first from the published cramped_room trials (``.[overcooked]``; import and a short training: about 3
minutes on 2 busy cores).

    python scripts/screenshots.py                      # all six
    python scripts/screenshots.py overcooked terminal  # those named (SETUPS, or terminal)
"""

from __future__ import annotations

import html
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {  # name -> serve arguments, the actions to click (by their text) before the screenshot
    "lever": (["--partners", str(ROOT / "populations/lever-selfplay"), "--config",
               str(ROOT / "configs/lever-selfplay.yaml")], ["3"]),
    "repeated-lever": (["--partners", "scripted:repeated:stubborn-2", "--config",
                        str(ROOT / "configs/repeated-lever-selfplay.yaml"), "--seat", "1"], ["0", "2"]),
    "ipd": (["--partners", "scripted:repeated:tit-for-tat", "--config", str(ROOT / "configs/ipd-selfplay.yaml")],
            ["D", "C"]),
    "warehouse": (["--partners", "scripted:warehouse:direct-rotate", "--config",
                   str(ROOT / "configs/warehouse-selfplay.yaml"), "game.width=5", "game.height=4", "game.moves=2",
                   "--seat", "0"], ["left"]),
    "overcooked": (["--partners", "{tmp}/overcooked-proxy:proxy-pooled", "--seat", "1"],
                   ["right", "pick", "left", "up", "pick", "right"]),  # an onion into the pot; back for another
}
PREPARE = {  # name -> adhoc commands run first ({tmp}: the temporary folder)
    "overcooked": [["data", "import", "overcooked-human", "--split", "train", "--layout", "cramped_room",
                    "--db", "{tmp}/overcooked-human.sqlite"],
                   ["train-proxy", "{tmp}/overcooked-human.sqlite", "--pooled", "--iterations", "40", "--quiet",
                    "--out", "{tmp}/overcooked-proxy"]],
}
# adhoc play in a terminal: the command as typed (in a folder where configs/ and populations/ are the
# repository's), then what is typed at each prompt
TERMINAL = (["play", "configs/lever-selfplay.yaml", "--partner", "populations/lever-selfplay:member-02",
             "--episodes", "2", "--seed", "1", "--db", "study.sqlite"], ["4", "6"])  # then the lever member-02 played
COLUMNS = 100  # the terminal's width


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args: list[str], db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "adhoc.cli", "serve", *args, "--port", str(port), "--db", str(db),
                             "--seed", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"adhoc serve {' '.join(args)} exited with code {proc.returncode}")
            time.sleep(0.1)
    proc.kill()
    sys.exit("adhoc serve did not answer")


def terminal_text(folder: Path) -> str:
    """``TERMINAL`` played in a pseudo-terminal in ``folder``: everything the terminal shows, typing included."""
    import pexpect

    for name in ("configs", "populations"):
        (folder / name).symlink_to(ROOT / name)
    args, typed = TERMINAL
    child = pexpect.spawn(sys.executable, ["-m", "adhoc.cli", *args], cwd=str(folder), encoding="utf-8",
                          timeout=300, dimensions=(50, COLUMNS), env={**os.environ, "PYTHONPATH": str(ROOT)})
    child.logfile_read = shown = io.StringIO()
    for answer in typed:
        child.expect("your move")
        child.expect(": ")
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    if child.exitstatus != 0:
        sys.exit(f"adhoc {' '.join(args)} exited with code {child.exitstatus}:\n{shown.getvalue()}")
    return f"$ adhoc {' '.join(args)}\n" + shown.getvalue().replace("\r\n", "\n")


def terminal_page(text: str) -> str:
    """A page showing ``text`` as a terminal does: light on dark, monospace, wrapped at ``COLUMNS``."""
    return ("<!doctype html><meta charset='utf-8'><style>body { margin: 0; } pre { display: inline-block; margin: 0; "
            f"padding: 12px 16px; width: {COLUMNS}ch; white-space: pre-wrap; overflow-wrap: anywhere; "
            "background: #1e1e1e; color: #e6e6e6; font: 13px/1.35 'DejaVu Sans Mono', monospace; }</style>"
            f"<pre>{html.escape(text)}</pre>")


def shrink(path: Path) -> None:
    """``path`` rewritten with a palette of 48 colours (text on flat backgrounds: a few tens of KB)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=48)
    small.save(path, optimize=True)


def adhoc(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        sys.exit(f"adhoc {' '.join(args)} exited with code {proc.returncode}:\n{proc.stdout}{proc.stderr}")


def main(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    unknown = [n for n in names if n not in SETUPS and n != "terminal"]
    if unknown:
        sys.exit(f"no screenshot {unknown[0]!r} (names: {', '.join(SETUPS)}, terminal)")
    names = names or [*SETUPS, "terminal"]
    out = ROOT / "docs" / "img"
    out.mkdir(exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for name, (args, clicks) in SETUPS.items():
            if name not in names:
                continue
            for command in PREPARE.get(name, []):
                adhoc([a.format(tmp=tmp) for a in command])
            proc, url = serve([a.format(tmp=tmp) for a in args], Path(tmp) / f"{name}.sqlite")
            try:
                page = browser.new_page(viewport={"width": 820, "height": 900})
                page.goto(url)
                page.fill("#participant", "P01")
                page.check("#agree")
                page.click("#begin")
                page.wait_for_selector("#play:not(.hidden) button.action")
                for text in clicks:
                    status = page.inner_text("#status")
                    page.click(f"button.action[data-text='{text}']")
                    page.wait_for_function("s => document.getElementById('status').innerText !== s", arg=status)
                page.locator("body").screenshot(path=str(out / f"serve-{name}.png"))  # cropped to the page
                shrink(out / f"serve-{name}.png")
                print(f"wrote docs/img/serve-{name}.png")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        if "terminal" in names:
            folder = Path(tmp) / "terminal"
            folder.mkdir()
            page = browser.new_page()
            page.set_content(terminal_page(terminal_text(folder)))
            page.locator("pre").screenshot(path=str(out / "play-terminal.png"))
            shrink(out / "play-terminal.png")
            print("wrote docs/img/play-terminal.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
