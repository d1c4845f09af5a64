#!/usr/bin/env python3
"""Drives the web_notes page in headless Chromium over WebDriver: adds two notes,
filters by tag, reloads (the notes are still there: IndexedDB), deletes one, and saves
a screenshot to docs/web-notes.png. Starts and stops its own static server and
chromedriver. Run after scripts/build-web-notes.sh; only the standard library is used.
"""
import base64
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE_DIR = os.path.join(ROOT, "examples", "web_notes")
SCREENSHOT = os.path.join(ROOT, "docs", "web-notes.png")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
TIMEOUT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"{}").get("value")


def wait_for(what, check):
    """Polls `check` until it returns a true value (the page works asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Browser:
    def __init__(self, driver):
        self.driver = driver
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=820,560"]}}}}
        self.session = request("POST", f"{driver}/session", caps)["sessionId"]
        self.base = f"{driver}/session/{self.session}"

    def quit(self):
        request("DELETE", self.base)

    def go(self, url):
        request("POST", f"{self.base}/url", {"url": url})

    def refresh(self):
        request("POST", f"{self.base}/refresh", {})

    def find_all(self, css):
        found = request("POST", f"{self.base}/elements", {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def find(self, css):
        return wait_for(css, lambda: (self.find_all(css) or [None])[0])

    def type(self, css, text):
        element = self.find(css)
        request("POST", f"{self.base}/element/{element}/clear", {})
        request("POST", f"{self.base}/element/{element}/value", {"text": text})

    def click(self, css):
        request("POST", f"{self.base}/element/{self.find(css)}/click", {})

    def click_element(self, element):
        request("POST", f"{self.base}/element/{element}/click", {})

    def text(self, element):
        return request("GET", f"{self.base}/element/{element}/text")

    def notes(self):
        return [self.text(e) for e in self.find_all("li.note .text")]

    def wait_notes(self, expected):
        wait_for(f"notes {expected}", lambda: self.notes() == expected)

    def screenshot(self, path):
        png = base64.b64decode(request("GET", f"{self.base}/screenshot"))
        with open(path, "wb") as f:
            f.write(png)


def main():
    if not os.path.exists(os.path.join(PAGE_DIR, "pkg", "web_notes.js")):
        sys.exit("build the page first: scripts/build-web-notes.sh")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=PAGE_DIR)
    handler.func.extensions_map[".wasm"] = "application/wasm"
    handler.func.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{server.server_address[1]}/index.html"

    port = free_port()
    chromedriver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    scratch = tempfile.mkdtemp(prefix="web-notes-")
    env = dict(os.environ, TMPDIR=scratch, XDG_CONFIG_HOME=os.path.join(scratch, "config"),
               XDG_CACHE_HOME=os.path.join(scratch, "cache"))
    driver_proc = subprocess.Popen([chromedriver, f"--port={port}"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = f"http://127.0.0.1:{port}"
    browser = None
    try:
        wait_for("chromedriver", lambda: request("GET", f"{driver}/status")["ready"])
        browser = Browser(driver)
        browser.go(page)
        browser.find('body[data-ready="true"]')
        browser.wait_notes([])

        browser.type("#text", "buy milk")
        browser.type("#tag", "home")
        browser.click("#add")
        browser.wait_notes(["buy milk"])
        browser.type("#text", "review the write pipeline")
        browser.type("#tag", "work")
        browser.click("#add")
        browser.wait_notes(["review the write pipeline", "buy milk"])

        # Filter by tag: a secondary-key query.
        browser.type("#filter", "work")
        browser.click("#apply-filter")
        browser.wait_notes(["review the write pipeline"])
        browser.click("#show-all")
        browser.wait_notes(["review the write pipeline", "buy milk"])

        # Reload: the notes come back from IndexedDB.
        browser.refresh()
        browser.find('body[data-ready="true"]')
        browser.wait_notes(["review the write pipeline", "buy milk"])
        shot = browser.screenshot(SCREENSHOT + ".tmp")

        # Delete one.
        rows = browser.find_all("li.note")
        target = [r for r in rows if "buy milk" in browser.text(r)]
        assert len(target) == 1, "one row holds the note to delete"
        button = request("POST", f"{browser.base}/element/{target[0]}/element",
                         {"using": "css selector", "value": "button.delete"})[ELEMENT]
        browser.click_element(button)
        browser.wait_notes(["review the write pipeline"])
        browser.refresh()
        browser.find('body[data-ready="true"]')
        browser.wait_notes(["review the write pipeline"])

        os.replace(SCREENSHOT + ".tmp", SCREENSHOT)
        print("web_notes: add, filter, reload, delete: ok; screenshot in docs/web-notes.png")
    except AssertionError:
        if browser is not None:
            status = browser.find_all("#status")
            print("page shows:", browser.notes(), "status:",
                  browser.text(status[0]) if status else None, file=sys.stderr)
        raise
    finally:
        if browser is not None:
            try:
                browser.quit()
            except Exception:
                pass
        driver_proc.terminate()
        driver_proc.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
        if os.path.exists(SCREENSHOT + ".tmp"):
            os.remove(SCREENSHOT + ".tmp")


if __name__ == "__main__":
    main()
