"""Web pages the user opens must not drive the studio on 127.0.0.1 (#20): Host, origin and token checks.

The HTTP cases go through the app as any client does; the browser case opens a page served from
another origin in Debian's chromium (Playwright) and has it try to queue a job.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import StudioConfig  # noqa: E402
from brushwork.studio.guard import COOKIE  # noqa: E402

TOKEN = "session-token-for-tests"
JOB = {"engine": "fast", "model": "starry_night-fast", "content_ref": "example:tubingen.jpg"}
LOCAL = "http://127.0.0.1:8765"


def client_for(config: StudioConfig, base_url: str = LOCAL) -> TestClient:
    return TestClient(asgi_app(config, worker=False), base_url=base_url)


def queued(config: StudioConfig) -> int:
    from brushwork.studio.jobs import JobStore

    return len(JobStore(config).list())


@pytest.fixture
def config(tmp_path) -> StudioConfig:
    """The config 'brushwork serve' builds on loopback: a session token, no other host names."""
    return StudioConfig(data_dir=tmp_path / "data", session_token=TOKEN, allowed_hosts=("127.0.0.1",)).prepare()


def test_foreign_origin_cannot_queue_cancel_or_rate(config):
    with client_for(config) as client:
        for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
            response = client.post("/api/jobs", data=JOB, headers={"Origin": origin})
            assert response.status_code == 403, origin
            assert "cross-origin" in response.json()["detail"]
        # Cookies ignore ports: a page on another port of 127.0.0.1 sends the token cookie. Not enough.
        client.cookies.set(COOKIE, TOKEN)
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://127.0.0.1:9999"}).status_code == 403
        assert client.post("/api/jobs", data=JOB, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
        assert client.post("/api/jobs", data=JOB, headers={"Referer": "http://evil.example/x"}).status_code == 403
        client.cookies.clear()
        job = "0" * 32
        assert client.delete(f"/api/jobs/{job}", headers={"Origin": "http://evil.example"}).status_code == 403
        rating = {"winner": f"{job}:0", "loser": f"{job}:1"}
        assert client.post("/api/ratings", json=rating, headers={"Origin": "http://evil.example"}).status_code == 403
    assert queued(config) == 0


def test_foreign_host_is_refused_dns_rebinding(config):
    with client_for(config, "http://evil.example:8765") as client:
        for response in (client.get("/api/jobs"), client.get("/"), client.post("/api/jobs", data=JOB)):
            assert response.status_code == 403
            assert "evil.example" in response.json()["detail"]
    with client_for(config, "http://evil.example:8765") as client:  # even with its own Origin and the token
        headers = {"Origin": "http://evil.example:8765", "Authorization": f"Bearer {TOKEN}"}
        assert client.post("/api/jobs", data=JOB, headers=headers).status_code == 403
    assert queued(config) == 0
    for base in ("http://localhost:8765", "http://[::1]:8765", "http://127.0.0.1:8765"):
        with client_for(config, base) as client:
            assert client.get("/api/jobs").status_code == 200, base


def test_without_token_or_same_origin_nothing_changes(config):
    with client_for(config) as client:
        response = client.post("/api/jobs", data=JOB)  # a script that knows neither
        assert response.status_code == 403 and "token" in response.json()["detail"]
        bad = {"Authorization": "Bearer wrong"}
        assert client.post("/api/jobs", data=JOB, headers=bad).status_code == 403
        assert client.get("/api/jobs").status_code == 200  # reading stays open on loopback
    assert queued(config) == 0


def test_own_page_token_and_api_clients_work(config):
    with client_for(config) as client:
        assert client.post("/api/jobs", data=JOB, headers={"Origin": LOCAL}).status_code == 202
        assert client.post("/api/jobs", data=JOB, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 202
        assert client.post("/api/jobs", data=JOB, headers={"Referer": f"{LOCAL}/"}).status_code == 202
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/api/jobs", data=JOB, headers=bearer).status_code == 202
        # An API client with the token may even say it is elsewhere (no browser adds that header cross-site).
        assert client.post("/api/jobs", data=JOB, headers={**bearer, "Origin": "http://x.example"}).status_code == 202
        # The printed URL: ?token= sets the cookie and drops the token from the address.
        landed = client.get("/", params={"token": TOKEN}, follow_redirects=False)
        assert landed.status_code == 303 and "token" not in landed.headers["location"]
        assert client.cookies.get(COOKIE) == TOKEN
        assert client.post("/api/jobs", data=JOB).status_code == 202
    assert queued(config) == 6


def test_library_default_refuses_foreign_origins_only(tmp_path):
    config = StudioConfig(data_dir=tmp_path / "data")  # no session token: create_app used from Python
    with client_for(config) as client:
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/api/jobs", data=JOB).status_code == 202
    with client_for(config, "http://evil.example") as client:
        assert client.get("/api/jobs").status_code == 403


def test_allowed_hosts(tmp_path):
    config = StudioConfig(data_dir=tmp_path / "data", allowed_hosts=("Studio.LAN.",))
    with client_for(config, "http://studio.lan:8765") as client:
        assert client.get("/api/jobs").status_code == 200
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://studio.lan:8765"}).status_code == 202
    with client_for(StudioConfig(data_dir=tmp_path / "data", allowed_hosts=("*",)), "http://any.where") as client:
        assert client.get("/api/jobs").status_code == 200


def test_remote_token_still_needed_for_every_request(tmp_path):
    config = StudioConfig(data_dir=tmp_path / "data", token=TOKEN, session_token=TOKEN, allowed_hosts=("*",))
    with client_for(config, "http://192.0.2.7:8765") as client:
        assert client.get("/api/jobs").status_code == 401
        # The cookie alone does not let another page post, even here.
        client.cookies.set(COOKIE, TOKEN)
        assert client.get("/api/jobs").status_code == 200
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://192.0.2.7:8765"}).status_code == 202


def test_serve_prints_a_token_url_and_builds_the_guarded_config(tmp_path, monkeypatch, capsys):
    import brushwork.studio.app as app_module
    from brushwork.cli import main

    seen = {}
    monkeypatch.setattr(app_module, "serve_app", lambda config, host, port, worker: seen.update(config=config))
    monkeypatch.delenv("BRUSHWORK_TOKEN", raising=False)
    data = ["--data", str(tmp_path / "data")]
    assert main(["serve", "--port", "8766", "--allow-host", "studio.lan", *data]) == 0
    config = seen["config"]
    assert config.token is None and len(config.session_token) >= 24
    assert f"http://localhost:8766/?token={config.session_token}" in capsys.readouterr().err
    assert set(config.allowed_hosts) == {"studio.lan", "127.0.0.1"}
    assert main(["serve", "--port", "8766", *data]) == 0
    assert seen["config"].session_token != config.session_token  # a fresh one each run
    with client_for(seen["config"]) as client:
        assert client.post("/api/jobs", data=JOB, headers={"Origin": "http://evil.example"}).status_code == 403


# -- in a real browser -------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

EVIL_PAGE = """<!doctype html><html><body>
<form id="f" method="post" enctype="multipart/form-data" action="{studio}/api/jobs" target="sink">
  <input name="engine" value="fast"><input name="model" value="starry_night-fast">
  <input name="content_ref" value="example:tubingen.jpg">
