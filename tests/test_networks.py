"""The network cache a long-lived process (the studio's worker) keeps its loaded networks in (#21)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from torch import nn

from brushwork import api
from brushwork.networks import NetworkCache, weight_bytes

EXAMPLES = Path(api.__file__).parent / "examples"


def test_lru_bounded_by_the_weights_bytes():
    loads = []

    def loader(width):
        def load():
            loads.append(width)
            return nn.Linear(width, width, bias=False)  # width² float32 weights

        return load

    kb = 4 * 16 * 16  # a 16-wide layer's bytes
    cache = NetworkCache(max_bytes=2 * kb)
    a = cache.get("a", loader(16))
    assert weight_bytes(a) == kb
    assert cache.get("a", loader(16)) is a and loads == [16]
    cache.get("b", loader(16))
    cache.get("a", loader(16))  # a is now the most recent
    cache.get("c", loader(16))  # over the bound: b, the least recently used, goes
    assert cache.bytes == 2 * kb
    cache.get("a", loader(16))
    cache.get("b", loader(16))
    assert loads == [16, 16, 16, 16]  # a, b, c, then b again
    big = cache.get("big", loader(64))  # larger than the whole bound: returned, not kept
    assert isinstance(big, nn.Linear) and "big" not in cache._items


def test_cached_model_is_loaded_once_and_again_when_its_file_changes(tmp_path):
    model = tmp_path / "m.safetensors"
    shutil.copy(EXAMPLES / "starry_night-fast.safetensors", model)
    shutil.copy(EXAMPLES / "starry_night-fast.json", tmp_path / "m.json")
    first = api.cached_model(model, device="cpu")
    assert api.cached_model(model, device="cpu") is first
    time.sleep(0.01)
    model.write_bytes(model.read_bytes())  # the same weights, written again: a new modification time
    assert api.cached_model(model, device="cpu") is not first
    assert api.cached_backbone("lite0") is api.cached_backbone("lite0")
