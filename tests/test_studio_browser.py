"""The studio in a real browser: Playwright driving Debian's chromium (no browser download).

Submit a job, watch the live preview change, find it in the gallery, restore its settings into the
form, rate a pair, star, view and delete a picture, read one back by PNG Info, an X/Y plot, a painted
mask. Skips when chromium or Playwright is absent; CI installs chromium (scripts/test).
With BRUSHWORK_SCREENSHOTS=DIR it also writes screenshots of its views there, to look at (its pictures are
tiny); docs/studio/ comes from benchmarks/studio_screens.py, at real sizes.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

import uvicorn  # noqa: E402

from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402

SHOTS = os.environ.get("BRUSHWORK_SCREENSHOTS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def studio_url(tmp_path):
    config = StudioConfig(data_dir=tmp_path / "data", lease_seconds=10, preview_seconds=0.2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@contextmanager
def studio_page(url: str) -> Iterator[tuple]:
    """The studio's page in Debian's chromium, and the list its script errors go to."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        yield page, errors
        browser.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def key(page, name: str) -> None:
    """Press a studio shortcut (keys typed into a form field stay in the field, as they should)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(name)


def test_submit_preview_gallery_restore_rate(studio_url):
    with studio_page(studio_url) as (page, errors):
        # The pre-selected painting is marked; with none picked, the page says so instead of queueing.
        picked = page.locator("label.pick.on")
        assert picked.count() == 1 and "✓" in picked.evaluate("e => getComputedStyle(e, '::after').content")
        picked.click()
        page.click("#submit")
        sync_api.expect(page.locator("#job-form .actions .error")).to_contain_text("pick or upload a painting")
        assert page.evaluate("fetch('/api/jobs').then(r => r.json())") == []
        page.locator("label.pick", has_text="starry_night").click()
        # Settings are labelled in words, with the command line's flag beside them.
        assert page.text_content("label[for=p-style_weight]").split() == ["style", "weight", "--style-weight"]

        # Submit: the bundled photo and painting are picked; small, fast settings.
        page.select_option("#p-backbone", "lite0")
        page.fill("#p-image_size", "64")
        page.fill("#p-iterations", "24")
        page.fill("#p-style_weight", "100")
        page.click("#submit")

        # The live preview changes while the optimisation runs, then the result replaces it.
        previews: list[str] = []
        deadline = time.monotonic() + 120
        while page.text_content("#live-status") != "done" and time.monotonic() < deadline:
            src = page.get_attribute("#live-preview", "src") or ""
            if "/preview" in src and src not in previews:
                previews.append(src)
                if len(previews) == 2:
                    shot(page, "live")
            time.sleep(0.05)
        assert page.text_content("#live-status") == "done", errors
        assert len(previews) >= 2, previews  # at least two different preview images were shown
        first = page.get_attribute("#live-preview", "src")
        assert first.endswith("/image")

        # A second job with a stronger style, started from the keyboard.
        page.fill("#p-style_weight", "1000")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "first => document.querySelector('#live-status').textContent === 'done'"
            " && document.querySelector('#live-preview').getAttribute('src') !== first",
            arg=first,
            timeout=120_000,
        )

        # Gallery: both images, each with its full record.
        key(page, "3")
        page.wait_for_selector(".card >> nth=1")
        assert page.locator(".card").count() == 2
        assert '"iterations": 24' in page.locator(".card pre").first.text_content()
        shot(page, "gallery")

        # Restore: change the form, then load the first image's settings back.
        key(page, "1")
        page.fill("#p-iterations", "5")
        page.select_option("#p-backbone", "auto")
        key(page, "3")
        page.locator(".card").last.locator("button.restore").click()
        page.wait_for_selector("#create:visible")
        sync_api.expect(page.locator("#live-status")).to_have_count(0)  # the last job's picture is not left there
        assert page.input_value("#p-iterations") == "24"
        assert page.input_value("#p-backbone") == "lite0"
        assert page.input_value("#p-style_weight") == "100"

        # Compare side by side.
        key(page, "3")
        page.locator(".card").first.locator("button:text-is('A')").click()
        page.locator(".card").last.locator("button:text-is('B')").click()
        page.wait_for_selector(".diff tr.differs")
        shot(page, "compare")

        # Rate a pair with the keyboard.
        key(page, "5")
        page.wait_for_selector("#rate-left img")
        shot(page, "rate")
        key(page, "ArrowLeft")
        page.wait_for_function("document.querySelector('#rate').textContent.includes('1 rated')")
        ratings = page.evaluate("fetch('/api/ratings').then(r => r.json())")
        assert sorted((v["wins"], v["losses"]) for v in ratings.values()) == [(0, 1), (1, 0)]

        key(page, "2")
        page.wait_for_selector("#queue-list tr.done")
        shot(page, "queue")

        # Manage the gallery: a favourite, the favourites filter, the lightbox, and a delete.
        key(page, "3")
        page.locator(".card").first.locator("button.favourite").click()
        page.wait_for_selector(".card button.favourite[aria-pressed='true']")
        page.check("#gallery-filter input[name=favourites]")
        page.wait_for_function("document.querySelectorAll('#gallery-grid .card').length === 1")
        page.uncheck("#gallery-filter input[name=favourites]")
        page.wait_for_function("document.querySelectorAll('#gallery-grid .card').length === 2")
        page.locator(".card").first.locator("button.pick-image").click()
        page.wait_for_selector("#lightbox[open] img[src$='/image']")
        shot(page, "lightbox")
        page.keyboard.press("Escape")
        page.wait_for_selector("#lightbox:not([open])", state="attached")
        page.once("dialog", lambda dialog: dialog.accept())  # "Delete this picture?"
        page.locator(".card").last.locator("button.delete").click()
        page.wait_for_function("document.querySelectorAll('#gallery-grid .card').length === 1")
        assert page.locator(".card button.favourite[aria-pressed='true']").count() == 1  # the starred one stayed
        shot(page, "gallery-managed")

        # PNG Info: a picture dropped on the page gives its settings back to the form.
        key(page, "1")
        page.fill("#p-style_weight", "5")
        url = page.locator(".card img").first.get_attribute("src")
        page.evaluate(
            """async url => {
                const blob = await (await fetch(url)).blob();
                const files = new DataTransfer();
                files.items.add(new File([blob], "dropped.png", { type: "image/png" }));
                document.querySelector("main").dispatchEvent(
                    new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
            }""",
            url,
        )
        page.wait_for_selector("#png-info-send:visible")
        assert "stylize" in page.text_content("#png-info")
        shot(page, "png-info")
        page.click("#png-info-send")
        sync_api.expect(page.locator("#p-style_weight")).to_have_value("1000")
        sync_api.expect(page.locator("#p-iterations")).to_have_value("24")
        sync_api.expect(page.locator("#png-info")).to_be_hidden()

        # An X/Y plot: style weight across, a batch of two seeds in each cell, a random first seed.
        page.click("#random-seed")
        sync_api.expect(page.locator("#p-seed")).not_to_have_value("0")
        page.select_option("#sweep-x-name", "style_weight")
        page.fill("#sweep-x-values", "10, 3000")
        page.fill("#batch-count", "2")
        page.fill("#p-iterations", "12")
        page.click("#submit")
        page.wait_for_selector("#sweep:visible")
        page.wait_for_function("(document.querySelector('#sweep-progress') || {}).textContent === '4 of 4'",
                               timeout=240_000)  # fmt: skip
        page.wait_for_function("document.querySelectorAll('#sweep-grid img').length === 4")
        assert [h.text_content() for h in page.locator("table.sweep thead th").all()] == ["10", "3000"]
        shot(page, "sweep")

        # A mask painted in the page: the painting goes where the brush went.
        key(page, "1")
        page.select_option("#sweep-x-name", "")
        page.fill("#batch-count", "1")
        page.fill("#p-image_size", "96")
        page.fill("#p-style_weight", "3000")
        page.fill("#p-iterations", "30")
        page.click(".mask-painter summary")
        page.wait_for_function("document.querySelector('#mask-canvas').width > 0")
        page.fill("#mask-brush", "90")
        box = page.locator("#mask-canvas").bounding_box()
        page.mouse.move(box["x"] + 10, box["y"] + 10)
        page.mouse.down()
        for step in range(1, 21):  # a broad stroke down the left side
            page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * step / 20)
        page.mouse.up()
        sync_api.expect(page.locator("#use-mask")).to_be_checked()
        shot(page, "mask")
        page.click("#submit")
        page.wait_for_selector("#live-status", timeout=30_000)  # the mask is encoded before the job is sent
        page.wait_for_function("document.querySelector('#live-status').textContent === 'done'", timeout=240_000)
        jobs = page.evaluate("fetch('/api/jobs?limit=1').then(r => r.json())")
        assert jobs[0]["inputs"]["masks"] and jobs[0]["record"]["inputs"]["style_masks"]
        shot(page, "mask-result")

        # Dark: the system's choice by default; the header's switch overrides it and is remembered.
        page.emulate_media(color_scheme="dark")
        key(page, "3")
        page.wait_for_selector(".card")
        background = "getComputedStyle(document.body).backgroundColor"
        assert page.evaluate(background) == "rgb(23, 24, 27)"
        shot(page, "gallery-dark")
        page.click("#theme")
        assert page.evaluate(background) == "rgb(246, 243, 238)"
        page.reload()
        page.wait_for_function(f"{background} === 'rgb(246, 243, 238)'")  # kept across visits
        assert not errors, errors


def test_video_job_in_the_page(studio_url, tmp_path):
    """The video engine from the page: upload a clip, watch it paint frame by frame, play it in the gallery."""
    pytest.importorskip("av")
    from tests.test_video import make_video

    clip = make_video(tmp_path / "clip.mp4", frames=8, size=(96, 64))
    with studio_page(studio_url) as (page, errors):
        page.select_option("#engine", "video")
        # An AdaIN model (the first that fits) takes style images; fast models fit too, with their own style.
        page.wait_for_selector(".style-pick >> nth=0", state="visible")
        page.select_option("#model", "starry_night-fast")
        page.wait_for_selector(".style-pick >> nth=0", state="hidden")
        page.set_input_files("#content-file", str(clip))
        page.click("#submit")
        page.wait_for_selector("#live-status", timeout=10_000)
        page.wait_for_function("document.querySelector('#live-status').textContent === 'done'", timeout=120_000)
        assert page.get_attribute("#live-video", "src").endswith("/image")
        assert page.get_attribute("#live-video", "poster").endswith("/poster")

        key(page, "3")
        page.wait_for_selector(".card video")
        assert page.evaluate("document.querySelector('.card video').poster").endswith("/poster")
        assert '"engine": "video"' in page.locator(".card pre").first.text_content()
        shot(page, "gallery-video")
        assert not errors, errors


def test_a_model_added_in_the_page_paints(studio_url, tmp_path):
    bundled = Path(__file__).resolve().parents[1] / "brushwork" / "examples"
    weights = tmp_path / "my-night.safetensors"
    weights.write_bytes((bundled / "starry_night-fast.safetensors").read_bytes())
    with studio_page(studio_url) as (page, errors):
        page.select_option("#engine", "fast")
        page.click(".model-upload summary")
        page.set_input_files("#model-weights", str(weights))
        page.set_input_files("#model-description", str(bundled / "starry_night-fast.json"))
        page.click("#model-add")
        page.wait_for_function("document.querySelector('#model').value === 'my-night'")
        sync_api.expect(page.locator("#model")).to_contain_text("my-night (yours)")
        shot(page, "model-upload")
        page.fill("#p-image_size", "96")
        page.click("#submit")
        page.wait_for_function("(document.querySelector('#live-status') || {}).textContent === 'done'",
                               timeout=120_000)  # fmt: skip
        jobs = page.evaluate("fetch('/api/jobs').then(r => r.json())")
        assert jobs[0]["inputs"]["model"] == "my-night" and jobs[0]["caption"].endswith("model my-night")
        assert not errors, errors


def test_a_model_trained_in_the_page_joins_the_picker(studio_url):
    with studio_page(studio_url) as (page, errors):
        page.select_option("#engine", "fast-train")
        sync_api.expect(page.locator("legend", has_text="photos to train on")).to_be_visible()
        page.locator("label.pick:has(.training-pick)", has_text="shipwreck").click()  # with the preselected photo
        page.fill("#new-model", "my-brush")
        page.select_option("#p-backbone", "lite0")
        page.fill("#p-image_size", "32")
        page.fill("#p-steps", "4")
        page.click("summary:has-text('more settings')")
        for name, value in {"batch_size": "1", "width": "4", "residual_blocks": "1", "checkpoint_every": "1"}.items():
            page.fill(f"#p-{name}", value)
        page.click("#submit")
        page.wait_for_function("(document.querySelector('#live-status') || {}).textContent === 'done'",
                               timeout=180_000)  # fmt: skip
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "train")
        job = page.evaluate("fetch('/api/jobs').then(r => r.json())")[0]
        assert job["inputs"]["contents"] == ["example:tubingen.jpg", "example:shipwreck.jpg"], job
        assert job["inputs"]["model"] == "my-brush" and job["record"]["extra"]["trained"]["settings"]["steps"] == 4

        page.select_option("#engine", "fast")  # the new model is offered with the bundled one
        sync_api.expect(page.locator("#model")).to_contain_text("my-brush (yours)")
        assert not errors, errors


def test_the_canvas_view_shows_the_picture_large_and_is_remembered(studio_url):
    """The canvas switch (or key c): the form a narrow column, the picture at its real size up to the window,
    never scaled up unless clicked; kept across visits; a gallery picture opens in it with Large."""
    with studio_page(studio_url) as (page, errors):
        page.select_option("#engine", "fast")
        page.fill("#p-image_size", "640")
        page.click("#submit")
        done = "(s => s && s.textContent === 'done')(document.querySelector('#live-status'))"
        page.wait_for_function(done, timeout=120_000)
        page.wait_for_function("document.querySelector('#live-preview').complete")
        natural = page.evaluate("document.querySelector('#live-preview').naturalWidth")
        form, small = page.locator("#job-form").bounding_box(), page.locator("#live-preview").bounding_box()
        assert natural == 640 and small["width"] < 560  # the full form leaves the picture a side panel

        page.click("#canvas-toggle")
        sync_api.expect(page.locator("#canvas-toggle")).to_have_attribute("aria-pressed", "true")
        large = page.locator("#live-preview").bounding_box()
        assert large["width"] == pytest.approx(natural, abs=1)  # its real size: the window has room for it
        assert page.locator("#job-form").bounding_box()["width"] < form["width"] / 1.5
        page.click("#live-preview")  # scaled up to fill the window only when asked
        assert page.locator("#live-preview").bounding_box()["width"] > natural + 50
        shot(page, "canvas")

        page.reload()  # remembered, as the theme is
        sync_api.expect(page.locator("#canvas-toggle")).to_have_attribute("aria-pressed", "true")
        assert page.locator("#job-form").bounding_box()["width"] < form["width"] / 1.5
        key(page, "3")  # a gallery picture, large
        page.locator(".card button.view-large").first.click()
        page.wait_for_function(done)
        page.wait_for_function("document.querySelector('#live-preview').complete")
        assert page.locator("#live-preview").bounding_box()["width"] == pytest.approx(natural, abs=1)

        key(page, "c")  # the key switches back
        sync_api.expect(page.locator("#canvas-toggle")).to_have_attribute("aria-pressed", "false")
        assert page.locator("#live-preview").bounding_box()["width"] == pytest.approx(small["width"], abs=1)
        page.reload()
        sync_api.expect(page.locator("#canvas-toggle")).to_have_attribute("aria-pressed", "false")
        page.click("#keys-help summary")  # the shortcuts are listed in the page
        sync_api.expect(page.locator("#keys-help dl")).to_contain_text("canvas")
        assert not errors, errors
