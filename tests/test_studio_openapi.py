"""The studio's OpenAPI document: every JSON route under /api names the model of its body, the fields
it documents are the ones a client gets (checked against real answers), and every refusal is the
``{"detail": …}`` it documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

from fastapi.testclient import TestClient  # noqa: E402
from PIL.PngImagePlugin import PngInfo  # noqa: E402

from brushwork import api  # noqa: E402
from brushwork.studio.app import asgi_app  # noqa: E402
from brushwork.studio.config import Limits, StudioConfig  # noqa: E402
from brushwork.studio.engines import available_engines  # noqa: E402
from brushwork.studio.jobs import JobStore, Worker  # noqa: E402
from tests.conftest import make_image  # noqa: E402

FAST_JOB = {"engine": "fast", "model": "starry_night-fast", "content_ref": "example:tubingen.jpg",
            "params": json.dumps({"image_size": 32})}  # fmt: skip
UPLOAD_LIMIT = 2_000_000


def png(pnginfo: PngInfo | None = None) -> bytes:
    buf = io.BytesIO()
    make_image(32, 24).save(buf, "PNG", pnginfo=pnginfo)
    return buf.getvalue()


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> tuple[dict, dict]:
    """The document, and a real answer of every JSON route under /api: {(method, path): (status, body)},
    from a studio with finished jobs, a sweep, a rating and an uploaded model."""
    config = StudioConfig(data_dir=tmp_path_factory.mktemp("studio") / "data",
                          limits=Limits(upload_bytes=UPLOAD_LIMIT, image_pixels=1_000_000))  # fmt: skip
    got: dict[tuple, object] = {}

    def keep(method: str, path: str, response):
        got[(method, path)] = (response.status_code, response.json())
        return response.json()

    with TestClient(asgi_app(config, worker=False), base_url="http://127.0.0.1") as client:
        document = client.get("/openapi.json").json()
        job_id = keep("post", "/api/jobs", client.post("/api/jobs", data=FAST_JOB))["id"]
        sweep = json.dumps({"x": {"name": "strength", "values": [0.5, 1.0]}})
        sweep_id = keep("post", "/api/sweeps", client.post("/api/sweeps", data={**FAST_JOB, "sweep": sweep}))["id"]
        while Worker(JobStore(config)).run_once() is not None:
            pass
        queued = client.post("/api/jobs", data=FAST_JOB).json()["id"]
        keep("delete", "/api/jobs/{job_id}", client.delete(f"/api/jobs/{queued}"))  # cancels it
        keep("get", "/api/jobs", client.get("/api/jobs"))
        job = keep("get", "/api/jobs/{job_id}", client.get(f"/api/jobs/{job_id}"))
        starred = client.put(f"/api/jobs/{job_id}/favourite", json={"favourite": True})
        keep("put", "/api/jobs/{job_id}/favourite", starred)
        keep("get", "/api/sweeps/{sweep_id}", client.get(f"/api/sweeps/{sweep_id}"))
        keep("get", "/api/engines", client.get("/api/engines"))
        # What the service gives, to compare with what the models let through.
        studio = client.app.app.state.studio
        engines = [e.describe() for e in available_engines()]
        got["service"] = {"job": studio.store.get(job_id).public(), "sweep": studio.sweep(sweep_id),
                          "engines": engines, "gallery": studio.gallery()}  # fmt: skip
        keep("get", "/api/images", client.get("/api/images"))
        bundled = Path(api.__file__).parent / "examples"
        files = {"model": ("mine.safetensors", (bundled / "starry_night-fast.safetensors").read_bytes()),
                 "description": ("mine.json", (bundled / "starry_night-fast.json").read_bytes())}  # fmt: skip
        keep("post", "/api/models", client.post("/api/models", files=files))
        keep("get", "/api/models", client.get("/api/models"))
        made = client.get(job["images"][0]).content
        keep("post", "/api/png-info", client.post("/api/png-info", files={"image": ("made.png", made)}))
        chunk = PngInfo()
        chunk.add_text("parameters", "a lighthouse\nSteps: 20, Sampler: Euler a, Seed: 42")
        other = client.post("/api/png-info", files={"image": ("a1111.png", png(chunk))})
        got[("post", "/api/png-info", "another tool's")] = (other.status_code, other.json())
        keep("get", "/api/gallery", client.get("/api/gallery"))
        winner, loser = (item["id"] for item in keep("get", "/api/ratings/pair", client.get("/api/ratings/pair")))
        keep("post", "/api/ratings", client.post("/api/ratings", json={"winner": winner, "loser": loser}))
        keep("get", "/api/ratings", client.get("/api/ratings"))

        # Refusals, one of each status the routes document.
        got[("refused", 400)] = client.post("/api/jobs", data={**FAST_JOB, "engine": "no-such-engine"})
        got[("refused", 404)] = client.get(f"/api/jobs/{'0' * 32}")
        got[("refused", 409)] = client.put(f"/api/jobs/{queued}/favourite", json={"favourite": True})
        got[("refused", 413)] = client.post("/api/png-info", files={"image": ("big.png", b"0" * (UPLOAD_LIMIT + 1))})
    return document, got


def resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def fits(body, schema: dict, document: dict) -> bool:
    """Whether ``body`` has the keys ``schema`` documents, all the way down: each object's keys are
    among its properties and include the required ones (free-form objects, scalars: as they come)."""
    schema = resolve(schema, document)
    if "anyOf" in schema:
        return any(fits(body, branch, document) for branch in schema["anyOf"])
    if schema.get("type") == "null":
        return body is None
    if isinstance(body, dict) and "properties" in schema:
        keys = set(body)
        if not set(schema.get("required", ())) <= keys <= set(schema["properties"]):
            return False
        return all(fits(value, schema["properties"][key], document) for key, value in body.items())
    if isinstance(body, dict) and isinstance(schema.get("additionalProperties"), dict):
        return all(fits(value, schema["additionalProperties"], document) for value in body.values())
    if isinstance(body, list) and "items" in schema:
        return all(fits(item, schema["items"], document) for item in body)
    return True


def described(schema: dict, document: dict) -> bool:
    """Whether a body's schema names its fields (of the body, or of the items of a list or a map)."""
    schema = resolve(schema, document)
    if "anyOf" in schema:
        return all(described(branch, document) for branch in schema["anyOf"])
    for inner in ("items", "additionalProperties"):
        if isinstance(schema.get(inner), dict):
            return described(schema[inner], document)
    return bool(schema.get("properties"))


