"""Rebuild docs/panels.png: the page's panels beyond the four answers, in headless
Chromium, over a lake the real pipeline wrote.

    .venv/bin/python docs/panels_png.py          # a minute or two; needs Java and Chromium

A generated fortnight of 6 meters (readings every 5 minutes) with one meter renamed
`<b>bold</b>` (shown as text) and one that stops reporting three hours before the
end (silent), replayed through a private Kafka broker on free ports into a temporary
lake; the page is served from it and the four answers are hidden for the picture.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meterlake.app.web import running  # noqa: E402
from meterlake.core.config import load_config  # noqa: E402
from meterlake.core.net import free_port  # noqa: E402
from tests.browser import chromium  # noqa: E402

OUT = ROOT / "docs" / "panels.png"
HIDE = """
for (const id of ["q1", "q2", "q3", "q4", "pick", "travel"]) {
  document.getElementById(id).style.display = "none";
}
"""
READY = """return ["plans", "bill", "health"].every((v) =>
    document.getElementById(v).dataset.state === "ready");"""


def meterlake(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "meterlake", *args], check=True, cwd=ROOT)


def readings(folder: Path) -> Path:
    month = folder / "month.csv"
    meterlake("generate", "--out", str(month), "--meters", "6", "--days", "12",
              "--cadence", "300", "--seed", "3")
    lines = month.read_text().splitlines()
    ids = sorted({line.split(";")[1] for line in lines[1:] if ";" in line})
    last = max(line.split(";")[0] for line in lines[1:] if ";" in line)
    quiet_from = last[:11] + f"{int(last[11:13]) - 3:02d}" + last[13:]
    kept = []
    for line in lines:
        parts = line.split(";")
        if len(parts) == 3 and parts[1] == ids[-1] and parts[0] > quiet_from:
            continue  # the last meter goes silent
        if len(parts) == 3 and parts[1] == ids[1]:
            line = f"{parts[0]};<b>bold</b>;{parts[2]}"
        kept.append(line)
    month.write_text("\n".join(kept) + "\n")
    return month


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meterlake-panels-") as tmp:
        folder = Path(tmp)
        port, controller = free_port(), free_port()
        common = ["--lake", str(folder / "lake"), "--bootstrap", f"127.0.0.1:{port}",
                  "--set", f"broker.home={folder / 'kafka'}", "--set", f"broker.port={port}",
                  "--set", f"broker.controller_port={controller}"]
        month = readings(folder)
        meterlake(*common, "kafka", "start")
        try:
            meterlake(*common, "replay", str(month))
        finally:
            meterlake(*common, "kafka", "stop")
        config = load_config(options={"lake.root": str(folder / "lake")})
        with running(config, "127.0.0.1", free_port()) as url, chromium(1400, 1500) as browser:
            browser.get(url)
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(browser, 120).until(lambda b: b.execute_script(READY))
            browser.execute_script(HIDE)
            browser.execute_script("window.dispatchEvent(new Event('resize'));")
            height = browser.execute_script("return document.documentElement.scrollHeight;")
            chrome = browser.execute_script("return window.outerHeight - window.innerHeight;")
            browser.set_window_size(1400, height + chrome + 20)
            WebDriverWait(browser, 10).until(lambda b: b.execute_script(
                "return window.innerHeight >= document.documentElement.scrollHeight;"))
            OUT.write_bytes(browser.get_screenshot_as_png())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
