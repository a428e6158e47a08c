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
    add_preserve_colors,
    add_protection_options,
    add_run_options,
    add_strength,
    add_style_blend_weights,
    default_output,
    progress_bar,
    protection_from_args,
)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "video", "stylise a video frame by frame, steadied, audio kept (fast or adain)")
    p.add_argument("input", help="the video (anything FFmpeg reads)")
    p.add_argument("--model", required=True, help="a 'fast' or 'adain' .safetensors model")
    p.add_argument("--style", nargs="+", help="style image(s), for an adain model")
    add_output_options(p, "OUT.mp4", "VIDEO-STYLE.mp4 here (the model's name for a fast model)")
    add_strength(p, "the video")
    add_style_blend_weights(p)
    add_preserve_colors(p)
    p.add_argument("--style-size", type=int, help="adain: long side of the style images (default: the frame's)")
    p.add_argument("--stabilize", type=float, default=0.5, help="0 = off; higher = steadier (< 1)")
    p.add_argument("--no-flow", dest="flow", action="store_false",
                   help="blend only where the source stands still, without optical-flow warping")  # fmt: skip
    p.add_argument("--audio-reactive", nargs="+", choices=("strength", "blend", "scale"),
                   help="let the soundtrack drive the style per frame: strength (loudness/onsets), blend (brightness; "
                   "adain with two styles), scale (tempo -> stroke size)")  # fmt: skip
    p.add_argument("--audio", help="sound to react to and to put in the output (default: the clip's own)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, 0..51: lower is better and larger")
    add_run_options(p, device=False)
    add_protection_options(p)
    add_backbone_options(p.add_argument_group("backbone (adain models)"), pooling=False)
    add_params_from(p, Replay(p, "video", lambda a: {"content": a.input, "styles": a.style, "model": a.model}))
    return {"video": _run_video}


def _run_video(args: argparse.Namespace) -> int:
    output = args.output or default_output(args.input, args.style[0] if args.style else args.model, ".mp4")
    bar = None

    def on_frame(done: int, total: int) -> None:
        nonlocal bar
        if not args.quiet:
            bar = bar or progress_bar(total or None, unit="frame")
            bar.update(1)

    try:
        report = api.stylize_video(
            args.input, output, model=args.model, styles=args.style, strength=args.strength,
            stabilize=args.stabilize, flow=args.flow, crf=args.crf, force=args.force, on_frame=on_frame,
            max_frames=args.max_frames, style_blend_weights=args.style_blend_weights,
            preserve_colors=args.preserve_colors, style_size=args.style_size, backbone=args.backbone,
            weights=args.weights, weights_layout=args.weights_layout, device=args.device,
            max_pixels=args.max_pixels, audio_reactive=args.audio_reactive, audio=args.audio,
            protection=protection_from_args(args),
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
