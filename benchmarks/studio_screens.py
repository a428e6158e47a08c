"""The studio's screenshots in docs/studio/, at the sizes an artist works at: a real ``serve`` app on a
temporary data folder, Playwright driving Debian's chromium (1280x800), pictures of 384-512 px painted
from the bundled examples by Magenta's network, the bundled Starry Night model and a short
optimisation. Each PNG is reduced to a 256-colour palette to keep the folder small.

    PYTHONPATH=. python benchmarks/studio_screens.py [--out docs/studio] [--check DIR]

``--check DIR`` also writes shots that are only looked at, not kept: the canvas view in the dark theme
and at 1920x1080, the keys help, the picture scaled up; and in DIR/raw/ the kept shots before their palette.
The video shots come from ``benchmarks/studio_video_screens.py``.
About 3 minutes on two shared cores (175 s here): the live shot waits on an optimisation, the train shot on a
short training.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

# Outputs are registered and keys looked up in the user's folders: this script keeps its own.
_SANDBOX = Path(tempfile.mkdtemp(prefix="brushwork-screens-"))
os.environ.setdefault("BRUSHWORK_DATA_DIR", str(_SANDBOX / "data"))
os.environ.setdefault("BRUSHWORK_CONFIG_DIR", str(_SANDBOX / "config"))

import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brushwork/examples"
VIEWPORT = {"width": 1280, "height": 800}


class Shots:
    def __init__(self, out: Path, check: Path | None):
        self.out, self.check, self.written = out, check, []

    def take(self, page, name: str, keep: bool = True) -> None:
        folder = self.out if keep else self.check
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.mouse.move(2, 2)  # no hover effect on what is shown
        page.screenshot(path=str(path))
        if self.check and keep:  # as taken, to compare with the palette's
            (self.check / "raw").mkdir(parents=True, exist_ok=True)
            (self.check / "raw" / path.name).write_bytes(path.read_bytes())
        # A 256-colour palette: a screenshot's flat UI loses nothing visible, the paintings dither a little.
        image = Image.open(path).convert("RGB")
        image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            path, optimize=True
        )
        self.written.append(path)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KiB")


def key(page, name: str) -> None:
    """A studio shortcut (a focused form field would take the key)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(name)


def done(page, timeout_s: float = 600) -> None:
    page.wait_for_function("(s => s && s.textContent === 'done')(document.querySelector('#live-status'))",
                           timeout=timeout_s * 1000)  # fmt: skip


def pick_style(page, *names: str) -> None:
    """Exactly these paintings picked among the style picks."""
    for label in page.locator("label.pick:has(.style-pick)").all():
        name = label.locator("span").text_content()
        if label.locator("input").is_checked() != (name in names):
            label.click()


