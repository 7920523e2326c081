"""The pure parts of scripts/build_photo_corpus.py: the split by photo, licences, crops, manifest rows,
and the Qt resource reader (scripts/qt_rcc.py) on a resource file built here."""

import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import build_photo_corpus as corpus  # noqa: E402
import corpus_sources  # noqa: E402
import qt_rcc  # noqa: E402

# The validation photos of the corpus's first larger version (v1, before gcompris-qt-data): a model may
# have been trained on v1's training photos, so none of them may move to validation.
V1_VALIDATION_SHA256 = "14047164a96e9b28b13d4342299b7198918922affa214366887f991ecf9253ce"
# v2 adds gcompris-qt-data; a later version adds its own line and keeps these.
V2_VALIDATION_SHA256 = "93e8f4bf6b32355813ed3032923eee9785f6a1cef22416d680278419666d3a41"


def test_the_reviewed_photo_list_splits_by_scene_without_leaks():
    sides = corpus.split_groups(corpus.PHOTOS)
    assert sides["train"] and sides["val"] and not sides["train"] & sides["val"]
    by_group = {}
    for photo in corpus.PHOTOS:
        by_group.setdefault(photo.group, set()).add(photo.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    # The demo's held-out photos stay held out.
    val = {photo.photo for photo in corpus.PHOTOS if photo.split == "val"}
    assert {"scikit-image:chelsea", "scikit-image:rocket", "scikit-learn:flower", "scikit-image:coffee"} <= val


def test_a_scene_on_both_sides_is_refused():
    left = corpus.Photo("a:left", "pypi:a", "x/left.png", group="scene", split="train")
    right = corpus.Photo("a:right", "pypi:a", "x/right.png", group="scene", split="val", category="texture")
    with pytest.raises(corpus.CorpusError, match="scene"):
        corpus.split_groups([left, right])
    with pytest.raises(corpus.CorpusError, match="duplicate"):
        corpus.split_groups([left, corpus.Photo("a:left", "pypi:a", "y.png", group="other", split="train")])
    with pytest.raises(corpus.CorpusError, match="category"):
        corpus.split_groups([corpus.Photo("a:x", "pypi:a", "x.png", group="x", split="val")])


def test_validation_is_large_varied_and_keeps_every_earlier_training_photo_in_training():
    val = [photo for photo in corpus.PHOTOS if photo.split == "val"]
    assert len(val) >= 40
    assert {photo.category for photo in val} == set(corpus_sources.CATEGORIES)
    assert len({photo.source for photo in val}) >= 10
    v1 = sorted(photo.photo for photo in val if photo.source != "debian:gcompris-qt-data")
    assert hashlib.sha256("\n".join(v1).encode()).hexdigest() == V1_VALIDATION_SHA256
    v2 = sorted(photo.photo for photo in val)
    assert hashlib.sha256("\n".join(v2).encode()).hexdigest() == V2_VALIDATION_SHA256
    # Same-named photos of two folders of a package (one landmark photographed twice) share a scene.
    groups = {photo.photo: photo.group for photo in corpus.PHOTOS}
    assert groups["gcompris-qt-data:categorization-monuments-tajMahal"] == \
        groups["gcompris-qt-data:monuments-wonders-tajMahal"]


def test_debian_packages_are_allowlisted_and_never_reserved():
    for package in corpus.DEBIAN_ALLOWLIST:
        corpus.check_package_name(package)
    with pytest.raises(corpus.CorpusError):
        corpus.check_package_name("lomiri-wallpapers")
    used = {photo.source.split(":", 1)[1] for photo in corpus.PHOTOS if photo.source.startswith("debian:")}
    assert used <= set(corpus.DEBIAN_ALLOWLIST) == set(corpus_sources.LICENCE_RULES)
    # Python-package photos state their licence; Debian ones take it from the copyright file.
    assert all(photo.licence for photo in corpus.PHOTOS if photo.source.startswith("pypi:"))


def test_parse_copyright_reads_the_files_star_stanza():
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: demo\n\n"
        "Files: doc/*\nCopyright: 2010 Someone\nLicense: GFDL-1.2+\n\n"
        "Files: *\nCopyright: 2014, Ann\n           2010, Bob\nLicense: GPL-2+\n\n"
        "License: GPL-2+\n This program is free software\n"
    )
    assert corpus.parse_copyright(text) == {"copyright": "2014, Ann; 2010, Bob", "license": "GPL-2+"}
    assert corpus.parse_copyright(text, "doc/*") == {"copyright": "2010 Someone", "license": "GFDL-1.2+"}
    with pytest.raises(corpus.CorpusError):
        corpus.parse_copyright("Files: doc/*\nLicense: MIT\n")


