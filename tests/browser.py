"""Headless Chromium with networking disabled, to look at reports as a user would."""
import os
import shutil
import subprocess
import tempfile

from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          # No network: every request goes to a closed local port and no host name resolves.
          "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def _chromium(*args):
    assert CHROMIUM, "Chromium is needed for the report tests: apt-get install chromium (make test does, as root)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True).stdout


def rendered_dom(path):
    """The page's DOM after Chromium has loaded and laid it out."""
    return _chromium("--dump-dom", f"file://{os.path.abspath(path)}")


def screenshot(path, png, width=1200, height=1400):
    """Takes a screenshot; returns the number of distinct colours in it (1 for a blank page)."""
    _chromium(f"--window-size={width},{height}", f"--screenshot={png}", f"file://{os.path.abspath(path)}")
    with Image.open(png) as image:
        assert image.size == (width, height)
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])
