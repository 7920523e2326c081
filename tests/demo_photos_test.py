import numpy as np
from PIL import Image

from dmfn_tf.data.demo_photos import EVAL_PHOTOS, TRAIN_PHOTOS, build_demo_photo_set, load_photo


def test_held_out_photos_are_disjoint_from_training_photos():
    assert not set(EVAL_PHOTOS) & set(TRAIN_PHOTOS)
    # The motorcycle stereo pair is one scene: both halves must sit on the same side.
    assert {"skimage:motorcycle_left.png", "skimage:motorcycle_right.png"} <= set(TRAIN_PHOTOS)


def test_no_training_crop_comes_from_an_evaluation_photo(tmp_path):
    info = build_demo_photo_set(tmp_path, size=32, train_crops=26, eval_crops_per_photo=2, seed=1)
    train = sorted((tmp_path / "train").glob("*.png"))
    evals = sorted((tmp_path / "eval").glob("*.png"))
    assert len(train) == 26 and len(evals) == 2 * len(EVAL_PHOTOS)
    eval_stems = {name.split(":")[1].rsplit(".", 1)[0] for name in EVAL_PHOTOS}
    assert not any(path.name.rsplit("_", 1)[0] in eval_stems for path in train)
    for path in train + evals:
        with Image.open(path) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
    assert info["eval_photos"] == list(EVAL_PHOTOS)


def test_centre_eval_image_is_the_resized_centre_square(tmp_path):
    build_demo_photo_set(tmp_path, size=32, train_crops=1, eval_crops_per_photo=1)
    photo = load_photo("skimage:rocket.jpg")  # 427 x 640: the centre square is columns 106:533
    expected = np.asarray(Image.fromarray(photo[:, 106:533]).resize((32, 32), Image.BICUBIC))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "eval" / "rocket_centre.png")), expected)