def test_per_file_licences_from_readmes_and_spdx_sidecars():
    readme = (
        "Copyright: Someone, 2020\nLicense: CC-BY-SA 4.0\nFiles:\nkey.svg\nmap.svg\n\n"
        "Copyright: Ann\nLicense: Public Domain\nSource: https://example.org/a.jpg\nFiles:\nwonders/a.webp\n\n"
        "Copyright: Bob\nSource: https://example.org/b.jpg\nLicense: CC0-1.0\nComments: cropping\nFiles: b.webp\n"
    )
    licences = corpus.parse_readme_licences(readme)
    assert licences["wonders/a.webp"] == "Public Domain (Ann; https://example.org/a.jpg)"
    assert licences["b.webp"] == "CC0-1.0 (Bob; https://example.org/b.jpg)"
    assert licences["map.svg"] == "CC-BY-SA 4.0 (Someone, 2020)"
    sidecar = "# SPDX-FileCopyrightText: 2018 Ann <a@b.c>\n#\n# SPDX-License-Identifier: CC0-1.0\n#\n# https://x.org/p/1/\n"
    assert corpus.parse_spdx_sidecar(sidecar) == "CC0-1.0 (2018 Ann <a@b.c>; https://x.org/p/1/)"
    with pytest.raises(corpus.CorpusError):
        corpus.parse_spdx_sidecar("# nothing here\n")


def _rcc(files: dict, version: int = 3) -> bytes:
    """A Qt binary resource file holding `files` ({"dir/name": (flags, stored bytes)}), laid out as rcc does."""
    tree: dict = {}
    for path, entry in files.items():
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = entry
    names, data, nodes = b"", b"", []

    def name_offset(name):
        nonlocal names
        offset = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        return offset

    def add_children(children):  # breadth first: a folder's children are consecutive nodes
        nonlocal data
        first = len(nodes)
        for name, entry in sorted(children.items()):
            nodes.append([name_offset(name), entry])
        for index in range(first, first + len(children)):
            offset, entry = nodes[index]
            if isinstance(entry, dict):
                nodes[index] = struct.pack(">IHII", offset, 2, len(entry), add_children(entry))
            else:
                flags, stored = entry
                nodes[index] = struct.pack(">IHHHI", offset, flags, 0, 0, len(data))
                data += struct.pack(">I", len(stored)) + stored
        return first

    nodes.append(None)
    nodes[0] = struct.pack(">IHII", 0, 2, len(tree), add_children(tree))
    extra = b"\0" * 8 if version >= 2 else b""
    tree_bytes = b"".join(node + extra for node in nodes)
    header = 24 if version >= 3 else 20
    offsets = (header, header + len(tree_bytes), header + len(tree_bytes) + len(data))
    return (b"qres" + struct.pack(">IIII", version, offsets[0], offsets[1], offsets[2])
            + (struct.pack(">I", 0) if version >= 3 else b"") + tree_bytes + data + names)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_qt_rcc_reads_plain_and_zlib_entries_in_nested_folders(version):
    photo = b"RIFF....WEBPVP8 " + bytes(range(200))
    blob = _rcc({"a/b/photo.webp": (0, photo), "a/README": (1, struct.pack(">I", 11) + zlib.compress(b"License: x\n")),
                 "top.txt": (0, b"top")}, version)
    resources = qt_rcc.Resources(blob, "test.rcc")
    assert resources.paths() == ["a/README", "a/b/photo.webp", "top.txt"]
    assert resources.data("a/b/photo.webp") == photo
    assert resources.data("a/README") == b"License: x\n"
    assert resources.data("top.txt") == b"top"
    with pytest.raises(qt_rcc.RccError, match="no file"):
        resources.data("a/missing.webp")
    with pytest.raises(qt_rcc.RccError, match="not a Qt resource"):
        qt_rcc.Resources(b"PK\3\4" + blob[4:], "zip.rcc")
    with pytest.raises(qt_rcc.RccError, match="cut.rcc: damaged"):  # the names (stored last) cut short
        qt_rcc.Resources(blob[:-5], "cut.rcc")
    with pytest.raises(qt_rcc.RccError, match="bad.rcc: x.bin does not decompress"):
        qt_rcc.Resources(_rcc({"x.bin": (1, b"\0\0\0\x05garbage")}), "bad.rcc").data("x.bin")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command to compress the fixture")
def test_qt_rcc_reads_zstd_entries():
    text = b"zstd-compressed resource " * 20
    stored = subprocess.run(["zstd", "-c", "-q"], input=text, capture_output=True, check=True).stdout
    resources = qt_rcc.Resources(_rcc({"x/data.bin": (4, stored)}))
    assert resources.data("x/data.bin") == text


def test_readme_licence_looks_up_the_nearest_readme_that_names_the_file():
    readme = b"Copyright: Ann\nLicense: CC0-1.0\nFiles:\nwonders/a.webp\n"
    resources = qt_rcc.Resources(_rcc({"r/README": (0, readme), "r/wonders/a.webp": (0, b"x"),
                                       "r/wonders/b.webp": (0, b"y")}))
    assert corpus.readme_licence(resources, "r/wonders/a.webp") == "CC0-1.0 (Ann)"
    with pytest.raises(corpus.CorpusError, match="b.webp"):
        corpus.readme_licence(resources, "r/wonders/b.webp")


