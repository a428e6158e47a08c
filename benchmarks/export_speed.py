"""Seconds to export the bundled models as ONNX (the README's `brushwork adain export` and `fast export`
commands, through the Python API), with the largest difference to PyTorch that the export's check found.

    python benchmarks/export_speed.py

Needs the ``export`` extra (onnx, onnxscript, onnxruntime). Before the Lite0 padding was written
without ceil/max on the size, the AdaIN export did not finish in 580 s.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import brushwork

EXAMPLES = Path(brushwork.__file__).parent / "examples"


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, export in (("adain-lite0", brushwork.adain_export), ("starry_night-fast", brushwork.fast_export)):
            start = time.perf_counter()
            report = export(EXAMPLES / f"{name}.safetensors", Path(tmp) / f"{name}.onnx")
            results[name] = {"seconds": round(time.perf_counter() - start, 1),
                             "max_difference": float(f"{report.max_difference:.2e}")}  # fmt: skip
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
