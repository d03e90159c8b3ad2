"""16-bit images that use only their low bits (12-bit X-ray and microscopy data saved as 16-bit PNG or TIFF).

imgclf reads a 16-bit image on the 0..65535 scale whatever its content (`decode._to_mode`: read by its own
maximum, two files 1/65535 apart decoded one bright and one black), so 12-bit data, at most 4,095, decodes to
0..16 of 0..255: 17 grey levels, its detail gone. Nothing in the file says how many bits it uses (PNG's sBIT is
optional and rarely written), so the scale stays; what the images use is measured on a sample and said."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode import header_sample, readable_formats

SAMPLE = 50  # 16-bit images read whole: enough to tell a 12-bit data set, few enough to cost a second
USED_SHARE = 1 / 16  # all below 4,096 of 65,535: at most 12 of the 16 bits in use


@dataclass
class UnusedBits:
    images: int  # 16-bit images sampled
    brightest: int  # their brightest pixel, of 65,535

    @property
    def bits(self) -> int:
        return max(1, int(self.brightest).bit_length())

    def message(self) -> str:
        top = int(round(self.brightest * 255 / 65535))
        return (f"{self.images} sampled 16-bit images use only their low {self.bits} bits (the brightest pixel is "
                f"{self.brightest:,} of 65,535): read on the 16-bit scale they span 0..{top} of 0..255, {top + 1} "
                f"grey level{'s' if top else ''}, and lose their detail; rescale them to the full 16 bits (or save "
                "them as 8-bit) before training")


def _sixteen_bit_maximum(path: str) -> int | None:
    """The brightest value of a 16-bit image (a file's 32-bit integers within 0..65535 are read as 16-bit too);
    None for any other image, or one that cannot be read."""
    from PIL import Image

    try:
        with Image.open(path, formats=readable_formats()) as img:  # lazily: an 8-bit file's pixels are not read
            if not img.mode.startswith("I"):
                return None
            values = np.asarray(img)
    except Exception:  # unreadable: reported by the decode pass
        return None
    if not values.size or values.min() < 0 or values.max() > 65535:
        return None
    return int(values.max())


def unused_bits(paths: list[str], sample: int = SAMPLE) -> UnusedBits | None:
    """What a sample of the 16-bit images among `paths` uses, where all of them use at most 12 bits; else None
    (no 16-bit image, or one that uses more)."""
    found = [m for m in map(_sixteen_bit_maximum, header_sample(paths, 4 * sample)) if m is not None][:sample]
    if not found or max(found) >= 65536 * USED_SHARE:
        return None
    return UnusedBits(len(found), max(found))


def warn_of_unused_bits(paths: list[str]) -> UnusedBits | None:
    """`unused_bits`, said as a warning (training a new run: once the run is made, its images are what it saw)."""
    import logging

    found = unused_bits(paths)
    if found is not None:
        logging.getLogger(__name__).warning(found.message())
    return found
