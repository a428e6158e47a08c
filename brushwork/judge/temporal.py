"""Temporal measures of a stylised video against its source: flicker and error along the motion."""

from __future__ import annotations

import os

from brushwork.media import MOTION_SCALE, FlickerMeter, flow_estimator, image_to_tensor, read_frames, warp_back


def measure_flicker(source: str | os.PathLike, stylised: str | os.PathLike) -> float:
    """Frame-to-frame change of ``stylised`` relative to ``source`` (1.0 = no added flicker)."""
    meter = FlickerMeter()
    for a, b in zip(read_frames(source), read_frames(stylised), strict=False):
        b = b.crop((0, 0, a.width, a.height))
        meter.add(image_to_tensor(a), image_to_tensor(b))
    return meter.ratio


def measure_temporal_error(source: str | os.PathLike, stylised: str | os.PathLike) -> float:
    """Mean change of ``stylised`` along the source's motion: each frame against the previous one warped by
    the source's optical flow, where that warp explains the source. The plain flicker ratio also counts
    stylised texture that moves with the scene, which is wanted; this counts only what is not."""
    flow = flow_estimator()
    total, count, previous = 0.0, 0, None
    for a, b in zip(read_frames(source), read_frames(stylised), strict=False):
        src, out = image_to_tensor(a), image_to_tensor(b.crop((0, 0, a.width, a.height)))
        if previous is not None:
            warped_src, warped_out = warp_back(flow, src, *previous)
            valid = ((src - warped_src).abs().mean(1, keepdim=True) < MOTION_SCALE).float()
            total += ((out - warped_out).abs().mean(1, keepdim=True) * valid).sum().item() / max(
                1.0, valid.sum().item()
            )
            count += 1
        previous = (src, out)
    return total / max(1, count)
