"""The budgets for untrusted inputs, defined once for every entry point.

Every image a user hands the project (a page upload or mask, a file of a data folder, a photo given
to `dmfn inpaint`, an evaluation image) is sized from its header and refused *before* it is decoded
when it declares more than `MAX_IMAGE_PIXELS` pixels or more than one frame; every file read whole
(a model file, an upload body, an archive member once inflated) is refused above `MAX_INPUT_BYTES`.

`image_header(source)` reads only the header (Pillow's lazy `Image.open`), so a few kilobytes that
declare 16000 x 16000 cost nothing. Refusals are `InputTooLarge` (a `UserError`): one line that names
the input and what would help.

Example:

```python
header = image_header("photo.png")          # ImageHeader(width=..., height=..., frames=1, format="PNG")
check_file_bytes("model.keras")             # raises InputTooLarge above MAX_INPUT_BYTES
```
"""

from __future__ import annotations

import dataclasses
import io
import os

from dmfn_tf.errors import UserError

# Largest image any entry point decodes: 8192 x 8192 pixels (192 MiB as uint8 RGB).
MAX_IMAGE_PIXELS = 8192 * 8192
# Largest file or body read whole, and largest size an archive member may inflate to.
MAX_INPUT_BYTES = 256 * 1024 * 1024


class InputTooLarge(UserError, ValueError):
    """An input declares more pixels, frames or bytes than the budgets allow."""


class UnreadableImage(UserError, ValueError):
    """An input is not an image whose header Pillow can read."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    frames: int
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _name(source, name: str | None) -> str:
    if name is not None:
        return name
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"


def image_header(source, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """Reads an image's size from its header and checks it against the pixel budget.

    Args:
        source: a path or the encoded bytes.
        name: how messages name the input (default: the path, or "<bytes>").
        max_pixels: the budget (default `MAX_IMAGE_PIXELS`).

    Raises:
        InputTooLarge: more than `max_pixels` pixels, or several frames (an animation).
        UnreadableImage: not an image Pillow recognises from its header.
    """
    from PIL import Image, UnidentifiedImageError

    label = _name(source, name)
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with Image.open(stream) as image:
            width, height = image.size
            # A camera's MPO file is a JPEG followed by secondary images (stereo pair, preview) that no
            # reader decodes: it is a still image.
            animated = getattr(image, "is_animated", False) and image.format != "MPO"
            frames = int(getattr(image, "n_frames", 1)) if animated else 1
            image_format = image.format or "unknown"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"{label}: not a readable image ({type(err).__name__})") from None
    except Image.DecompressionBombError:
        raise InputTooLarge(f"{label}: declares too many pixels; the limit is {max_pixels} pixels "
                            f"(about {int(max_pixels ** 0.5)}²): downscale it first") from None
    header = ImageHeader(width, height, frames, image_format)
    if header.frames > 1:
        raise InputTooLarge(f"{label}: an animation of {frames} frames; give a single still image")
    if header.pixels > max_pixels:
        raise InputTooLarge(f"{label}: {width}x{height} is {header.pixels} pixels, above the limit of {max_pixels} "
                            f"(about {int(max_pixels ** 0.5)}²): downscale it first")
    return header


def check_file_bytes(path, max_bytes: int = MAX_INPUT_BYTES) -> int:
    """The size of a regular file, refused above `max_bytes`; returns the size in bytes."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise InputTooLarge(f"{os.fspath(path)}: {size} bytes, above the limit of {max_bytes} bytes")
    return size