def queue(page, engine: str, photo: str, styles=(), model: str | None = None, **settings) -> None:
    page.select_option("#engine", engine)
    page.select_option("#content-ref", f"example:{photo}")
    if styles:
        pick_style(page, *styles)
    if model:
        page.select_option("#model", model)
    for name, value in settings.items():
        if page.locator(f"select#p-{name}").count():
            page.select_option(f"#p-{name}", str(value))
        else:
            page.fill(f"#p-{name}", str(value))
    page.click("#submit")
    page.wait_for_selector("#live-status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs/studio"))
    parser.add_argument("--check", help="a folder for shots only to look at (dark canvas, 1920x1080, keys help)")
    args = parser.parse_args()
    shots = Shots(Path(args.out), Path(args.check) if args.check else None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = StudioConfig(data_dir=_SANDBOX / "studio", preview_seconds=0.5)
    server = uvicorn.Server(uvicorn.Config(asgi_app(config), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("label.pick img")
        time.sleep(0.5)  # the thumbnails
        shots.take(page, "create")

        # Pictures for the gallery: Magenta's network (any painting) and the Starry Night model, at 512 px.
        queue(page, "adain", "tubingen.jpg", ["starry_night"], image_size=512)
        done(page)
        queue(page, "adain", "tubingen.jpg", ["shipwreck"], image_size=512)
        done(page)
        queue(page, "fast", "shipwreck.jpg", model="starry_night-fast", image_size=512)
        done(page)

        # Live: an optimisation (stylize, the lite0 network) painting at 384 px, caught half-way.
        queue(page, "stylize", "tubingen.jpg", ["starry_night"], backbone="lite0", image_size=384, iterations=120,
              style_weight=1000)  # fmt: skip
        page.wait_for_function("Number(document.querySelector('#live-progress').getAttribute('aria-valuenow')) >= 35"
                               " && (document.querySelector('#live-preview').getAttribute('src') || '')"
                               ".includes('/preview')", timeout=600_000)  # fmt: skip
        time.sleep(0.3)  # the preview's image loads
        shots.take(page, "live")
        # The canvas view, the same job: the form a column, the picture at its size.
        key(page, "c")
        time.sleep(0.5)
        shots.take(page, "canvas")
        if shots.check:
            page.emulate_media(color_scheme="dark")
            shots.take(page, "canvas-dark", keep=False)
            page.set_viewport_size({"width": 1920, "height": 1080})
            time.sleep(0.3)
            shots.take(page, "canvas-1920-dark", keep=False)
            page.emulate_media(color_scheme="light")
            shots.take(page, "canvas-1920", keep=False)
            page.click("#keys-help summary")
            shots.take(page, "keys-help", keep=False)
            page.click("#keys-help summary")
            page.set_viewport_size(VIEWPORT)
        done(page)
        if shots.check:
            page.click("#live-preview")  # scaled up to the window
            shots.take(page, "canvas-fit", keep=False)
        key(page, "c")

        # Queue, gallery, lightbox, compare, rate.
        key(page, "2")
        page.wait_for_selector("#queue-list tr.done")
        shots.take(page, "queue")
        key(page, "3")
        page.wait_for_function("document.querySelectorAll('#gallery-grid .card img').length === 4")
        page.wait_for_function("[...document.querySelectorAll('#gallery-grid .card img')].every(i => i.complete)")
        shots.take(page, "gallery")
        page.locator(".card").nth(1).locator("button.pick-image").click()
        page.wait_for_selector("#lightbox[open] img[src$='/image']")
        time.sleep(0.3)
        shots.take(page, "lightbox")
        page.keyboard.press("Escape")
        page.wait_for_selector("#lightbox:not([open])", state="attached")
        page.locator(".card").nth(3).locator("button:text-is('A')").click()  # the two Magenta pictures
        page.locator(".card").nth(2).locator("button:text-is('B')").click()
        page.wait_for_selector(".diff tr.differs")
        time.sleep(0.3)
        shots.take(page, "compare")
        key(page, "5")
        page.wait_for_selector("#rate-left img")
        page.wait_for_function("[...document.querySelectorAll('#rate img')].every(i => i.complete)")
        shots.take(page, "rate")

        # The gallery managed: a favourite, a picture deleted; then the same in the dark theme.
        key(page, "3")
        page.wait_for_selector(".card")
        page.locator(".card").nth(1).locator("button.favourite").click()
        page.wait_for_selector(".card button.favourite[aria-pressed='true']")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(".card").nth(0).locator("button.delete").click()
        page.wait_for_function("document.querySelectorAll('#gallery-grid .card').length === 3")
        time.sleep(0.3)
        shots.take(page, "gallery-managed")
        page.emulate_media(color_scheme="dark")
        time.sleep(0.2)
        shots.take(page, "gallery-dark")
        page.emulate_media(color_scheme="light")

        # PNG info: a studio picture dropped on the page.
        url = page.locator(".card img").first.get_attribute("src")
        key(page, "1")
        page.evaluate(
            """async url => {
                const blob = await (await fetch(url)).blob();
                const files = new DataTransfer();
                files.items.add(new File([blob], "shipwreck-at-night.png", { type: "image/png" }));
                document.querySelector("main").dispatchEvent(
                    new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
            }""",
            url,
        )
        page.wait_for_selector("#png-info-send:visible")
        page.evaluate("window.scrollTo(0, 0)")
        shots.take(page, "png-info")
        page.click("#png-info-send")

        # An X/Y plot: Magenta's strength across, the colours kept or not down, at 384 px.
        page.select_option("#engine", "adain")
        page.select_option("#content-ref", "example:tubingen.jpg")
        pick_style(page, "starry_night")
        page.fill("#p-image_size", "384")
        page.select_option("#sweep-x-name", "strength")
        page.fill("#sweep-x-values", "0.4, 0.7, 1")
        page.select_option("#sweep-y-name", "preserve_colors")
        page.fill("#sweep-y-values", "none, luminance")
        page.click("#submit")
        page.wait_for_selector("#sweep:visible")
        page.wait_for_function("(document.querySelector('#sweep-progress') || {}).textContent === '6 of 6'",
                               timeout=600_000)  # fmt: skip
        page.wait_for_function(
            "[...document.querySelectorAll('#sweep-grid img')].length === 6"
            " && [...document.querySelectorAll('#sweep-grid img')].every(i => i.complete)"
        )
        shots.take(page, "sweep")

        # The mask painter over the 512 px photo: the Starry Night on the sky only.
        key(page, "1")
        page.select_option("#sweep-x-name", "")
        page.select_option("#sweep-y-name", "")
        page.select_option("#engine", "stylize")
        page.select_option("#content-ref", "example:tubingen.jpg")
        pick_style(page, "starry_night")
        page.click(".mask-painter summary")
        page.wait_for_function("document.querySelector('#mask-canvas').width > 0")
        page.fill("#mask-brush", "110")
        stage = page.locator("#mask-canvas")
        stage.scroll_into_view_if_needed()
        box = stage.bounding_box()
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.down()
        for row in range(3):  # the sky: the top third, in three passes (inside the canvas: leaving it ends a stroke)
            y = box["y"] + box["height"] * (0.07 + row * 0.12)
            for step in range(1, 20):
                page.mouse.move(box["x"] + box["width"] * step / 20, y, steps=3)
        page.mouse.up()
        page.evaluate("document.querySelector('.mask-painter').scrollIntoView({block: 'start'})")
        time.sleep(0.2)
        shots.take(page, "mask")
        page.click(".mask-painter summary")

        # A model added in the page; a model trained in it.
        page.select_option("#engine", "fast")
        page.click(".model-upload summary")
        weights = _SANDBOX / "my-night.safetensors"
        weights.write_bytes((EXAMPLES / "starry_night-fast.safetensors").read_bytes())
        page.set_input_files("#model-weights", str(weights))
        page.set_input_files("#model-description", str(EXAMPLES / "starry_night-fast.json"))
        page.click("#model-add")
        page.wait_for_function("document.querySelector('#model').value === 'my-night'")
        page.evaluate("document.querySelector('#model').closest('fieldset').scrollIntoView({block: 'center'})")
        shots.take(page, "model-upload")
        page.click(".model-upload summary")

        page.select_option("#engine", "fast-train")
        page.locator("label.pick:has(.training-pick)", has_text="shipwreck").click()
        pick_style(page, "starry_night")
        page.fill("#new-model", "night-sketch")
        page.select_option("#p-backbone", "lite0")
        page.fill("#p-image_size", "256")
        page.fill("#p-steps", "60")
        page.click("summary:has-text('more settings')")
        for name, value in {"batch_size": "1", "width": "16", "residual_blocks": "2", "checkpoint_every": "5"}.items():
            page.fill(f"#p-{name}", value)
        page.click("#submit")
        page.wait_for_function("Number((document.querySelector('#live-progress') || {getAttribute: () => 0})"
                               ".getAttribute('aria-valuenow')) >= 80", timeout=600_000)  # fmt: skip
        page.evaluate("window.scrollTo(0, 0)")
        time.sleep(0.5)
        shots.take(page, "train")
        done(page)
        browser.close()
    server.should_exit = True
    total = sum(p.stat().st_size for p in shots.written if p.parent == shots.out)
    print(f"{len(shots.written)} shots in {time.monotonic() - started:.0f} s; kept {total / 1e6:.2f} MB")
    if errors:
        raise SystemExit(f"errors in the page: {errors}")


if __name__ == "__main__":
    main()
