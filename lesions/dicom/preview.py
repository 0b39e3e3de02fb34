"""PNG previews of an ultrasound image, one per frame (runs in the sandbox: pixel decoding of
untrusted data, JPEG and JPEG 2000 included, never happens in a web worker).

Colour handling follows the Photometric Interpretation after decoding (PS3.3 C.7.6.3.1.2):
PALETTE COLOR through the palette (`apply_color_lut`), YBR_FULL(_422) to RGB
(`convert_color_space`; frames are decoded raw, so this runs once), YBR_RCT/ICT and RGB as they
are (the JPEG 2000 decoder applies the component transform), and
MONOCHROME1/2 through the VOI LUT or window, scaled to 8 bits (MONOCHROME1 inverted).
The PNG has the image's own pixel size, so a click at (x, y) on it is pixel (x, y) of the file.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_voi_lut, convert_color_space, iter_pixels


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float64)
    low, high = float(np.min(arr)), float(np.max(arr))
    if high <= low:
        return np.zeros(arr.shape, dtype=np.uint8)
    return ((arr - low) * (255.0 / (high - low))).round().astype(np.uint8)


def frame_rgb(frame: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """One decoded frame as an 8-bit RGB or grey array ready for PNG."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        # Palette entries are 8 or 16 bits (PS3.3 C.7.6.3.1.5).
        if rgb.dtype != np.uint8:
            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            rgb = (rgb >> (bits - 8)).astype(np.uint8) if bits > 8 else rgb.astype(np.uint8)
        return rgb
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return _to_uint8(convert_color_space(frame, photometric, "RGB"))
    if photometric in ("RGB", "YBR_RCT", "YBR_ICT"):
        # JPEG 2000 decoders apply the reversible/irreversible component transform themselves.
        return _to_uint8(frame)
    grey = (
        _to_uint8(apply_voi_lut(frame, ds))
        if ("WindowCenter" in ds or "VOILUTSequence" in ds)
        else _to_uint8(frame)
    )
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey


def render_frames(ds: Dataset, source, *, max_frames: int):
    """Yield PNG bytes per frame of `ds` (read from `source`, the path of the file)."""
    ds_out = Dataset()
    for index, frame in enumerate(iter_pixels(source, ds_out=ds_out, raw=True)):
        if index >= max_frames:
            break
        photometric = str(
            ds_out.get("PhotometricInterpretation") or ds.get("PhotometricInterpretation") or ""
        )
        image = Image.fromarray(frame_rgb(frame, ds, photometric))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
        yield buffer.getvalue()
