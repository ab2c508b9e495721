"""Studio's first paint: the Tools page with 50 tools, in Debian's Chromium (headless).

    .venv/bin/python bench/bench_studio.py [--runs 30] [--tools 50]

The server (a subprocess: `serve_workbench` over HTTP with Studio, as `workbench serve` runs
it) serves `--tools` tools from 5 sources, with schemas of every shape the form generator
handles. The browser logs in once through the form, then loads /ui/tools `--runs` times:
  cold   a new browser context each time (no cache: every asset fetched)
  warm   reloads in one context (assets revalidated by ETag: 304s)
and reports, from the navigation's start, first contentful paint (the browser's own paint
timing) and "listed": the moment all tools are in the list (a MutationObserver installed
before the page's scripts run). Target (DESIGN.md): first paint < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SOURCES = 5


def serve(port: int, tools: int) -> None:
    """Run the server (`bench_studio.py --serve PORT TOOLS`, token from $WORKBENCH_TOKEN)."""
    import anyio

    from servers import ServeSettings, serve_workbench
    from servers.studio import StudioContext, studio_app
    from workbench import CompositeWorkbench, FunctionTool, StaticWorkbench

    def make(i: int) -> FunctionTool:
        kind = i % 4

        async def add(a: int, b: int = 2) -> int:
            return a + b

        async def search(query: str, limit: int = 10, mode: str = "fast", tags: list[str] | None = None) -> str:
            return query

        async def configure(options: dict[str, Any], enabled: bool = True) -> str:
            return "ok"

        async def run(code: str, timeout: float | None = None) -> str:
            return code

        fn = (add, search, configure, run)[kind]
        return FunctionTool(fn, name=f"{fn.__name__}_{i}",
                            description=f"Tool number {i}: a {fn.__name__} with a schema of its kind.\n\nMore text.")

    per_source = [[make(i) for i in range(s, tools, SOURCES)] for s in range(SOURCES)]
    workbench = CompositeWorkbench({f"source{s}": StaticWorkbench(t, name=f"source{s}")
                                    for s, t in enumerate(per_source)})
    settings = ServeSettings(transport="http", port=port, auth_token=os.environ["WORKBENCH_TOKEN"], log_json=False)

    async def main() -> None:
        async with workbench:
            await serve_workbench(workbench, settings, studio=lambda server, verifier: studio_app(
                StudioContext(server, verifier=verifier)))

    anyio.run(main)


LISTED = """
(() => {
  const want = %d;
  const seen = () => document.querySelectorAll('.tool-list a').length >= want;
  new MutationObserver((_, observer) => {
    if (seen()) { window.__listed = performance.now(); observer.disconnect(); }
  }).observe(document, {childList: true, subtree: true});
})();
"""


def measure(page: Any, url: str, tools: int) -> tuple[float, float]:
    page.goto(url, wait_until="load")
    if tools:
        page.wait_for_function("() => window.__listed !== undefined", timeout=10_000)
    fcp = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN")
    listed = page.evaluate("() => window.__listed ?? NaN") if tools else float("nan")
    return float(fcp), float(listed)


def summary(name: str, samples: list[tuple[float, float]]) -> str:
    fcp = sorted(s[0] for s in samples if s[0] == s[0])  # NaN (no such paint) is left out
    listed = sorted(s[1] for s in samples if s[1] == s[1]) or [float("nan")]

    def p(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return (f"| {name:10} | {statistics.median(fcp):7.1f} | {p(fcp, 0.9):7.1f} | "
            f"{statistics.median(listed):10.1f} | {p(listed, 0.9):10.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tools", type=int, default=50)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "WORKBENCH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(args.tools)], env=env,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx2

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            login = browser.new_context()
            page = login.new_page()
            page.goto(f"{base}/ui/login?next=/ui/tools")
            page.get_by_label("Token").fill(token)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/ui/tools")
            assert page.locator(".tool-list a").count() == args.tools
            cookies = login.cookies()
            login.close()

            def cold(url: str, tools: int) -> list[tuple[float, float]]:
                samples = []
                for _ in range(args.runs):
                    context = browser.new_context()
                    context.add_cookies(cookies)
                    context.add_init_script(LISTED % tools)
                    samples.append(measure(context.new_page(), url, tools))
                    context.close()
                return samples

            def warm(url: str, tools: int) -> list[tuple[float, float]]:
                context = browser.new_context()
                context.add_cookies(cookies)
                context.add_init_script(LISTED % tools)
                page = context.new_page()
                measure(page, url, tools)  # fills the cache
                samples = [measure(page, url, tools) for _ in range(args.runs)]
                context.close()
                return samples

            # The floor on this machine: the login page (its HTML and the stylesheet, no script).
            rows = [("login cold", cold(f"{base}/ui/login", 0)), ("login warm", warm(f"{base}/ui/login", 0)),
                    ("tools cold", cold(f"{base}/ui/tools", args.tools)),
                    ("tools warm", warm(f"{base}/ui/tools", args.tools))]
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"Tools page, {args.tools} tools from {SOURCES} sources, {args.runs} loads each; ms from navigation start")
    print("| page       | FCP p50 | FCP p90 | listed p50 | listed p90 |")
    print("|------------|---------|---------|------------|------------|")
    for name, samples in rows:
        print(summary(name, samples))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