</form><iframe name="sink"></iframe>
<script>
async function attack() {{
  const body = new FormData(document.getElementById("f"));
  const results = [];
  for (const mode of ["no-cors", "cors"]) {{
    try {{
      const r = await fetch("{studio}/api/jobs", {{method: "POST", body, mode, credentials: "include"}});
      results.push(mode + ":" + r.status);
    }} catch (e) {{ results.push(mode + ":blocked"); }}
  }}
  document.getElementById("f").submit();
  return results;
}}
</script></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_thread(server):
    thread = threading.Thread(target=server.serve_forever if hasattr(server, "serve_forever") else server.run)
    thread.daemon = True
    thread.start()
    return thread


def test_pages_on_other_origins_cannot_queue_jobs_in_a_real_browser(config, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    import uvicorn

    port, evil_port = _free_port(), _free_port()
    studio = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(asgi_app(config, worker=False), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    _serve_thread(server)
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "index.html").write_text(EVIL_PAGE.format(studio=studio))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "evil"))  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", evil_port), handler)
    _serve_thread(evil)
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with sync_api.sync_playwright() as p:
            # evil.example resolves to this machine, as DNS rebinding makes it.
            rebind = "--host-resolver-rules=MAP evil.example 127.0.0.1"
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", rebind])
            page = browser.new_page()
            # The user opened the URL 'serve' printed: the token cookie is in this browser.
            page.goto(f"{studio}/?token={TOKEN}")
            assert page.url == f"{studio}/"
            # A page on another port of the same address (its requests carry that cookie) ...
            for origin in (f"http://127.0.0.1:{evil_port}", f"http://localhost:{evil_port}"):
                page.goto(f"{origin}/index.html")
                results = page.evaluate("attack()")
                page.wait_for_timeout(500)  # the form post lands in the iframe
                assert all(r.endswith(("blocked", ":0")) for r in results), results  # the browser hides answers
            assert queued(config) == 0  # what matters: the server refused them
            # ... and a page whose name now points at the studio's address.
            response = page.goto(f"http://evil.example:{port}/")
            assert response.status == 403
            status = page.evaluate("fetch('/api/jobs', {method: 'POST', body: new FormData()}).then(r => r.status)")
            assert status == 403
            assert queued(config) == 0

            # The studio's own page still queues a job.
            page.goto(f"{studio}/")
            page.select_option("#engine", "fast")
            page.click("#submit")
            deadline = time.monotonic() + 20
            while queued(config) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert queued(config) == 1
            browser.close()
    finally:
        server.should_exit = True
        evil.shutdown()
