"""The models a `dmfn app` page may choose (dmfn_tf/app/models.py): labels, regular files, one message for unknowns."""

import os
import shutil

import pytest

from dmfn_tf.app.models import ModelChoices
from dmfn_tf.app.refusal import Refusal
from dmfn_tf.errors import UserError


def test_labels_are_names_not_paths(tmp_path, tiny_generator_file, shipped_model):
    run = tmp_path / "run_a"
    run.mkdir()
    shutil.copyfile(tiny_generator_file, run / "generator.keras")
    choices = ModelChoices(tiny_generator_file, allowed=[str(run), shipped_model, tiny_generator_file])
    assert choices.labels == ["generator.keras", "shipped", "run_a"]
    assert choices.default == "generator.keras"
    assert choices.path("") == ("generator.keras", os.path.realpath(tiny_generator_file))
    assert choices.path("run_a")[1] == os.path.realpath(run / "generator.keras")


def test_without_a_startup_model_the_shipped_one_is_the_default(shipped_model):
    assert ModelChoices().default == "shipped"


def test_no_model_at_all(no_shipped_model):
    with pytest.raises(Refusal, match="no model: start dmfn app with --model"):
        ModelChoices().path("")


def test_unknown_names_get_one_message(tiny_generator_file, tmp_path):
    choices = ModelChoices(tiny_generator_file)
    messages = []
    for name in ["/no/such.keras", str(tmp_path), tiny_generator_file, "shipped2", "../generator.keras"]:
        with pytest.raises(Refusal) as caught:
            choices.path(name)
        messages.append(str(caught.value).replace(repr(name[:60]), "NAME"))
    assert len(set(messages)) == 1, messages
    with pytest.raises(Refusal, match="'model' must be the name"):
        choices.path(["generator.keras"])


def test_a_fifo_is_refused_at_start_up_and_at_load_time(tmp_path, tiny_generator_file):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="pipe.keras: not a regular file"):
        ModelChoices(str(fifo))
    model = tmp_path / "later.keras"
    shutil.copyfile(tiny_generator_file, model)
    choices = ModelChoices(str(model))
    model.unlink()
    os.mkfifo(model)
    with pytest.raises(Refusal, match="^later.keras: not a regular file") as caught:
        choices.load("")
    assert str(tmp_path) not in str(caught.value)


def test_one_model_is_loaded_and_kept(tiny_generator_file):
    choices = ModelChoices(tiny_generator_file)
    generator = choices.load("")
    assert choices.load("generator.keras") is generator and generator.outputs[0].shape[-1] == 3
