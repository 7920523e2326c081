"""Builds the photo corpus of the shipped model, offline apart from the package registries.

Photographs come from images bundled in Python packages (scikit-image, scikit-learn, matplotlib) and
from Debian packages fetched with `apt-get download` and unpacked with `dpkg-deb -x`. Every photo is
listed by hand below (`PHOTOS`) after looking at it: renders, logos, abstract art, illustrations and
synthetic test patterns were reviewed and left out (`REJECTED`). Train and validation are split BY
PHOTO (photos of one scene share a `group` and a side), so no photo contributes to both.

Output (outside the repository, default `~/data/photo_corpus`):

```
train128/  train256/   square training crops (random position, several scales, random flip)
val256/    val128/     square validation images, one per photo and scale, for the two protocols
                       (256² with a centred 128² hole; 128² with a centred 64² hole)
manifest.json          every photo (source package, version, path, licence, split) and output file
manifest.csv           one row per output file: file, photo, split, source, licence
```

Photos are downscaled (area filter) before cropping, so that a crop shows scene context rather
than a few pixels of texture of a 4k original.

Usage:

```bash
python scripts/build_photo_corpus.py --out ~/data/photo_corpus      # apt-get download needs apt-get update once
```
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
from PIL import Image

# Debian packages whose photos were reviewed and used (name -> what they hold).
DEBIAN_ALLOWLIST = {
    "palapeli-data": "KDE jigsaw puzzle photos",
    "tuxpaint-data": "Tux Paint template photos",
}
# Reviewed and not used: everything in them is rendered or drawn.
REJECTED_PACKAGES = {
    "gnome-backgrounds": "43.1: renders and patterns (adwaita, pixels, truchet, licorice, grid, wood, symbolic, vnc)",
    "ukui-wallpapers": "renders and illustrations (ribbons, goldfish, calla, city, desert ...)",
    "sway-backgrounds": "logo wallpapers",
}
# SHA-256 of the package names reserved for independent evaluation (never used here); lomiri-* is
# refused by prefix.
RESERVED_NAME_SHA256 = {
    "7cf7054126dc250e8b3e1bec1a0323c0311a1c14d23b1fa678430b451f8e9770",
    "bc15b2c541ef0fd531147a4b2273ebbdfd46766ed4e639a11b87d94f96fa8fe2",
    "57cef635950287dc36058ba24ca6e8b388b469b0a99016ffa225cdc4705f9235",
    "0dc7277e6a8bc4776c724227bbd985ff8cf3c90b51c966018fc9725c1add6472",
}
REFUSED_PREFIXES = ("lomiri",)


@dataclasses.dataclass(frozen=True)
class Photo:
    """One reviewed photograph.

    Attributes:
        photo: a unique id, "<source>:<file stem>".
        source: "debian:<package>" or "pypi:<distribution>".
        path: the file's path inside the installed package.
        group: photos of one scene share a group (and so a split side).
        split: "train" or "val".
        licence: where the package states one per file; else None (read from the copyright file).
    """

    photo: str
    source: str
    path: str
    group: str
    split: str
    licence: str | None = None


def _pypi(dist, module_dir, name, split, licence, group=None):
    stem = Path(name).stem
    return Photo(f"{dist}:{stem}", f"pypi:{dist}", f"{module_dir}/{name}", group or stem, split, licence)


def _deb(package, directory, name, split, group=None):
    stem = Path(name).stem
    return Photo(f"{package}:{stem}", f"debian:{package}", f"{directory}/{name}", group or stem, split)


_SKIMAGE = "skimage/data"
_PALAPELI = "usr/share/palapeli/collection"
_TUXPAINT = "usr/share/tuxpaint/templates"
# Validation: the demo's four held-out photos (chelsea, rocket, flower, coffee) stay held out here
# too, plus six scenes of different kinds (architecture, sea, landscape, forest, close-up, night).
PHOTOS = (
    _pypi("scikit-image", _SKIMAGE, "astronaut.png", "train", "public domain (NASA)"),
    _pypi("scikit-image", _SKIMAGE, "brick.png", "train", "CC0 (CC0Textures)"),
    _pypi("scikit-image", _SKIMAGE, "camera.png", "train", "CC0 (Lav Varshney)"),
    _pypi("scikit-image", _SKIMAGE, "chelsea.png", "val", "CC0 (Stefan van der Walt)"),
    _pypi("scikit-image", _SKIMAGE, "coffee.png", "val", "CC0 (Rachel Michetti)"),
    _pypi("scikit-image", _SKIMAGE, "coins.png", "train", "no known copyright restrictions (scikit-image)"),
    _pypi("scikit-image", _SKIMAGE, "grass.png", "train", "CC0 (CC0Textures)"),
    _pypi("scikit-image", _SKIMAGE, "gravel.png", "train", "CC0 (CC0Textures)"),
    _pypi("scikit-image", _SKIMAGE, "hubble_deep_field.jpg", "train", "public domain (NASA)"),
    _pypi("scikit-image", _SKIMAGE, "ihc.png", "train", "no known copyright restrictions (scikit-image)"),
    _pypi("scikit-image", _SKIMAGE, "moon.png", "train", "no statement; scikit-image is BSD-3-Clause"),
    _pypi("scikit-image", _SKIMAGE, "motorcycle_left.png", "train",
          "Middlebury 2014 stereo data set, bundled with scikit-image (BSD-3-Clause)", group="motorcycle"),
    _pypi("scikit-image", _SKIMAGE, "motorcycle_right.png", "train",
          "Middlebury 2014 stereo data set, bundled with scikit-image (BSD-3-Clause)", group="motorcycle"),
    _pypi("scikit-image", _SKIMAGE, "retina.jpg", "train", "CC0 1.0"),
    _pypi("scikit-image", _SKIMAGE, "rocket.jpg", "val", "public domain (SpaceX)"),
    _pypi("scikit-learn", "sklearn/datasets/images", "china.jpg", "train", "CC BY 2.0 (danielbuechele, Flickr)"),
    _pypi("scikit-learn", "sklearn/datasets/images", "flower.jpg", "val", "CC BY 2.0 (vultilion, Flickr)"),
    _pypi("matplotlib", "matplotlib/mpl-data/sample_data", "grace_hopper.jpg", "train", "public domain (US Navy)"),
    _deb("palapeli-data", _PALAPELI, "castle-maintenon.jpg", "val"),
    _deb("palapeli-data", _PALAPELI, "cincinnati-bridge.jpg", "val"),
    _deb("palapeli-data", _PALAPELI, "citrus-fruits.jpg", "train"),
    _deb("palapeli-data", _PALAPELI, "european-honey-bee.jpg", "train"),
    _deb("palapeli-data", _PALAPELI, "panther-chameleon-female.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "burnt_bark.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "cliff.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "corn_maze.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "jellyfish.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "lighthouse.jpg", "val"),
    _deb("tuxpaint-data", _TUXPAINT, "mossy_log.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "mudstone.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "ocean_splash.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "ocean_waves.jpg", "val"),
    _deb("tuxpaint-data", _TUXPAINT, "redwoods_above.jpg", "val"),
    _deb("tuxpaint-data", _TUXPAINT, "rocks.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "sheep.jpg", "val"),
    _deb("tuxpaint-data", _TUXPAINT, "spiders_web.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "sun_behind_clouds.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "sun_behind_leaves.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "trees_above.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "trees_at_dusk.jpg", "train"),
    _deb("tuxpaint-data", _TUXPAINT, "wool_mill_machine.jpg", "train"),
)
# Reviewed files of used packages left out, with the reason.
REJECTED = {
    "scikit-image:cell.png": "microscopy blob on flat background, mostly empty",
    "scikit-image:microaneurysms.png": "tiny grey retina fragment",
    "scikit-image:clock_motion.png": "synthetic motion blur",
    "scikit-image:color.png": "synthetic colour wheel",
    "palapeli-data:backgrounds/*.jpg": "procedural table textures, not photos",
    "tuxpaint-data:mossy_bark.jpg": "letterboxed (black bars)",
    "tuxpaint-data:starters/*": "drawings",
}

TRAIN_SIZES = (128, 256)
# Short sides the photo is downscaled to before cropping, per crop size (capped at the original).
TRAIN_SCALES = {128: (192, 288, 432), 256: (320, 448, 640)}
VAL_SCALES = {128: (128, 256), 256: (256, 512)}
# Below this standard deviation (8-bit units) a crop is nearly flat (black border, clear sky) and redrawn.
MIN_CROP_STD = 6.0


class CorpusError(RuntimeError):
    """The corpus cannot be built as listed (a package or file is missing, or a name is refused)."""


def check_package_name(package: str) -> None:
    """Refuses the reserved evaluation packages and every lomiri-* package."""
    if package.startswith(REFUSED_PREFIXES) or hashlib.sha256(package.encode()).hexdigest() in RESERVED_NAME_SHA256:
        raise CorpusError(f"{package}: reserved for independent evaluation, never used for the corpus")


def split_groups(photos) -> dict[str, set[str]]:
    """`{"train": groups, "val": groups}`; raises if a group (one scene) has photos on both sides."""
    sides: dict[str, set[str]] = {"train": set(), "val": set()}
    for photo in photos:
        if photo.split not in sides:
            raise CorpusError(f"{photo.photo}: split must be 'train' or 'val', got {photo.split!r}")
        sides[photo.split].add(photo.group)
    shared = sides["train"] & sides["val"]
    if shared:
        raise CorpusError(f"photo groups on both sides of the split: {sorted(shared)}")
    ids = [photo.photo for photo in photos]
    if len(set(ids)) != len(ids):
        raise CorpusError("duplicate photo ids")
    return sides


def parse_copyright(text: str) -> dict[str, str]:
    """The `Files: *` stanza of a Debian (DEP-5) copyright file: `{"copyright", "license"}`.

    Continuation lines of the Copyright field are joined with "; ".
    """
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = [value.strip()]
        if fields.get("files", [""])[0].split() == ["*"]:
            return {"copyright": "; ".join(v for v in fields.get("copyright", []) if v),
                    "license": fields.get("license", [""])[0]}
    raise CorpusError("no 'Files: *' stanza in the copyright file")


def to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 (greyscale replicated; alpha dropped)."""
    return np.asarray(image.convert("RGB"))


