"""A minimal driver of headless chromium over the DevTools protocol, standard library only.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands on its file
descriptor 3 and writes replies and events on descriptor 4, each message one JSON text
ended by a NUL byte: no websocket, no port. :class:`Browser` opens a page, evaluates
JavaScript in it and clicks with real mouse events (``Input.dispatchMouseEvent`` at an
element's centre, so the page's own listeners see a genuine click).

Used by tests/test_explain_page.py; tests only, not part of the package.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from typing import Any, Dict, List, Optional

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                         "google-chrome")) if p), None)


class BrowserError(RuntimeError):
    """The browser did not answer, or answered with an error."""


class Browser:
    """One headless chromium with a single page; a context manager (the process is
    ended and reaped on exit)."""

    def __init__(self, width: int = 1400, height: int = 900, timeout: float = 30.0) -> None:
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed")
        self.timeout = timeout
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        def at_3_and_4() -> None:
            # in the child: the two pipe ends at the descriptors chromium expects
            # (every other descriptor Python opened is close-on-exec already)
            import fcntl
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)   # out of the way of 3, 4
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", "--no-first-run", "--disable-extensions",
             f"--window-size={width},{height}", "--user-data-dir=" + self._profile(),
             "about:blank"],
            preexec_fn=at_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next = 0
        self.session: Optional[str] = None

    def _profile(self) -> str:
        import tempfile
        self._profile_dir = tempfile.mkdtemp(prefix="pybpf-chromium-")
        return self._profile_dir

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """End chromium and release the pipes and its profile directory."""
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", session=False, wait=False)
                except (BrowserError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile_dir, ignore_errors=True)

    # -- the protocol ------------------------------------------------------------------
    def _read_message(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 65536)
            if not chunk:
                raise BrowserError("chromium closed its pipe (did it start?)")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, *,
             session: bool = True, wait: bool = True) -> Dict[str, Any]:
        """Send one command (to the page's session unless ``session`` is false) and
        return its result; protocol errors raise :class:`BrowserError`."""
        self._next += 1
        msg: Dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    # -- pages -------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Open ``url`` in a new page and wait until it has loaded."""
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        deadline = time.monotonic() + self.timeout
        # a new page holds about:blank until the navigation commits: wait for the
        # document of ``url`` itself to be complete
        probe = "location.href === %s && document.readyState" % json.dumps(url)
        while self.evaluate(probe) != "complete":
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not finish loading")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        out = self.send("Runtime.evaluate", {"expression": expression,
                                             "returnByValue": True})
        if "exceptionDetails" in out:
            raise BrowserError(f"{expression[:60]}...: {out['exceptionDetails']}")
        return out["result"].get("value")

    def click(self, selector: str) -> None:
        """Scroll the element ``selector`` into view and click its centre with the mouse
        (pressed and released, left button)."""
        where = self.evaluate(
            "(function(){var e=document.querySelector(%s); if(!e) return null;"
            "e.scrollIntoView({block:'center'}); var r=e.getBoundingClientRect();"
            "return [r.left+r.width/2, r.top+r.height/2];})()" % json.dumps(selector))
        if where is None:
            raise BrowserError(f"no element matches {selector}")
        x, y = where
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                   "button": "left", "clickCount": 1})

    def panel_rows(self) -> List[Dict[str, Any]]:
        """The visits shown in ``#state-panel``: per visit its ``data-seq``, whether it is
        marked failed, and its register rows as ``{name: data-text}``."""
        return self.evaluate(
            "Array.from(document.querySelectorAll('#state-panel .visit[data-seq]'))"
            ".map(function(v){var regs={};"
            "v.querySelectorAll('tr[data-reg]').forEach(function(r){"
            "regs[r.getAttribute('data-reg')]=r.getAttribute('data-text');});"
            "return {seq:+v.getAttribute('data-seq'), failed:v.classList.contains('failed'),"
            "regs:regs, text:v.textContent};})")
