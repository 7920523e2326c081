"""The budgets for untrusted inputs, defined once for every entry point.

Every image a user hands the project (a page upload or mask, a file of a data folder, a photo given
to `dmfn inpaint`, an evaluation image) is sized from its header and refused *before* it is decoded
when it declares more than `MAX_IMAGE_PIXELS` pixels (`MAX_PHOTO_PIXELS` for `dmfn inpaint`'s
photos and masks) or more than one frame; every file read whole
(a model file, an upload body, an archive member once inflated) is refused above `MAX_INPUT_BYTES`.

`image_header(source)` reads only the header (Pillow's lazy `Image.open`), so a few kilobytes that
declare 16000 x 16000 cost nothing. It is the one header read of an image: besides the size it says
whether the image has transparency and its EXIF orientation (`upright`: the size viewers show, which
the decoders of `dmfn_tf.inpaint.files` return). Refusals are `InputTooLarge` (a `UserError`): one
line that names the input and what would help.

Example:

```python
header = image_header("photo.png")          # ImageHeader(width=..., height=..., frames=1, format="PNG", ...)
header.upright                              # (height, width) as viewers show it (EXIF orientation applied)
check_file_bytes("model.keras")             # raises InputTooLarge above MAX_INPUT_BYTES, NotRegularFile for a FIFO
```
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import warnings

from dmfn_tf.errors import UserError

# Largest image any entry point decodes: 8192 x 8192 pixels (192 MiB as uint8 RGB).
MAX_IMAGE_PIXELS = 8192 * 8192
# Largest photo `dmfn inpaint` decodes: its strategies hold the photo once and small windows, so it
# takes photos up to just below what Pillow decodes at all (twice its `Image.MAX_IMAGE_PIXELS`,
# about 13377²), e.g. 12000² (docs/large_photos.md).
MAX_PHOTO_PIXELS = 13000 * 13000
# Largest file or body read whole, and largest size an archive member may inflate to.
MAX_INPUT_BYTES = 256 * 1024 * 1024
# Largest architecture description read whole (a model file's `config.json`; the default generator's is about 30 KB).
MAX_MODEL_CONFIG_BYTES = 1024 * 1024
# Largest model description read whole (a model file's `metadata.json`, holding `dmfn_tf.model_metadata`;
# the shipped model's is about 2 KB, most of it the recipe's YAML, itself at most 16 KiB).
MAX_MODEL_METADATA_BYTES = 64 * 1024


class InputTooLarge(UserError, ValueError):
    """An input declares more pixels, frames or bytes than the budgets allow."""


class UnreadableImage(UserError, ValueError):
    """An input is not an image whose header Pillow can read."""


class NotRegularFile(UserError, ValueError):
    """A path names a FIFO, a device, a socket or a folder where a file is expected: never opened."""


# Modes with an alpha channel (besides a palette or grey image's "transparency" entry).
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
# EXIF orientations that turn the image by 90 degrees: the displayed image is transposed.
_QUARTER_TURNS = (5, 6, 7, 8)


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares: the stored size, frames, format, transparency, EXIF orientation (1-8)."""

    width: int
    height: int
    frames: int
    format: str
    has_alpha: bool = False
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def upright(self) -> tuple[int, int]:
        """`(height, width)` of the image as viewers show it (and `dmfn_tf.inpaint.files` decodes it)."""
        return (self.width, self.height) if self.orientation in _QUARTER_TURNS else (self.height, self.width)


def has_alpha(image) -> bool:
    """Whether an opened Pillow image has transparency (an alpha channel or a transparent colour)."""
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def exif_orientation(image) -> int:
    """The EXIF orientation (1-8; 1 when none or unreadable) an opened Pillow image declares before its pixels.

    Pillow's own `getexif` of a PNG decodes the pixels to look for EXIF written after them; the
    base method reads what the header held, and caches it on `image`, so that
    `ImageOps.exif_transpose` after decoding turns the image as this said.
    """
    from PIL import Image

    try:
        orientation = Image.Image.getexif(image).get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1
    return orientation if orientation in range(1, 9) else 1


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
    if isinstance(source, (str, os.PathLike)):
        check_file_bytes(source)  # a FIFO or /dev/zero named *.png would block or never end
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget below decides
            image = Image.open(stream)
        with image:
            width, height = image.size
            # A camera's MPO file is a JPEG followed by secondary images (stereo pair, preview) that no
            # reader decodes: it is a still image.
            animated = getattr(image, "is_animated", False) and image.format != "MPO"
            frames = int(getattr(image, "n_frames", 1)) if animated else 1
            header = ImageHeader(width, height, frames, image.format or "unknown", has_alpha(image),
                                 exif_orientation(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"{label}: not a readable image ({type(err).__name__})") from None
    except Image.DecompressionBombError:
        raise InputTooLarge(f"{label}: declares too many pixels; the limit is {max_pixels} pixels "
                            f"(about {int(max_pixels ** 0.5)}²): downscale it first") from None
    if header.frames > 1:
        raise InputTooLarge(f"{label}: an animation of {frames} frames; give a single still image")
    if header.pixels > max_pixels:
        raise InputTooLarge(f"{label}: {width}x{height} is {header.pixels} pixels, above the limit of {max_pixels} "
                            f"(about {int(max_pixels ** 0.5)}²): downscale it first")
    return header


def check_file_bytes(path, max_bytes: int = MAX_INPUT_BYTES) -> int:
    """The size of a regular file (symbolic links followed), refused above `max_bytes`; returns the size in bytes.

    Raises:
        NotRegularFile: a FIFO, a device, a socket or a folder (checked with `os.stat`, never opened).
        InputTooLarge: more than `max_bytes` bytes.
        OSError: the path cannot be examined (missing, permission denied).
    """
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise NotRegularFile(f"{os.fspath(path)}: not a regular file ({file_kind(status.st_mode)})")
    size = status.st_size
    if size > max_bytes:
        raise InputTooLarge(f"{os.fspath(path)}: {size} bytes, above the limit of {max_bytes} bytes")
    return size


def file_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words ("a FIFO", "a folder", ...)."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def read_file_bytes(path, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The contents of a regular file of at most `max_bytes`, read without ever blocking or reading on.

    The path is examined with `os.stat` before it is opened (a FIFO, a device or a socket is never
    opened); the file is then opened non-blocking and examined again (it may have been swapped in
    between), and at most `max_bytes` + 1 bytes are read (it may have grown).

    Raises:
        NotRegularFile, InputTooLarge: as `check_file_bytes`.
        OSError: the file cannot be opened or read.
    """
    check_file_bytes(path, max_bytes)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotRegularFile(f"{os.fspath(path)}: not a regular file ({file_kind(status.st_mode)})")
        contents = file.read(max_bytes + 1)
    if len(contents) > max_bytes:
        raise InputTooLarge(f"{os.fspath(path)}: more than {max_bytes} bytes, above the limit")
    return contents