def downscale(photo: np.ndarray, short_side: int) -> np.ndarray:
    """The photo with its short side at `short_side` (never enlarged), area-filtered."""
    height, width = photo.shape[:2]
    factor = short_side / min(height, width)
    if factor >= 1.0:
        return photo
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.BOX))


def random_crops(photo: np.ndarray, size: int, count: int, rng: np.random.Generator, tries: int = 20):
    """`count` square `size` crops at random positions (random horizontal flip), skipping flat ones.

    Returns a list of `(crop, (top, left), flipped)`.
    """
    height, width = photo.shape[:2]
    if min(height, width) < size:
        return []
    crops = []
    for _ in range(count):
        for _ in range(tries):
            top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
            crop = photo[top:top + size, left:left + size]
            if crop.std() >= MIN_CROP_STD:
                break
        flipped = bool(rng.random() < 0.5)
        crops.append((crop[:, ::-1] if flipped else crop, (top, left), flipped))
    return crops


def centre_square(photo: np.ndarray, size: int) -> np.ndarray:
    """The centred largest square, resized (area filter) to `size`²."""
    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(photo[top:top + side, left:left + side])
    return np.asarray(square.resize((size, size), Image.BOX if side > size else Image.BICUBIC))


def validation_images(photo: np.ndarray, size: int, rng: np.random.Generator):
    """Per photo, at each scale of `VAL_SCALES[size]`: the whole photo's centre square at `size`²
    when the scale equals `size`, otherwise one random `size` crop of the photo downscaled to that
    short side. Returns `[(name_suffix, image)]`."""
    images = []
    for scale in VAL_SCALES[size]:
        if scale == size:
            images.append((f"s{scale}", centre_square(photo, size)))
        else:
            crops = random_crops(downscale(photo, scale), size, 1, rng)
            if crops:
                crop, (top, left), _ = crops[0]
                images.append((f"s{scale}_{top}_{left}", np.ascontiguousarray(crop)))
    return images


