"""Screenshots of ``adhoc serve`` for docs/people.md: the lever, repeated lever and warehouse pages, rules shown,
after a move or two. Starts each server on a free loopback port with the system Chromium (``.[serve]`` and
Debian's ``chromium``), writes ``docs/img/serve-<game>.png`` and stops the server; the databases go to a
temporary folder.

    python scripts/screenshots.py
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {  # name -> serve arguments, moves to play before the screenshot
    "lever": (["--partners", str(ROOT / "populations/lever-selfplay"), "--config",
               str(ROOT / "configs/lever-selfplay.yaml")], 1),
    "repeated-lever": (["--partners", "scripted:repeated:stubborn-2", "--config",
                        str(ROOT / "configs/repeated-lever-selfplay.yaml"), "--seat", "1"], 2),
    "warehouse": (["--partners", "scripted:warehouse:direct-rotate", "--config",
                   str(ROOT / "configs/warehouse-selfplay.yaml"), "--seat", "0"], 2),
}


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


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs" / "img"
    out.mkdir(exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for name, (args, moves) in SETUPS.items():
            proc, url = serve(args, Path(tmp) / f"{name}.sqlite")
            try:
                page = browser.new_page(viewport={"width": 900, "height": 900})
                page.goto(url)
                page.fill("#participant", "P01")
                page.check("#agree")
                page.click("#begin")
                page.wait_for_selector("#play:not(.hidden) button.action")
                for _ in range(moves):
                    status = page.inner_text("#status")
                    page.locator("button.action").first.click()
                    page.wait_for_function("s => document.getElementById('status').innerText !== s", arg=status)
                page.screenshot(path=str(out / f"serve-{name}.png"), full_page=True)
                print(f"wrote docs/img/serve-{name}.png")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        browser.close()


if __name__ == "__main__":
    main()
