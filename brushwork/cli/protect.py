"""brushwork protect | verify | unlock | keys | registry: watermarks, provenance, encrypted originals, the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brushwork.cli.common import add_parser, add_protection_options, add_verb_group, name_list, protection_from_args
from brushwork.errors import BrushworkError


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "protect", "a watermarked, signed, registered copy; --encrypt keeps the original private")
    p.add_argument("image", help="the image to protect")
    p.add_argument("-o", "--output", help="the protected copy / public preview (default IMAGE.protected.png)")
    p.add_argument("--encrypt", action="store_true", help="encrypt the original into the vault; -o is a preview")
    p.add_argument("--vault", help="vault folder (default: beside the registry)")
    p.add_argument("--preview-size", type=int, help="long side of the preview, 64-4096 px and smaller than the "
                   "original (default with --encrypt: 1024, or half the original's long side if smaller)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite the output and the vault file")
    add_protection_options(p)

    v = add_parser(sub, "verify", "is this an intact brushwork output, a modified one, or unknown?")
    v.add_argument("files", nargs="*", help="images or MP4/GIF clips to check (with --self-test: images to test "
                   "the watermark on)")  # fmt: skip
    v.add_argument("--json", action="store_true", help="everything found, as JSON")
    v.add_argument("--trust", action="append", default=[], help="an extra trusted CA certificate (PEM); repeatable")
    v.add_argument("--registry", help="registry file (default: in the user data folder)")
    v.add_argument("--self-test", action="store_true", help="embed, attack and decode: the watermark's robustness")
    v.add_argument("--attacks", type=name_list, help="with --self-test: only these attacks (comma-separated)")

    u = add_parser(sub, "unlock", "restore the byte-identical original from a vault file")
    u.add_argument("vault_file", help="a .bwvault file")
    u.add_argument("-o", "--output", help="where to write it (default: its original name, here)")
    u.add_argument("--force", action="store_true", help="overwrite an existing file")

    _, ksub = add_verb_group(sub, "keys", "signing keys for C2PA provenance", "keys_verb")
    ki = add_parser(ksub, "init", "make a local CA and a signing certificate (the CA is verify's trust anchor); "
                    "the first protected output does this by itself")  # fmt: skip
    ki.add_argument("--dir", help="where to put them (default: the user config folder)")
    ki.add_argument("--organization", default="brushwork user", help="the name in the certificates")
    ki.add_argument("--force", action="store_true", help="replace existing keys (old signatures stop being trusted)")
    add_parser(ksub, "show", "where the keys are")

    _, rsub = add_verb_group(sub, "registry", "the registry of protected works", "registry_verb")
    re_ = add_parser(rsub, "export", "a registration bundle (JSON + C2PA manifest) for a registry office")
    re_.add_argument("work_id", type=int)
    re_.add_argument("-o", "--output", required=True, help="BUNDLE.json")
    re_.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    rf = add_parser(rsub, "find", "the work an image (maybe modified) came from: watermark, then perceptual hash")
    rf.add_argument("image", help="an image, or an MP4/GIF clip")
    rf.add_argument("--json", action="store_true", help="the matching entry, as JSON")
    for q in (re_, rf):
        q.add_argument("--registry", help="registry file (default: in the user data folder)")
    return {"protect": _protect, "verify": _verify, "unlock": _unlock, "keys": _keys, "registry": _registry}


def _protect(args: argparse.Namespace) -> int:
    from brushwork.protect import protect_image
    from brushwork.protect.vault import passphrase_from_user

    source = Path(args.image)
    output = args.output or str(source.with_name(f"{source.stem}.{'preview' if args.encrypt else 'protected'}.png"))
    protection = protection_from_args(args)
    passphrase = passphrase_from_user(confirm=True) if args.encrypt else None
    result = protect_image(source, output, protection=protection, encrypt=args.encrypt, vault_dir=args.vault,
                           passphrase=passphrase, preview_side=args.preview_size, force=args.force)  # fmt: skip
    print(f"wrote {result['output']}" + (f" (work {result['work_id']})" if result["work_id"] is not None else ""))
    if result["vault"]:
        print(f"original encrypted to {result['vault']}")
    if protection.provenance and protection.keys is None:
        print("not signed: no signing key could be made (see above); run 'brushwork keys init'")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from brushwork.protect import Registry, verify
    from brushwork.protect.verify import INTACT

    if args.self_test:
        return _self_test(args)
    if not args.files:
        raise BrushworkError("verify needs a file (or --self-test)")
    reports = [verify(f, args.trust, Registry(args.registry)) for f in args.files]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict(), indent=2))
    else:
        for report in reports:
            print(report.line())
    # Like cmp/diff: 0 when every file is an intact brushwork output (signed by a trusted signer, or
    # unsigned and byte-identical to the registry's entry), 1 otherwise (2 is an error).
    return 0 if all(r.verdict == INTACT for r in reports) else 1


def _self_test(args: argparse.Namespace) -> int:
    from brushwork.media import load_image
    from brushwork.protect.robustness import ATTACKS, false_positives, self_test, synthetic_images

    if args.files:
        images = [load_image(f) for f in args.files]
    else:
        examples = Path(__file__).resolve().parents[1] / "examples"
        images = [load_image(p) for p in sorted(examples.glob("*.jpg"))]
    unknown = set(args.attacks or []) - set(ATTACKS)
    if unknown:
        raise BrushworkError(f"unknown attack {sorted(unknown)[0]!r}; choose from {', '.join(ATTACKS)}")
    result = self_test(images, args.attacks)
    hits, count, _ = false_positives(images + synthetic_images(4))
    if args.json:
        rows = [dict(r.__dict__, detection_rate=r.detection_rate) for r in result.attacks]
        payload = {"images": result.images, "psnr": result.psnr, "ssim": result.ssim, "attacks": rows}
        print(json.dumps(dict(payload, false_positives=hits, clean_images=count), indent=2))
        return 0
    print(f"{result.images} images marked: PSNR {result.psnr:.1f} dB, SSIM {result.ssim:.4f}")
    print(f"{'attack':<16} {'bit accuracy':>12} {'detected':>9} {'wrong id':>9}")
    for r in result.attacks:
        print(f"{r.attack:<16} {r.bit_accuracy:>12.3f} {r.detection_rate:>8.0%} {r.wrong_id:>9}")
    print(f"false positives on unmarked images (the originals and {count - len(images)} synthetic): {hits}/{count}")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    from brushwork.protect.vault import passphrase_from_user, unlock_file

    written = unlock_file(args.vault_file, passphrase_from_user(), args.output, args.force)
    print(f"wrote {written}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from brushwork.protect.provenance import config_dir, find_keys, init_keys

    if args.keys_verb == "init":
        keys = init_keys(args.dir, args.force, args.organization)
        print(f"signing chain {keys.chain}\nprivate key   {keys.key} (mode 0600)\ntrust anchor  {keys.anchors[0]}")
        return 0
    keys = find_keys()
    print(
        json.dumps(keys.to_dict(), indent=2)
        if keys
        else f"no keys in {config_dir() / 'keys'} yet; the first protected output makes them (or 'brushwork keys init')"
    )
    return 0


def _registry(args: argparse.Namespace) -> int:
    from brushwork.media import load_image
    from brushwork.protect import Registry, export_bundle
    from brushwork.protect.clips import is_clip, middle_frame, sample_frames

    registry = Registry(args.registry)
    if args.registry_verb == "export":
        print(f"wrote {export_bundle(registry, args.work_id, args.output, args.force)}")
        return 0
    if is_clip(args.image):
        image = sample_frames(args.image)
        middle_frame(image, args.image)  # damaged data: no frame to look it up by
    else:
        image = load_image(args.image)
    work, how, distance = registry.find(image)
    if args.json:
        print(json.dumps({"work": work.to_dict() if work else None, "found_by": how, "hash_distance": distance}))
    elif work is None:
        print(f"{args.image}: no registered work matches")
    else:
        print(
            f"{args.image}: work {work.id} ({work.path}), found by {how}"
            + (f", hash distance {distance}" if distance is not None else "")
        )
    return 0 if work else 1
