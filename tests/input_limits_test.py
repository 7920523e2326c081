"""The budgets of dmfn_tf.input_limits: sized from the header, refused before decoding."""

import io

import numpy as np
import pytest
from PIL import Image

import image_headers
from dmfn_tf.input_limits import InputTooLarge, UnreadableImage, check_file_bytes, image_header


def test_a_real_image_reports_its_size(encoded_image):
    header = image_header(encoded_image((5, 7, 3)))
    assert (header.width, header.height, header.frames, header.format) == (7, 5, 1, "PNG")


@pytest.mark.parametrize("side", [9000, 16000, 100000])
def test_a_huge_declared_size_is_refused_from_the_header(side, png_declaring):
    with pytest.raises(InputTooLarge, match=f"{side}x{side}|too many pixels"):
        image_header(png_declaring(side, side), name="mask.png")


def test_the_budget_is_a_parameter(png_declaring):
    image_header(png_declaring(100, 100), max_pixels=100 * 100)
    with pytest.raises(InputTooLarge, match="mask.png"):
        image_header(png_declaring(101, 100), name="mask.png", max_pixels=100 * 100)


def test_an_animation_is_refused():
    frames = [Image.fromarray(np.full((4, 4, 3), i, np.uint8)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputTooLarge, match="3 frames"):
        image_header(buffer.getvalue())


def test_a_camera_mpo_is_a_still_image():
    first, second = (Image.fromarray(np.full((4, 6, 3), value, np.uint8)) for value in (0, 255))
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    header = image_header(buffer.getvalue())
    assert (header.width, header.height, header.frames, header.format) == (6, 4, 1, "MPO")


def test_not_an_image_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_bytes(b"hello")
    with pytest.raises(UnreadableImage, match="notes.png: not a readable image"):
        image_header(path)


def test_file_bytes_budget(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"x" * 100)
    assert check_file_bytes(path, max_bytes=100) == 100
    with pytest.raises(InputTooLarge, match="model.keras: 101 bytes"):
        path.write_bytes(b"x" * 101)
        check_file_bytes(path, max_bytes=100)


def test_a_fifo_or_a_device_is_refused_without_being_opened(tmp_path):
    import os

    from dmfn_tf.input_limits import NotRegularFile

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO"), (zero, "a character device"), (tmp_path, "a folder")):
        with pytest.raises(NotRegularFile, match=f"not a regular file \\({kind}\\)"):
            image_header(path)
        with pytest.raises(NotRegularFile):
            check_file_bytes(path)


@pytest.mark.parametrize("image_format", image_headers.FORMATS)
def test_huge_headers_of_every_format_are_refused(image_format):
    assert image_header(image_headers.declaring(image_format, 16, 12)).pixels == 16 * 12  # the header is read
    for side in (9000, 16000):
        with pytest.raises(InputTooLarge, match="^photo: .*(above the limit|too many pixels)"):
            image_header(image_headers.declaring(image_format, side, side), name="photo")
