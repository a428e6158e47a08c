"""The studio's video screenshots in docs/studio/: a video job painting frame by frame (video-live.png) and
the gallery with it beside an image job (video-gallery.png).

The clip is a pan across the bundled Tübingen photo (36 frames, 320x240, 12 fps), painted by the bundled
Starry Night model through the page, in a real ``serve`` app driven by Playwright with Debian's chromium.

    PYTHONPATH=. python benchmarks/studio_video_screens.py [--out docs/studio]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

# Outputs are registered and keys looked up in the user's folders: this script keeps its own.
_SANDBOX = Path(tempfile.mkdtemp(prefix="brushwork-screens-"))
os.environ.setdefault("BRUSHWORK_DATA_DIR", str(_SANDBOX / "data"))
os.environ.setdefault("BRUSHWORK_CONFIG_DIR", str(_SANDBOX / "config"))

import av  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 320, 240, 36


def pan_clip(path: Path) -> Path:
    photo = Image.open(ROOT / "brushwork/examples/tubingen.jpg").convert("RGB")
    wide = photo.resize((480, round(480 * photo.height / photo.width)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(FRAMES):
            x, y = round(i * (wide.width - WIDTH) / (FRAMES - 1)), (wide.height - HEIGHT) // 2
            frame = av.VideoFrame.from_image(wide.crop((x, y, x + WIDTH, y + HEIGHT)))
            frame.pts, frame.time_base = i, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def done(page) -> None:
    page.wait_for_function("(s => s && s.textContent === 'done')(document.querySelector('#live-status'))",
                           timeout=300_000)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs/studio"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = pan_clip(_SANDBOX / "tubingen-pan.mp4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = StudioConfig(data_dir=_SANDBOX / "studio", preview_seconds=0.3)
    server = uvicorn.Server(uvicorn.Config(asgi_app(config), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"http://127.0.0.1:{port}/")
        page.select_option("#engine", "fast")  # an image job, so the gallery shows both kinds
        page.click("#submit")
        done(page)
        page.select_option("#engine", "video")
        page.select_option("#model", "starry_night-fast")
        page.set_input_files("#content-file", str(clip))
        page.click("#submit")
        page.wait_for_selector("#live-status")
        while page.text_content("#live-status") != "done":
            progress = float(page.get_attribute("#live-progress", "aria-valuenow") or 0)
            if 40 <= progress <= 80 and "/preview" in (page.get_attribute("#live-preview", "src") or ""):
                page.screenshot(path=str(out / "video-live.png"))
                break
            time.sleep(0.1)
        done(page)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("3")
        page.wait_for_selector(".card video")
        time.sleep(1.0)  # the posters load
        page.screenshot(path=str(out / "video-gallery.png"))
        browser.close()
    server.should_exit = True
    print(f"wrote {out / 'video-live.png'} and {out / 'video-gallery.png'}")


if __name__ == "__main__":
    main()
