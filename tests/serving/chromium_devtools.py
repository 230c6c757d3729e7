"""A headless Chromium driven over its DevTools protocol (CDP), enough for the page test.

Debian's ``chromium`` is started with ``--remote-debugging-port=0``; the port it
picked is read from ``DevToolsActivePort`` in its profile folder, and the page
target's WebSocket is driven with aiohttp (already a serving dependency), so no
browser download or driver package is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser to drive: ``$SDK_CHROMIUM`` or the first of ``CANDIDATES`` on PATH."""
    explicit = os.environ.get("SDK_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@contextlib.contextmanager
def headless_chromium(executable: str):
    """Start the browser on a fresh profile; yields the DevTools HTTP endpoint (``http://127.0.0.1:PORT``)."""
    with tempfile.TemporaryDirectory(prefix="sdk-chromium-") as profile:
        args = [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.exists() and active.read_text().strip()):
                if proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port within 60 s")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{active.read_text().split()[0]}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Page:
    """One page target: ``send`` a CDP command, ``evaluate`` JavaScript, ``wait_for`` a condition."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0

    async def send(self, method: str, **params: Any) -> dict:
        self._next_id += 1
        call_id = self._next_id
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:  # events arrive interleaved with answers; only the answer matters here
            message = json.loads((await self._ws.receive(timeout=60)).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (value := await self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s:.0f} s: {expression}")
            await asyncio.sleep(0.1)
        return value

    async def set_files(self, selector: str, paths: list[str]) -> None:
        """Choose ``paths`` in the file input at ``selector`` (fires its change event, as a user's choice does)."""
        root = await self.send("DOM.getDocument")
        node = await self.send("DOM.querySelector", nodeId=root["root"]["nodeId"], selector=selector)
        await self.send("DOM.setFileInputFiles", nodeId=node["nodeId"], files=paths)


@contextlib.asynccontextmanager
async def open_page(devtools_url: str):
    """The browser's first page target, as a ``Page``."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devtools_url}/json/list") as reply:
            targets = await reply.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024) as ws:
            yield Page(ws)
