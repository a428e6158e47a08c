"""Protect: an invisible watermark, signed provenance (C2PA + IPTC), encrypted originals, a registry.

``watermark`` marks and reads pixels; ``provenance`` writes and checks XMP and C2PA; ``vault``
keeps originals encrypted; ``registry`` records every protected work; ``protection`` is what the
output exit calls; ``verify`` reads it all back.
"""

from brushwork.protect.protection import Protection, default_protection, protect_image
from brushwork.protect.provenance import Keys, check_manifest, find_keys, init_keys
from brushwork.protect.registry import Registry, export_bundle
from brushwork.protect.vault import lock_file, unlock_file
from brushwork.protect.verify import Report, verify
from brushwork.protect.watermark import Detection, detect, embed

__all__ = [
    "Detection", "Keys", "Protection", "Registry", "Report", "check_manifest", "default_protection", "detect", "embed",
    "export_bundle", "find_keys", "init_keys", "lock_file", "protect_image", "unlock_file", "verify",
]  # fmt: skip
