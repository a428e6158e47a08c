"""brushwork video: any fast engine on a video."""

from __future__ import annotations

import argparse
import sys

from brushwork import api
from brushwork.cli.common import (
    Replay,
    add_backbone_options,
    add_output_options,
    add_params_from,
    add_parser,
    add_protection_options,
    add_run_options,
    add_settings,
    default_output,
    progress_bar,
    protection_from_args,
    settings_from,
)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "video", "stylise a video frame by frame, steadied, audio kept (fast or adain)")
    p.add_argument("input", help="the video (anything FFmpeg reads)")
    p.add_argument("--model", required=True, help="a 'fast' or 'adain' .safetensors model")
    p.add_argument("--style", nargs="+", help="style image(s), for an adain model")
    add_output_options(p, "OUT.mp4", "VIDEO-STYLE.mp4 here (the model's name for a fast model)")
    p.add_argument("--audio", help="sound to react to and to put in the output (default: the clip's own)")
    add_settings(p, api.SETTINGS["video"], skip=("backbone",))
    add_run_options(p, device=False)
    add_protection_options(p)
    g = p.add_argument_group("backbone (adain models)")
    add_settings(g, api.SETTINGS["video"], only=("backbone",))
    add_backbone_options(g, pooling=False, backbone=False)
    add_params_from(p, Replay(p, "video", lambda a: {"content": a.input, "styles": a.style, "model": a.model}))
    return {"video": _run_video}


def _run_video(args: argparse.Namespace) -> int:
    settings = settings_from(api.SETTINGS["video"], args, len(args.style or []))
    output = args.output or default_output(args.input, args.style[0] if args.style else args.model, ".mp4")
    bar = None

    def on_frame(done: int, total: int) -> None:
        nonlocal bar
        if not args.quiet:
            bar = bar or progress_bar(total or None, unit="frame")
            bar.update(1)

    try:
        report = api.stylize_video(
            args.input, output, model=args.model, styles=args.style, force=args.force, on_frame=on_frame,
            weights=args.weights, weights_layout=args.weights_layout, device=args.device, max_pixels=args.max_pixels,
            audio=args.audio, protection=protection_from_args(args), **settings.values(),
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    work_id = report.record.extra.get("protection", {}).get("work_id")
    print(f"{report.path}  ({report.frames} frames, {report.audio_streams} audio stream(s) kept, "
          + (f"work {work_id}, " if work_id is not None else "") +
          f"{report.frames / report.seconds:.1f} frames/s, flicker {report.flicker:.2f}x the source's)")  # fmt: skip
    reactive = report.record.parameters.get("audio_analysis")
    if reactive:
        print(f"audio-reactive: {', '.join(reactive['modes'])}, tempo {reactive['tempo_bpm']} BPM")
    for note in report.notes:
        print(f"brushwork: note: {note}", file=sys.stderr)
    return 0
