"""Verify and normalise one image into the bytes we store, plus its thumbnail.

Stored format (decided here, once):
- Stored images are always 8-bit RGB with EXIF orientation applied, so every model adapter
  and the dashboard see the same pixels without re-implementing colour handling.
- A JPEG that is already RGB and upright is stored byte-for-byte up to its end-of-image
  marker: re-encoding a lossy file only loses quality, and keeping the bytes makes the hash
  match the user's own file. Bytes after the end (a camera trailer, or a gigabyte of padding
  in a hostile file) are dropped; every other format is re-encoded, which drops them too.
- Other JPEGs (CMYK, grey, rotated) are re-encoded as JPEG at quality 95 with 4:4:4 chroma:
  the source was lossy already, and PNG would be ~5x larger for no visible gain.
- Everything else (PNG, GIF, BMP, TIFF, WebP) becomes PNG, so lossless sources stay lossless.
Encoding is deterministic, so re-importing the same file yields the same sha256 (dedup).

Memory: the pixel limit is checked from the header before decoding, and every step after the
decode works without a second full-size copy where it can (no copy for an upright image, 16-bit
scaling in strips, the thumbnail resized straight from the image), so one image costs about
its decoded size twice at most.
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
    end = jpeg_end(data) if fmt == "JPEG" else None
    if end is not None and img.mode == "RGB" and orientation in (None, 1):
        rgb, stored, ext = img, data[:end], "jpg"
    else:
        icc = img.info.get("icc_profile") if img.mode in ("RGB", "RGBA") else None
        if orientation not in (None, 1):
            img = ImageOps.exif_transpose(img) or img
        rgb = to_rgb(img)
        del img  # the decoded source may be 4x the RGB size: free it before encoding
        stored, ext = _encode(rgb, lossy=fmt in _LOSSY, icc=icc)
    thumb = rgb.resize(_thumbnail_size(rgb.size), Image.Resampling.BICUBIC, reducing_gap=2.0)
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


def _thumbnail_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, THUMBNAIL_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def jpeg_end(data: bytes) -> int | None:
    """Offset just past the first JPEG's end-of-image marker, or None if it cannot be found.

    Walks the marker segments (their lengths are explicit) and scans entropy-coded data for
    the next real marker (0xFF followed by neither 0x00 stuffing nor a restart marker).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            i += 2
            continue
        if i + 4 > n:
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker != 0xDA:
            continue
        while True:  # entropy-coded segment after start-of-scan
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return None
            following = data[j + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                i = j + 2
                continue
            i = j
            break
    return None


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
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(img).convert("RGB")
    return img.convert("RGB")


_STRIP_PIXELS = 1 << 22  # float64 work per strip: 32 MiB, whatever the image size


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    # Pillow's convert("L") clips 16-bit values at 255 (a white image); scale instead, in
    # strips, because a float64 copy of an 88-megapixel image alone is 700 MB.
    width, height = img.size
    if img.mode.startswith("I;16"):
        low, top = 0.0, 65535.0
    else:
        lo, hi = img.getextrema()
        top = float(hi)  # type: ignore[arg-type]
        top = 255.0 if top <= 255 else (65535.0 if top <= 65535 else top)
        low = min(float(lo), 0.0)  # type: ignore[arg-type]
    out = bytearray(width * height)
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for y in range(0, height, rows):
        strip = np.asarray(img.crop((0, y, width, min(height, y + rows))), dtype=np.float64)
        scaled = np.clip(np.rint((strip - low) / max(top - low, 1e-12) * 255.0), 0, 255)
        out[y * width : y * width + strip.size] = scaled.astype(np.uint8).tobytes()
    return Image.frombuffer("L", (width, height), out, "raw", "L", 0, 1)


def _encode(rgb: Image.Image, *, lossy: bool, icc: bytes | None) -> tuple[bytes, str]:
    buf = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if lossy:
        rgb.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, **extra)
        return buf.getvalue(), "jpg"
    rgb.save(buf, "PNG", **extra)
    return buf.getvalue(), "png"
