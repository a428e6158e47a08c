"""Protect: an invisible watermark, signed provenance (C2PA + IPTC), encrypted originals, a registry.

``watermark`` marks and reads pixels; ``provenance`` writes and checks XMP and C2PA;
``vault`` keeps originals encrypted; ``registry`` records every protected work.
"""