def test_crops_are_square_inside_the_photo_and_skip_flat_areas():
    rng = np.random.default_rng(0)
    photo = np.zeros((300, 200, 3), np.uint8)
    photo[:, 100:] = rng.integers(0, 256, (300, 100, 3), dtype=np.uint8)  # left half flat, right half textured
    crops = corpus.random_crops(photo, 64, 20, np.random.default_rng(1))
    assert len(crops) == 20
    for crop, (top, left), flipped in crops:
        assert crop.shape == (64, 64, 3)
        source = photo[top:top + 64, left:left + 64]
        np.testing.assert_array_equal(crop, source[:, ::-1] if flipped else source)
        assert crop.std() >= corpus.MIN_CROP_STD
    assert corpus.random_crops(photo, 400, 1, rng) == []


def test_composites_paste_cut_outs_inside_the_crop_without_enlarging_them():
    rng = np.random.default_rng(0)
    background = np.zeros((128, 128, 3), np.uint8)  # 128 * STAMP_FRACTION[0] > 20: never shrunk here
    stamp = np.zeros((10, 20, 4), np.uint8)
    stamp[..., 0] = 255
    stamp[2:8, 4:16, 3] = 255  # an opaque red 6x12 object in a transparent margin
    pasted = corpus.paste_stamp(background, stamp, rng)
    red = pasted[..., 0] > 128
    assert pasted.shape == (128, 128, 3) and red.sum() == 6 * 12  # pasted at its own size, not enlarged
    assert (pasted[..., 1:] == 0).all()
    crops = [("s192_0_0", background)]
    made = corpus.composite_images(crops, [("a.png", stamp), ("b.png", stamp)], 3, np.random.default_rng(1))
    assert [suffix for suffix, _, _ in made] == ["s192_0_0_stamp0", "s192_0_0_stamp1", "s192_0_0_stamp2"]
    assert all(1 <= len(names) <= 2 and (image[..., 0] > 128).any() for _, image, names in made)
    assert corpus.composite_images(crops, [], 3, rng) == []


def test_downscale_keeps_the_aspect_and_never_enlarges():
    photo = np.zeros((400, 1000, 3), np.uint8)
    assert corpus.downscale(photo, 200).shape == (200, 500, 3)
    assert corpus.downscale(photo, 800) is photo


def test_validation_images_per_scale_never_enlarge():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    images = corpus.validation_images(photo, 128, rng)
    expected = ["s128"] + [f"s{scale}" for scale in corpus.VAL_SCALES[128][1:] for _ in range(corpus.VAL_CROPS_PER_SCALE)]
    assert [name.split("_")[0] for name, _ in images] == expected
    assert all(image.shape == (128, 128, 3) for _, image in images)
    # A 300-pixel photo: its centre square and crops at 192 and 256, none at 384 (it would be enlarged).
    small = corpus.validation_images(photo[:300, :400], 256, rng)
    assert [name.split("_")[0] for name, _ in small] == ["s256"] + ["s300"] * corpus.VAL_CROPS_PER_SCALE
    assert corpus.validation_images(photo[:200], 256, rng) == []


def test_each_photo_has_its_own_random_stream():
    a = corpus.photo_rng(0, "x:a", "train128").integers(0, 1 << 30, 4)
    assert (a == corpus.photo_rng(0, "x:a", "train128").integers(0, 1 << 30, 4)).all()
    assert not (a == corpus.photo_rng(0, "x:b", "train128").integers(0, 1 << 30, 4)).all()
    assert not (a == corpus.photo_rng(1, "x:a", "train128").integers(0, 1 << 30, 4)).all()


def test_load_photo_turns_by_exif_then_by_the_album_rotation():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # white on the left
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[274] = 6  # stored rotated: display turned 90 degrees clockwise
    image.save(buffer, format="PNG", exif=exif)
    upright = corpus.load_photo(buffer.getvalue())
    assert upright.shape == (40, 20, 3) and upright[0].mean() > 200 and upright[-1].mean() < 50
    turned = corpus.load_photo(buffer.getvalue(), rotate=90)
    assert turned.shape == (20, 40, 3) and turned[:, -1].mean() > 200 and turned[:, 0].mean() < 50


def test_manifest_rows_name_the_file_its_photo_source_and_licence():
    photo = corpus.PHOTOS[0]
    row = corpus.manifest_row("train128/x.png", photo, {"version": "1.0", "licence": "CC0"})
    assert row == {"file": "train128/x.png", "photo": photo.photo, "split": photo.split,
                   "category": photo.category or "", "source": photo.source, "version": "1.0", "path": photo.path,
                   "licence": "CC0", "stamps": ""}
    stamped = {"version": "1.0", "licence": "CC0", "stamps": {"train128/y.png": ["a/b.png", "c.png"]}}
    assert corpus.manifest_row("train128/y.png", photo, stamped)["stamps"] == "a/b.png c.png"


def test_a_reserved_name_is_refused_by_its_hash(monkeypatch):
    monkeypatch.setattr(corpus_sources, "RESERVED_NAME_SHA256", {hashlib.sha256(b"some-backgrounds").hexdigest()})
    with pytest.raises(corpus.CorpusError, match="reserved"):
        corpus.check_package_name("some-backgrounds")
    corpus.check_package_name("other-backgrounds")
