"""The validation protocols over `evaluation.protocol.evaluate`: cached baselines, same strokes, one LPIPS."""

import dataclasses
import json

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data

from dmfn_tf.evaluation import protocol, validation
from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate, evaluation_inputs
from dmfn_tf.evaluation.report import EvaluationInputError
from dmfn_tf.evaluation.statistics import paired_difference
from dmfn_tf.models.generator import build_generator
from dmfn_tf.models.lpips_weights import LPIPSWeightsError, load_lpips_checkpoint

PHOTOS = ("astronaut", "coffee", "chelsea")
# Small stand-ins for p128 and p128_free: the same kinds of settings at 64², two baselines.
SETTINGS = EvaluationSettings(image_size=64, grid_cases=0, baselines=("ns", "patchmatch"))
SMALL = {
    "s64": validation.ValidationProtocol("s64", "val64", SETTINGS),
    "s64_free": validation.ValidationProtocol("s64_free", "val64", dataclasses.replace(SETTINGS, mask="free_form")),
}


@pytest.fixture(scope="module", autouse=True)
def lpips_weights():
    try:
        load_lpips_checkpoint("alex")
    except LPIPSWeightsError as err:
        pytest.skip(f"LPIPS AlexNet weights not available offline: {err}")


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus" / "val64"
    folder.mkdir(parents=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).resize((64, 64), Image.BICUBIC).save(folder / f"{name}.png")
    return tmp_path / "corpus"


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return build_generator(nf=4, n_blocks=1)


def test_the_four_campaign_protocols():
    assert list(validation.PROTOCOLS) == ["p256", "p128", "p256_free", "p128_free"]
    p256_free = validation.PROTOCOLS["p256_free"]
    assert (p256_free.folder, p256_free.settings.image_size, p256_free.settings.mask) == ("val256", 256, "free_form")
    assert validation.PROTOCOLS["p128"].settings.mask == "center_box"
    assert "patchmatch" in validation.PROTOCOLS["p128"].settings.baselines
    with pytest.raises(EvaluationInputError, match="unknown validation protocols"):
        validation.protocols_named(["p512"])


def test_baselines_are_cached_and_rescored_when_the_set_or_settings_change(corpus, monkeypatch):
    calls = []
    real_evaluate = validation.evaluate
    monkeypatch.setattr(validation, "evaluate", lambda *args, **kwargs: calls.append(args) or real_evaluate(*args, **kwargs))
    first = validation.baseline_scores(corpus, SMALL["s64"])
    assert len(calls) == 1 and (corpus / "baselines_s64.json").is_file()
    assert set(first["scores"]) == set(SMALL["s64"].settings.baselines)
    assert validation.baseline_scores(corpus, SMALL["s64"]) == first and len(calls) == 1  # from the cache

    Image.fromarray(data.rocket()).resize((64, 64)).save(corpus / "val64" / "coffee.png")  # same name, new content
    changed = validation.baseline_scores(corpus, SMALL["s64"])
    assert len(calls) == 2 and changed["scores"]["ns"]["psnr"] != first["scores"]["ns"]["psnr"]
    reseeded = validation.ValidationProtocol("s64", "val64", dataclasses.replace(SETTINGS, seed=1))
    validation.baseline_scores(corpus, reseeded)
    assert len(calls) == 3


def test_free_form_strokes_are_the_same_for_every_model_and_differ_per_image(corpus):
    settings = SMALL["s64_free"].settings
    _, masks = evaluation_inputs(corpus / "val64", settings, [0, 1, 2])
    _, again = evaluation_inputs(corpus / "val64", settings, [2, 0])
    np.testing.assert_array_equal(again, masks[[2, 0]])
    assert not np.array_equal(masks[0], masks[1]) and 0 < masks.mean() < 0.7
    box = evaluation_inputs(corpus / "val64", SMALL["s64"].settings, [0])[1][0]
    assert box[16:48, 16:48].all() and box.sum() == 32 * 32


def test_validate_compares_with_the_best_classic_method_image_by_image(corpus, generator):
    protocol_misses = protocol.lpips_metric.cache_info().misses
    result = validation.evaluate_protocol(generator, corpus, SMALL["s64_free"])
    score = validation.protocol_score(result)
    # The cached baselines are exactly what scoring them now gives.
    fresh = evaluate(corpus / "val64", SMALL["s64_free"].settings)
    for method in SMALL["s64_free"].settings.baselines:
        np.testing.assert_array_equal(result.scores[method]["lpips"], fresh.scores[method]["lpips"])
    means = {method: fresh.summary[method]["lpips"] for method in SMALL["s64_free"].settings.baselines}
    assert score.best_classic == min(means, key=means.get)
    assert score.best_classic_lpips == pytest.approx(means[score.best_classic])
    expected = paired_difference(result.scores["model"]["lpips"], fresh.scores[score.best_classic]["lpips"])
    assert score.lpips_difference == expected
    assert score.lpips == pytest.approx(np.mean(result.scores["model"]["lpips"]))
    # Two more validations build no further LPIPS network.
    both = validation.validate(generator, corpus, list(SMALL.values()))
    assert list(both) == ["s64", "s64_free"]
    assert protocol.lpips_metric.cache_info().misses <= protocol_misses + 1


def test_curve_rows_append_atomically_and_keep_their_columns(tmp_path):
    difference = {"mean": -0.01, "low": -0.02, "high": 0.001}
    score = validation.ProtocolScore(0.2, 25.0, 0.8, 1.5, "patchmatch", 0.21, difference, {})
    path = tmp_path / "validation.csv"
    validation.append_curve_row(path, validation.curve_row(100, 12.34, 20.0, {"p128": score}))
    validation.append_curve_row(path, validation.curve_row(200, 24.0, 40.0, {"p128": score}))
    rows = validation.read_curve(path)
    assert list(rows[0]) == validation.curve_columns(["p128"])
    assert [row["step"] for row in rows] == ["100", "200"] and rows[0]["cpu_seconds"] == "12.3"
    assert rows[1]["p128_best_classic"] == "patchmatch" and float(rows[1]["p128_lpips_vs_best_high"]) == 0.001
    with pytest.raises(EvaluationInputError, match="no columns"):
        validation.append_curve_row(path, validation.curve_row(300, 1, 1, {"p256": score}))
    assert json.loads(json.dumps(rows))  # plain strings
