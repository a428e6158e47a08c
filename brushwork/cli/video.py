"""brushwork video: any fast engine on a video."""

from __future__ import annotations

import argparse

from brushwork.cli.common import add_backbone_options, progress_bar
from brushwork.errors import BrushworkError


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = sub.add_parser("video", help="stylise a video frame by frame, steadied, audio kept (fast or adain)")
    p.add_argument("input", help="the video (anything FFmpeg reads)")
    p.add_argument("--model", required=True, help="a 'fast' or 'adain' .safetensors model")
    p.add_argument("--style", nargs="+", help="style image(s), for an adain model")
    p.add_argument("--alpha", type=float, default=1.0, help="adain: 0 = the video, 1 = full style")
    p.add_argument("--strength", type=float, default=1.0, help="fast: 0 = the video, 1 = full style")
    p.add_argument("--stabilize", type=float, default=0.5, help="0 = off; higher = steadier (< 1)")
    p.add_argument(
        "--no-flow",
        dest="flow",
        action="store_false",
        help="blend only where the source stands still, without optical-flow warping",
    )
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality: lower is better and larger")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    add_backbone_options(p.add_argument_group("backbone (adain models)"))
    return {"video": _run_video}


def _run_video(args: argparse.Namespace) -> int:
    from brushwork.checkpoints import load_meta
    from brushwork.device import pick_device
    from brushwork.files import check_output_path
    from brushwork.media import load_image
    from brushwork.style.video import stylize_video

    output = check_output_path(args.output, args.force, ".mp4")
    device = pick_device(args.device)
    meta = load_meta(args.model)
    if meta.get("kind") == "fast-style":
        from brushwork.style.feedforward import apply_feedforward, load_feedforward

        net, _ = load_feedforward(args.model, device)

        def stylise(frame):
            return apply_feedforward(net, [frame], args.strength, device=device)[0]
    elif meta.get("kind") == "adain":
        from brushwork.backbones import load_backbone
        from brushwork.style.adain import apply_adain, encoder_name, load_adain

        if not args.style:
            raise BrushworkError("an adain model needs --style")
        backbone = load_backbone(
            encoder_name(args.model, args.backbone, args.weights), args.weights, args.weights_layout
        )
        model = load_adain(args.model, backbone, device)
        styles = [load_image(s) for s in args.style]

        def stylise(frame):
            return apply_adain(model, frame, styles, alpha=args.alpha, device=device)
    else:
        raise BrushworkError(f"{args.model}: not a 'fast-style' or 'adain' model")
    bar = None

    def on_frame(done: int, total: int) -> None:
        nonlocal bar
        if not args.quiet:
            bar = bar or progress_bar(total or None, unit="frame")
            bar.update(1)

    try:
        report = stylize_video(
            args.input, output, stylise, args.stabilize, args.flow, args.max_frames, args.crf, on_frame
        )
    finally:
        if bar is not None:
            bar.close()
    print(f"{output}  ({report.frames} frames, {report.audio_streams} audio stream(s) kept, "
          f"{report.frames / report.seconds:.1f} frames/s, flicker {report.flicker:.2f}x the source's)")  # fmt: skip
    return 0
