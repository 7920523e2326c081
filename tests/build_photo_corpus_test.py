"""The pure parts of scripts/build_photo_corpus.py: the split by photo, licences, crops, manifest rows."""

import hashlib
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import build_photo_corpus as corpus  # noqa: E402


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
    right = corpus.Photo("a:right", "pypi:a", "x/right.png", group="scene", split="val")
    with pytest.raises(corpus.CorpusError, match="scene"):
        corpus.split_groups([left, right])
    with pytest.raises(corpus.CorpusError, match="duplicate"):
        corpus.split_groups([left, corpus.Photo("a:left", "pypi:a", "y.png", group="other", split="train")])


def test_debian_packages_are_allowlisted_and_never_reserved():
    for package in corpus.DEBIAN_ALLOWLIST:
        corpus.check_package_name(package)
    with pytest.raises(corpus.CorpusError):
        corpus.check_package_name("lomiri-wallpapers")
    used = {photo.source.split(":", 1)[1] for photo in corpus.PHOTOS if photo.source.startswith("debian:")}
    assert used <= set(corpus.DEBIAN_ALLOWLIST)
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
    with pytest.raises(corpus.CorpusError):
        corpus.parse_copyright("Files: doc/*\nLicense: MIT\n")


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


def test_downscale_keeps_the_aspect_and_never_enlarges():
    photo = np.zeros((400, 1000, 3), np.uint8)
    assert corpus.downscale(photo, 200).shape == (200, 500, 3)
    assert corpus.downscale(photo, 800) is photo


def test_validation_images_per_scale():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    images = corpus.validation_images(photo, 128, rng)
    assert [name.split("_")[0] for name, _ in images] == [f"s{scale}" for scale in corpus.VAL_SCALES[128]]
    assert all(image.shape == (128, 128, 3) for _, image in images)


def test_manifest_rows_name_the_file_its_photo_source_and_licence():
    photo = corpus.PHOTOS[0]
    row = corpus.manifest_row("train128/x.png", photo, {"version": "1.0", "licence": "CC0"})
    assert row == {"file": "train128/x.png", "photo": photo.photo, "split": photo.split, "source": photo.source,
                   "version": "1.0", "path": photo.path, "licence": "CC0"}


def test_a_reserved_name_is_refused_by_its_hash(monkeypatch):
    monkeypatch.setattr(corpus, "RESERVED_NAME_SHA256", {hashlib.sha256(b"some-backgrounds").hexdigest()})
    with pytest.raises(corpus.CorpusError, match="reserved"):
        corpus.check_package_name("some-backgrounds")
    corpus.check_package_name("other-backgrounds")
