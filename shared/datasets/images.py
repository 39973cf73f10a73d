"""Verify and normalise one image into the bytes we store, plus its thumbnail.

Stored format (decided here, once):
- Stored images are always 8-bit RGB with EXIF orientation applied, so every model adapter
  and the dashboard see the same pixels without re-implementing colour handling.
- A JPEG that is already RGB and upright is stored byte-for-byte: re-encoding a lossy file
  only loses quality, and keeping the bytes makes the hash match the user's own file.
- Other JPEGs (CMYK, grey, rotated) are re-encoded as JPEG at quality 95 with 4:4:4 chroma:
  the source was lossy already, and PNG would be ~5x larger for no visible gain.
- Everything else (PNG, GIF, BMP, TIFF, WebP) becomes PNG, so lossless sources stay lossless.
Encoding is deterministic, so re-importing the same file yields the same sha256 (dedup).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

THUMBNAIL_SIDE = 256
JPEG_QUALITY = 95
# Formats Pillow decodes reliably that users actually export; anything else is refused.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "TIFF", "WEBP"})
_LOSSY = frozenset({"JPEG", "MPO"})
_ORIENTATION = 0x0112


class ImageRejected(Exception):
    """The file is not an image we can store; the message says what to do."""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    ext: str
    data: bytes
    width: int
    height: int
    original_format: str
    thumbnail: bytes


def normalise(data: bytes, *, max_pixels: int) -> StoredImage:
    """Decode `data`, reject bombs/truncation/non-images, return the bytes to store."""
    img = _open_checked(data, max_pixels)
    fmt = img.format or "?"
    orientation = img.getexif().get(_ORIENTATION)
    if fmt == "JPEG" and img.mode == "RGB" and orientation in (None, 1):
        rgb, stored, ext = img, data, "jpg"
    else:
        src_mode = img.mode
        icc = img.info.get("icc_profile") if src_mode in ("RGB", "RGBA") else None
        upright = ImageOps.exif_transpose(img) or img
        rgb = to_rgb(upright)
        stored, ext = _encode(rgb, lossy=fmt in _LOSSY, icc=icc)
    thumb = rgb.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=85)
    return StoredImage(
        sha256=hashlib.sha256(stored).hexdigest(),
        ext=ext,
        data=stored,
        width=rgb.width,
        height=rgb.height,
        original_format=fmt,
        thumbnail=buf.getvalue(),
    )


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns (and past 2x raises) on huge images; treat both as a rejection, unless
        # the user raised our own limit above Pillow's, in which case our check below decides.
        if max_pixels <= (Image.MAX_IMAGE_PIXELS or max_pixels):
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        else:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_too_big(_bomb_detail(exc), max_pixels)) from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected(
                "is not an image file (or a format we cannot read); replace it with a "
                "JPEG or PNG, or remove it"
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(f"cannot be decoded ({exc}); re-export it as JPEG or PNG") from exc
        if img.format not in ACCEPTED_FORMATS:
            raise ImageRejected(
                f"is a {img.format} file, which we do not import; convert it to JPEG or PNG"
            )
        width, height = img.size
        if width * height > max_pixels:
            raise ImageRejected(
                _too_big(f"{width}x{height} = {width * height:,} pixels", max_pixels)
            )
        if width == 0 or height == 0:
            raise ImageRejected("has zero width or height; re-export it")
        try:
            img.load()  # decodes everything: catches truncated and corrupt files
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_too_big(_bomb_detail(exc), max_pixels)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected(
                f"is truncated or corrupt ({exc}); copy or export the file again"
            ) from exc
    return img


def _bomb_detail(exc: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


def _too_big(detail: str, max_pixels: int) -> str:
    return (
        f"is too large to decode safely ({detail}); the limit is {max_pixels:,} pixels "
        "(MIRADA_MAX_IMAGE_PIXELS). Downscale the image or raise the limit"
    )


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: alpha over white, 16/32-bit and float scaled, CMYK and palette converted."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(img).convert("RGB")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    # Pillow's convert("L") clips 16-bit values at 255 (a white image); scale instead.
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        top = 65535.0
    else:
        top = float(arr.max()) if arr.size else 1.0
        top = 255.0 if top <= 255 else (65535.0 if top <= 65535 else top)
    low = min(float(arr.min()), 0.0) if arr.size else 0.0
    scaled = (arr - low) / max(top - low, 1e-12) * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _encode(rgb: Image.Image, *, lossy: bool, icc: bytes | None) -> tuple[bytes, str]:
    buf = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if lossy:
        rgb.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, **extra)
        return buf.getvalue(), "jpg"
    rgb.save(buf, "PNG", **extra)
    return buf.getvalue(), "png"
