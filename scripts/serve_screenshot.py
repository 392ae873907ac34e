"""Screenshots of the web explorer for the docs (docs/figures/serve.png, serve_feasible.png).

    python scripts/serve_screenshot.py

Starts ``microforge serve``'s server with the bundled model on a free loopback port, draws 4
samples for an equiaxed (ductile) target in Debian's headless chromium, and saves the page; then
asks for a strong and ductile target (YS 1150 MPa, EF 18 %), locks YS, moves to the nearest
feasible target, and saves the page again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from microforge.serve.explorer import Explorer
from microforge.serve.server import start_server

REPO = Path(__file__).resolve().parents[1]
TARGET = {"YS": 888, "TS": 989, "EF": 20, "RH": 32.4, "IT": 28.7, "DCS": 1414, "CFS": 0.251}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server, _ = start_server(Explorer("bundled:ti-sem-tiny", tmp), "127.0.0.1", 0)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            expect(page.locator("input[type=range]")).to_have_count(7)
            for name, value in TARGET.items():
                page.fill(f"#text-{name}", str(value))
            page.fill("#count", "4")
            page.click("#generate")
            expect(page.locator("img.micrograph")).to_have_count(4, timeout=120_000)
            page.wait_for_timeout(500)
            out = REPO / "docs" / "figures" / "serve.png"
            page.screenshot(path=str(out), full_page=True)
            page.fill("#text-YS", "1150")
            page.fill("#text-EF", "18")
            expect(page.locator("#feasible-YS")).to_have_text("no value keeps the others inside the hull")
            page.check("#lock-YS")
            page.click("#nearest")
            expect(page.locator("#moved")).to_contain_text("kept: YS")
            page.wait_for_timeout(500)
            page.screenshot(
                path=str(REPO / "docs" / "figures" / "serve_feasible.png"),
                clip={"x": 0, "y": 0, "width": 440, "height": 1000},
            )
            browser.close()
        server.shutdown()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