def _module_root(dist: str) -> Path:
    import importlib.util

    module = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}[dist]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise CorpusError(f"the Python package {dist} is not installed (pip install {dist})")
    return Path(spec.origin).parent.parent


def _dist_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def fetch_debian_packages(cache: Path) -> dict[str, dict]:
    """Downloads and unpacks every allowlisted package into `cache`; returns name -> {root, version, copyright}."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for package in DEBIAN_ALLOWLIST:
        check_package_name(package)
        root = cache / package
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
            debs = sorted(cache.glob(f"{package}_*.deb"))
        if not root.is_dir():
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
        copyright_text = (root / "usr/share/doc" / package / "copyright").read_text(errors="replace")
        # .deb file names spell the epoch's colon as %3a.
        version = urllib.parse.unquote(debs[-1].name.split("_")[1])
        found[package] = {"root": root, "version": version, "copyright": parse_copyright(copyright_text)}
    return found


def _save_png(path: Path, image: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def manifest_row(file: str, photo: Photo, record: dict) -> dict:
    """One manifest.csv row: the output file and where its pixels come from."""
    return {"file": file, "photo": photo.photo, "split": photo.split, "source": photo.source,
            "version": record["version"], "path": photo.path, "licence": record["licence"]}


def build(out: Path, cache: Path, train_crops_per_photo: int, seed: int) -> dict:
    """Writes the corpus (layout in the module docstring); returns the manifest."""
    split_groups(PHOTOS)
    debian = fetch_debian_packages(cache)
    rng = np.random.default_rng(seed)
    records, rows = {}, []
    for photo in PHOTOS:
        kind, name = photo.source.split(":", 1)
        if kind == "debian":
            package = debian[name]
            file = package["root"] / photo.path
            licence = f"{package['copyright']['license']} ({package['copyright']['copyright']})"
            version = package["version"]
        else:
            file = _module_root(name) / photo.path
            licence, version = photo.licence, _dist_version(name)
        with Image.open(file) as image:
            pixels = to_rgb(image)
        records[photo.photo] = {**dataclasses.asdict(photo), "licence": licence, "version": version,
                                "width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "files": []}
        stem = photo.photo.replace(":", "__")
        if photo.split == "train":
            for size in TRAIN_SIZES:
                folder = out / f"train{size}"
                folder.mkdir(parents=True, exist_ok=True)
                scales = TRAIN_SCALES[size]
                for scale in scales:
                    scaled = downscale(pixels, scale)
                    count = -(-train_crops_per_photo // len(scales))
                    for crop, (top, left), flipped in random_crops(scaled, size, count, rng):
                        relative = f"train{size}/{stem}_s{min(scale, min(pixels.shape[:2]))}_{top}_{left}{'_f' if flipped else ''}.png"
                        _save_png(out / relative, crop)
                        records[photo.photo]["files"].append(relative)
        else:
            for size in VAL_SCALES:
                folder = out / f"val{size}"
                folder.mkdir(parents=True, exist_ok=True)
                for suffix, image in validation_images(pixels, size, rng):
                    relative = f"val{size}/{stem}_{suffix}.png"
                    _save_png(out / relative, image)
                    records[photo.photo]["files"].append(relative)
        rows.extend(manifest_row(relative, photo, records[photo.photo]) for relative in records[photo.photo]["files"])
    manifest = {"seed": seed, "debian_packages": {k: {"version": v["version"], **v["copyright"]} for k, v in debian.items()},
                "rejected_packages": REJECTED_PACKAGES, "rejected_files": REJECTED, "photos": list(records.values())}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.expanduser("~/data/photo_corpus"))
    parser.add_argument("--cache", default=os.path.expanduser("~/data/debs"), help="downloaded and unpacked .deb files")
    parser.add_argument("--train-crops-per-photo", type=int, default=60, help="per crop size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; remove it or choose another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    manifest = build(out, Path(args.cache), args.train_crops_per_photo, args.seed)
    counts = {}
    for photo in manifest["photos"]:
        for file in photo["files"]:
            counts[file.split("/")[0]] = counts.get(file.split("/")[0], 0) + 1
    sides = {side: sum(p["split"] == side for p in manifest["photos"]) for side in ("train", "val")}
    print(f"{out}: {sides['train']} training photos, {sides['val']} validation photos; files: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
