"""`DMFNTrainer.train_step` against three training steps of the authors' PyTorch code.

The fixture (`../shared/fixtures/train_step_reference.npz` and `.json`, described in the README
there) holds the initial generator and discriminator state dicts in the authors' names, a batch,
every loss term of steps 1-3 and the weights after steps 1 and 3, computed by the authors' code in
float64 with their two bugs patched (VGG input normalisation, alignment grid), and the step-1
terms of the unpatched code. The VGG19 weights are regenerated from the NumPy recipe of that
README. Everything enters through the converter (`dmfn_tf.convert.official_mapping`) and the
configuration; the step runs in float32.

Tolerances come from measurements of five float32 instance-norm reductions that differ only in
rounding (one reduction over H*W, two axes, compensated means; the fixture README has more). Step 1
is robust: its terms agree to <= 1.7e-6 relative in all five. After the first update the
agreement is a coin toss: a few generator activations sit within float32 rounding of a ReLU's kink,
and whether float32 puts them on the float64 side decides whether ~0 or ~175 generator weights
flip the sign of their first update. That outcome depends on the reduction order (and so can
differ between CPUs), so the later checks admit both: step-2 terms within 4e-3 measured (1e-2
here), step-3 terms within 9e-2 (0.2 here), step-3 weights and output only loosely. The step-1
updates carry the precise checks:
- every effective weight within 2 lr (a sign flip), at most 0.15 % of G's (measured <= 0.075 %,
  Keras' default Adam epsilon gives 0.32 %) and 0.05 % of D's (measured <= 0.018 %; Keras' epsilon
  convention at 1e-8 gives 4.3 %) beyond 1e-6;
- BatchNorm running statistics within 1e-6 (measured 3.6e-7; Keras' biased running variance is
  2.5e-2 away).
"""

import hashlib
import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.config import config_from_dict
from dmfn_tf.convert.official_mapping import (
    discriminator_to_reference_state_dict,
    generator_to_reference_state_dict,
    load_reference_discriminator_weights,
    load_reference_generator_weights,
)
from dmfn_tf.inpaint.contract import generator_input
from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
from dmfn_tf.training.trainer import build_trainer

LEARNING_RATE = 2e-4
# Step-1 relative tolerance per term: about 5x the largest difference measured (in brackets).
STEP1_TOLERANCES = {
    "l1": 5e-7,  # 4.5e-8
    "self_guided": 5e-6,  # 1.4e-6
    "vgg_fm": 1e-6,  # 1.2e-7
    "dis_fm": 2e-7,  # 1.1e-8
    "adv_g": 2e-6,  # 3.8e-7
    "align": 1e-5,  # 1.7e-6
    "g_total": 5e-7,  # 3.9e-8
    "d_loss": 2e-6,  # 3.3e-7
}
TERMS = tuple(STEP1_TOLERANCES)
# The fixture README's recipe: VGG19's 13 convs up to relu5_1 as (in, out) channels.
VGG19_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
# Biases that feed an instance or batch norm: their exact gradient is 0, so in float32 Adam turns
# rounding noise into updates of up to lr (README). G keeps only these two effective biases.
G_EFFECTIVE_BIASES = ("encoder.0.conv.bias", "decoder.3.conv.bias")


def _recipe_vgg19_weights():
    """[(weight OIHW, bias)] of the fixture README's NumPy recipe."""
    layers = []
    for i, (c_in, c_out) in enumerate(VGG19_CONVS):
        rs = np.random.RandomState(1000 + i)
        weight = (rs.randn(c_out, c_in, 3, 3) * np.sqrt(2.0 / (c_in * 9))).astype(np.float32)
        bias = (0.01 * rs.randn(c_out)).astype(np.float32)
        layers.append((weight, bias))
    return layers


def _config(preprocessing="torch", **train):
    return config_from_dict({
        "name": "train_step_reference",
        "model": {"nf": 16, "n_blocks": 2, "block": "official", "image_size": 128, "discriminator_nf": 8},
        # Random weights are replaced by the recipe below.
        "perceptual": {"network": "vgg19", "weights": "none", "preprocessing": preprocessing},
        "loss": {"lambda_vgg": 25.0, "eta_dis_fm": 5.0, "mu_adv": 0.003, "gamma_align": 1.0, "guidance": "max"},
        "train": {"batch_size": 2, "learning_rate": LEARNING_RATE, "beta_1": 0.5, "beta_2": 0.999,
                  "lr_decay_steps": [], "adam_epsilon": 1e-8, "adam_epsilon_convention": "pytorch", **train},
    })


class _Reference:
    def __init__(self, directory):
        npz = np.load(directory / "train_step_reference.npz", allow_pickle=False)
        self.arrays = {key: npz[key] for key in npz.files}
        self.meta = json.loads((directory / "train_step_reference.json").read_text())
        self.batch = {name: tf.constant(self.arrays[f"batch/{name}"]) for name in ("image", "mask", "bbox")}

    def state(self, prefix):
        return {key[len(prefix):]: value for key, value in self.arrays.items() if key.startswith(prefix)}

    def after_step(self, net, step):
        """The reference state after `step`: init + delta, in float64."""
        init, delta = self.state(f"init/{net}/"), self.state(f"step{step}_delta/{net}/")
        return {key: init[key].astype(np.float64) + delta[key] for key in delta}


