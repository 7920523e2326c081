"""A small set of real photos for the demo, built offline from images that ship inside Python packages.

scikit-image and scikit-learn bundle a few natural photographs. The demo trains on crops of some of
them and evaluates on *other, whole photos* that no training crop comes from, so that the
evaluation measures generalisation to unseen images, not memorisation of their pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from dmfn_tf.errors import UserError

# Held out for evaluation: never cropped into the training set.
EVAL_PHOTOS = ("skimage:chelsea.png", "skimage:rocket.jpg", "sklearn:flower.jpg", "skimage:coffee.png")
# Training photos. The stereo pair motorcycle_left/right shows one scene, so both stay on this side.
TRAIN_PHOTOS = (
    "skimage:astronaut.png",
    "skimage:hubble_deep_field.jpg",
    "skimage:ihc.png",
    "skimage:motorcycle_left.png",
    "skimage:motorcycle_right.png",
    "skimage:retina.jpg",
    "sklearn:china.jpg",
    "skimage:camera.png",
    "skimage:brick.png",
    "skimage:grass.png",
    "skimage:gravel.png",
    "skimage:coins.png",
    "skimage:moon.png",
)


def _package_image_dir(package: str) -> Path:
    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data"
    if package == "sklearn":
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images"
    raise ValueError(f"unknown photo package {package!r}")


def photo_path(photo: str) -> Path:
    """Resolves "package:file" to the file bundled inside that package."""
    package, filename = photo.split(":", 1)
    path = _package_image_dir(package) / filename
    if not path.is_file():
        raise UserError(f"sample photo {photo} not found at {path}: is {package} installed?")
    return path


def load_photo(photo: str) -> np.ndarray:
    """The photo as RGB uint8 [H, W, 3] (grayscale photos are replicated to three channels)."""
    with Image.open(photo_path(photo)) as image:
        return np.asarray(image.convert("RGB"))


def _random_square_crop(photo: np.ndarray, rng: np.random.Generator, size: int, min_side: int) -> np.ndarray:
    height, width = photo.shape[:2]
    side = int(rng.integers(min(min_side, height, width), min(height, width) + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC)
    crop = np.asarray(crop)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def build_demo_photo_set(out_dir: str | os.PathLike, size: int = 128, train_crops: int = 600, eval_crops_per_photo: int = 4, seed: int = 0) -> dict:
    """Writes `out_dir/train/*.png` (crops of the training photos) and `out_dir/eval/*.png` (crops of
    the held-out photos), each `size`² RGB.

    Training crops have random sides between `size` and the photo's short side, a random position
    and a random horizontal flip, resized (bicubic) to `size`². Evaluation images are the centred
    square of each held-out photo plus `eval_crops_per_photo - 1` random squares of it.

    Returns:
        A dict with the two folder paths and the photo names on each side.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    train_dir, eval_dir = out / "train", out / "eval"
    train_dir.mkdir(parents=True, exist_ok=True)
    eval_dir.mkdir(parents=True, exist_ok=True)
    photos = {name: load_photo(name) for name in TRAIN_PHOTOS}
    names = list(photos)
    for index in range(train_crops):
        name = names[index % len(names)]
        crop = _random_square_crop(photos[name], rng, size, min_side=size)
        Image.fromarray(crop).save(train_dir / f"{Path(name.split(':')[1]).stem}_{index:04d}.png")
    for name in EVAL_PHOTOS:
        photo = load_photo(name)
        stem = Path(name.split(":")[1]).stem
        height, width = photo.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        centre = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC)
        centre.save(eval_dir / f"{stem}_centre.png")
        for index in range(eval_crops_per_photo - 1):
            crop = _random_square_crop(photo, rng, size, min_side=max(size, side // 2))
            Image.fromarray(crop).save(eval_dir / f"{stem}_{index}.png")
    return {"train_dir": str(train_dir), "eval_dir": str(eval_dir), "train_photos": list(TRAIN_PHOTOS), "eval_photos": list(EVAL_PHOTOS)}
