"""brushwork info: any output's record, read without loading torch."""

from __future__ import annotations

import argparse
import json

from brushwork.cli.common import add_parser
from brushwork.records import read_record  # brushwork.api.info is this function, read without the engines (#21)


def register(sub) -> dict:
    """Add this capability's verbs to ``sub``; return {verb: handler}."""
    p = add_parser(sub, "info", "print the record of any brushwork output (image, GIF or MP4)")
    p.add_argument("image", help="a file brushwork wrote")
    return {"info": _run_info}


def _run_info(args: argparse.Namespace) -> int:
    print(json.dumps(read_record(args.image).to_dict(), indent=2, sort_keys=True))
    return 0