def _reference_trainer(reference, cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
        trainer = build_trainer(cfg)
    for check, (weight, bias) in zip(reference.meta["vgg_recipe_check"], _recipe_vgg19_weights()):
        assert hashlib.sha256(weight.tobytes()).hexdigest() == check["weight_sha256"], check["keras"]
        trainer.perceptual.get_layer(check["keras"]).set_weights([weight.transpose(2, 3, 1, 0), bias])
    load_reference_generator_weights(trainer.generator, reference.state("init/G/"), source="init/G")
    load_reference_discriminator_weights(trainer.discriminator, reference.state("init/D/"), source="init/D")
    return trainer


def _step(trainer, batch):
    for metric in trainer.metrics:
        metric.reset_state()  # the logs are then this step's values
    return {name: float(value) for name, value in trainer.train_step(batch).items()}


def run_reference_steps(reference, cfg, steps=3):
    """Runs `steps` train steps from the fixture's initial state; returns logs, states and outputs per step."""
    trainer = _reference_trainer(reference, cfg)
    record = {}
    for step in range(1, steps + 1):
        logs = _step(trainer, reference.batch)
        record[step] = {"logs": logs}
        if step in (1, 3):
            raw = trainer.generator(generator_input(reference.batch["image"], reference.batch["mask"]), training=False)
            record[step].update(
                G=generator_to_reference_state_dict(trainer.generator),
                D=discriminator_to_reference_state_dict(trainer.discriminator),
                raw=raw.numpy(),
            )
    return record


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return _Reference(fixtures_dir)


@pytest.fixture(scope="module")
def steps(reference):
    return run_reference_steps(reference, _config())


def _relative(value, expected):
    return abs(value - expected) / abs(expected)


def weight_differences(state, expected, net):
    """|ours - reference| split into effective weights, normalisation-fed biases and BatchNorm statistics."""
    groups = {"effective": [], "norm_fed_bias": [], "running_mean": [], "running_var": []}
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            continue
        difference = np.abs(state[key].astype(np.float64) - value).ravel()
        kind = key.rsplit(".", 1)[-1]
        if kind in ("running_mean", "running_var"):
            groups[kind].append(difference)
        elif kind == "bias" and (key.endswith(".conv.bias") if net == "D" else key not in G_EFFECTIVE_BIASES):
            groups["norm_fed_bias"].append(difference)
        else:
            groups["effective"].append(difference)
    return {kind: np.concatenate(parts) for kind, parts in groups.items() if parts}


def test_loss_terms_match_the_authors_code(steps, reference):
    for step in (1, 2, 3):
        logs = steps[step]["logs"]
        for name in TERMS:
            tolerance = {1: STEP1_TOLERANCES[name], 2: 1e-2, 3: 0.2}[step]
            expected = reference.meta["terms"][name][step - 1]
            assert _relative(logs[name], expected) <= tolerance, (step, name, logs[name], expected)


def test_weights_after_step_1_match_the_authors_code(steps, reference):
    for net in ("G", "D"):
        differences = weight_differences(steps[1][net], reference.after_step(net, 1), net)
        effective = differences["effective"]
        share = {"G": 1.5e-3, "D": 5e-4}[net]
        assert np.mean(effective > 1e-6) <= share, (net, int(np.sum(effective > 1e-6)), effective.size)
        # A sign flip moves a weight by 2 lr; nothing can move further in one step.
        for kind in ("effective", "norm_fed_bias"):
            assert differences[kind].max() <= 2.05 * LEARNING_RATE, (net, kind, differences[kind].max())
    statistics = weight_differences(steps[1]["D"], reference.after_step("D", 1), "D")
    assert statistics["running_mean"].max() <= 1e-6
    assert statistics["running_var"].max() <= 1e-6  # PyTorch's unbiased batch variance
    # Measured 7e-6 or 5e-3, by the coin toss of the module docstring.
    assert np.abs(steps[1]["raw"] - reference.arrays["step1/raw"]).max() <= 2e-2


def test_weights_after_step_3_stay_close(steps, reference):
    # Medians measured: G 3.7e-6 or 2.8e-5, D 4.5e-8 or 4.3e-6 (coin toss); one update moves a weight by about lr.
    for net, tolerance in (("G", 1e-4), ("D", 2e-5)):
        effective = weight_differences(steps[3][net], reference.after_step(net, 3), net)["effective"]
        assert np.median(effective) <= tolerance, (net, np.median(effective))
    assert np.abs(steps[3]["raw"] - reference.arrays["step3/raw"]).max() <= 0.5  # measured 0.07 or 0.25


def test_the_published_codes_bugs_are_told_apart(steps, reference):
    """The unpatched step-1 terms (both bugs, and each alone) are far outside the tolerance."""
    logs = steps[1]["logs"]
    variants = reference.meta["bug_variants_step1"]
    assert _relative(logs["vgg_fm"], variants["unpatched"]["vgg_fm"]) > 1e-2
    assert _relative(logs["self_guided"], variants["unpatched"]["self_guided"]) > 5e-3
    assert _relative(logs["align"], variants["unpatched"]["align"]) > 0.1
    assert _relative(logs["align"], variants["grid_bug_only"]["align"]) > 0.1
    assert _relative(logs["vgg_fm"], variants["vgg_norm_bug_only"]["vgg_fm"]) > 1e-2


def test_authors_vgg_normalisation_reproduces_their_terms(reference):
    """`perceptual.preprocessing: torch_authors_bug` gives the published code's VGG terms (grid bug patched)."""
    record = run_reference_steps(reference, _config(preprocessing="torch_authors_bug"), steps=1)
    expected = reference.meta["bug_variants_step1"]["vgg_norm_bug_only"]
    for name in TERMS:
        assert _relative(record[1]["logs"][name], expected[name]) <= STEP1_TOLERANCES[name], (name, record[1]["logs"][name])