def json_routes(document: dict) -> dict[tuple[str, str], tuple[int, dict]]:
    """(method, path) -> (success status, its JSON schema) of every route under /api that answers JSON."""
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2") and "application/json" in response.get("content", {}):
                    found[(method, path)] = (int(status), response["content"]["application/json"]["schema"])
    return {key: value for key, value in found.items() if key[1].startswith("/api/")}


def test_every_json_route_documents_the_fields_it_answers_with(answers):
    document, got = answers
    routes = json_routes(document)
    assert set(routes) == {key for key in got if len(key) == 2 and key[0] != "refused"}  # every one is tried
    for (method, path), (status, schema) in routes.items():
        assert described(schema, document), f"{method.upper()} {path}: its body's fields are not documented"
        answered, body = got[(method, path)]
        assert answered == status, (method, path, body)
        assert body, f"{method.upper()} {path}: an empty answer proves nothing"
        assert fits(body, schema, document), f"{method.upper()} {path} answered keys its schema does not document"
    names = set(document["components"]["schemas"])
    assert {"JobOut", "SweepOut", "EngineOut", "ControlOut", "GalleryItem", "ErrorOut"} <= names
    # PNG info has two shapes: a brushwork output's settings, or another tool's text.
    status, foreign = got[("post", "/api/png-info", "another tool's")]
    assert status == 200 and set(foreign) == {"engine", "text"}
    assert fits(foreign, routes[("post", "/api/png-info")][1], document)


def as_sent(body) -> str:
    """A body as JSON text, keys sorted: equal texts are equal answers, 3 and 3.0 told apart."""
    return json.dumps(body, sort_keys=True)


def test_the_answers_are_what_the_service_gives(answers):
    """The models change no body: not a key lost or added, not a number retyped, free-form parts whole."""
    _, got = answers
    service = got["service"]
    assert as_sent(got[("put", "/api/jobs/{job_id}/favourite")][1]) == as_sent(service["job"])
    assert as_sent(got[("get", "/api/engines")][1]) == as_sent(service["engines"])
    assert as_sent(got[("get", "/api/sweeps/{sweep_id}")][1]) == as_sent(service["sweep"])
    assert as_sent(got[("get", "/api/gallery")][1]) == as_sent(service["gallery"])
    # A sweep without y or seed has no such keys (the page tells an axis by its key), not nulls.
    assert [set(cell) for cell in service["sweep"]["cells"]] == [{"x", "job"}] * 2
    job = got[("get", "/api/jobs/{job_id}")][1]
    assert job["params"] == {"image_size": 32} and job["record"]["engine"] == "fast"
    winner, loser = (item["id"] for item in got[("get", "/api/ratings/pair")][1])
    assert got[("post", "/api/ratings")][1] == {"ok": True}
    assert got[("get", "/api/ratings")][1] == {winner: {"wins": 1, "losses": 0}, loser: {"wins": 0, "losses": 1}}


def test_refusals_are_the_detail_each_route_documents(answers):
    document, got = answers
    error = document["components"]["schemas"]["ErrorOut"]
    assert set(error["properties"]) == {"detail"} and error["properties"]["detail"]["type"] == "string"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and status != "422":  # 422: FastAPI's own, a list of fields
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
    assert "404" in document["paths"]["/api/jobs/{job_id}"]["get"]["responses"]
    assert {"400", "413"} <= set(document["paths"]["/api/jobs"]["post"]["responses"])
    for status in (400, 404, 409, 413):
        response = got[("refused", status)]
        assert response.status_code == status
        assert set(response.json()) == {"detail"} and isinstance(response.json()["detail"], str), response.json()
