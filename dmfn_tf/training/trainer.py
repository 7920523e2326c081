"""The DMFN training model: one generator update, then one discriminator update, per batch.

`DMFNTrainer` is a `keras.Model` that owns the generator, the discriminator and the frozen VGG19,
and overrides `train_step` / `test_step`, so that plain `trainer.fit(dataset)` trains DMFN with the
recipe of docs/design.md §5–6. `build_trainer(cfg, strategy)` builds and compiles one from an
`ExperimentConfig`.

Public API (stable; `dmfn_tf.training.run` and the `dmfn train` command build on it):

- `DMFNTrainer(generator, discriminator, perceptual, loss_config=None, name="dmfn_trainer")`
  - `.generator`, `.discriminator`, `.perceptual`, `.loss_config`, `.local_size`
  - `.compile(g_optimizer, d_optimizer, learning_rate_schedule=None, **kwargs)`; then `.g_optimizer`, `.d_optimizer`
  - `.build_optimizers()`: creates both optimizers' slots; call it inside `strategy.scope()`
  - `.train_step(data)` = `.generator_step(...)` then `.discriminator_step(...)`
  - `.test_step(data)`, `.call({"image", "mask"})` (the composite, so `predict` works)
  - `train_metric_names()`, `TEST_METRICS`: the names that `fit` / `evaluate` log
- `build_trainer(cfg, strategy=None, rate_variable=True) -> DMFNTrainer` (compiled, optimizers built)
- `make_optimizer(train_cfg, name, ema_momentum=0, rate_variable=True) -> keras.optimizers.Optimizer` (Adam)
- `learning_rate_schedule(train_cfg)` (the halving schedule; `ConstantLearningRate` without decay steps)
- `crop_local(images, bbox, size)`: the differentiable local-discriminator crop

Batches are dicts (a tuple would be unpacked by Keras as `(x, y)`):
`{"image": [B, S, S, 3] in [-1, 1], "mask": [B, S, S, 1] (1 = hole), "bbox": int32 [B, 4]}` with
`bbox = (top, left, height, width)` of the local-discriminator box, `height = width = S / 2`.

Decisions, for readers comparing with the reference PyTorch code:

- The discriminator runs in training mode in the generator step too, as the reference's module is
  in train mode throughout: BatchNorm normalises with the statistics of the batch it is given, and
  its moving averages are updated by every call (G step and D step), exactly as PyTorch does. Only
  the moving averages change in the G step; D's trainable weights are updated only by the D step.
- D is called on the real and the fake batch separately (two BatchNorm batches), as the reference
  does; in the G step on the fake first, in the D step on the real first.
- The D step sees the composite computed in the G step (before the G update), detached.
- Distribution: every per-example loss is summed over the replica's examples and divided by the
  global batch size (as `tf.nn.compute_average_loss` does), so the replicas' gradients, which the
  optimizers sum, are those of the global batch mean. The global batch size and the RaGAN batch
  means of the logits are all-reduced across replicas (`ReplicaContext.all_reduce`, whose gradient
  is itself an all-reduce), so an N-replica step equals a one-device step on the same global batch
  except for BatchNorm: with `sync_batchnorm=False` each replica normalises with its own
  sub-batch's statistics; with `sync_batchnorm=True` (`train.sync_batchnorm`) the statistics are
  global and the equality is exact up to float rounding (tested: `tests/distribute_test.py`).
- Logged metrics are global batch means, identical on every replica, so Keras' per-replica
  reduction of the logs changes nothing.
- Mixed precision: under a `mixed_float16` / `mixed_bfloat16` global policy the networks compute in
  half precision, while the composite, every loss and every metric are float32 (the generator's
  output is cast before compositing; `dmfn_tf.models.losses` casts its inputs). Under `mixed_float16`,
  `make_optimizer` wraps Adam in `keras.optimizers.LossScaleOptimizer` and the steps scale the
  loss with `optimizer.scale_loss` (a no-op for plain optimizers). A loss-scaled optimizer skips
  an update whose gradients overflow and halves its scale (measured: a tiny random model on CPU
  skips its first ~9 G updates); a skipped update does not advance `optimizer.iterations`, so
  count training steps elsewhere. Mixed precision is for GPUs.
- XLA is off unless `compile(..., jit_compile=True)` asks for it.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from dmfn_tf.models import losses
from dmfn_tf.config import ExperimentConfig, LossConfig, TrainConfig
from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.inpaint.contract import composite, generator_input
from dmfn_tf.models.generator import build_generator
from dmfn_tf.models.initializers import initialize
from dmfn_tf.models.perceptual import build_perceptual_network
from dmfn_tf.training.optimizers import ema_weights, make_adam

# Metric names logged by `fit` besides one per registered loss term (`train_metric_names`): the
# weighted generator total, the discriminator loss, and "psnr" of the composite in dB.
TRAIN_SUMMARY_METRICS = ("g_total", "d_loss", "psnr")
# Metric names logged by `evaluate`.
TEST_METRICS = ("l1", "psnr", "ssim")
REQUIRED_TRAIN_KEYS = ("image", "mask", "bbox")


def train_metric_names() -> tuple[str, ...]:
    """The names `fit` logs: one per term of `losses.GENERATOR_LOSS_TERMS`, then `TRAIN_SUMMARY_METRICS`."""
    return (*losses.GENERATOR_LOSS_TERMS, *TRAIN_SUMMARY_METRICS)


def crop_local(images, bbox, size: int):
    """Crops a `size` x `size` window per image at `(top, left) = bbox[:, :2]`, differentiably.

    Implemented as two batched gathers (rows, then columns), so the gradient flows back to `images`.

    Args:
        images: `[B, H, W, C]`.
        bbox: int32 `[B, 4]` = `(top, left, height, width)`; only top and left are read (the data
            pipeline makes every box `size` square). A box reaching past the image is an error on
            CPU; on GPU `tf.gather` fills it with zeros.
        size: side of the crop (`image_size // 2` for the local discriminator).

    Returns:
        `[B, size, size, C]`.

    Example:

    ```python
    images = tf.reshape(tf.range(2 * 4 * 4, dtype=tf.float32), (2, 4, 4, 1))
    crop_local(images, tf.constant([[0, 0, 2, 2], [2, 1, 2, 2]]), 2)[1, ..., 0].numpy()
    # -> array([[25., 26.],
    # -> [29., 30.]], dtype=float32)
    ```
    """
    bbox = tf.cast(bbox, tf.int32)
    offsets = tf.range(size, dtype=tf.int32)
    rows = bbox[:, 0:1] + offsets
    columns = bbox[:, 1:2] + offsets
    crops = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(crops, columns, axis=2, batch_dims=1)


def _share_of_global_mean(per_example, global_batch_size):
    """This replica's share of the global batch mean: `sum(per_example) / global_batch_size`.

    Summed over replicas it is the mean over the global batch (`tf.nn.compute_average_loss`, with
    the global size given as a float tensor, since it is itself all-reduced).
    """
    return tf.reduce_sum(tf.cast(per_example, tf.float32)) / global_batch_size


def _to_unit_range(images):
    return tf.clip_by_value((images + 1.0) * 0.5, 0.0, 1.0)


# The training log's PSNR of an exact reconstruction (a flat, saturated crop can be one), so that the
# running mean stays finite and the non-finite guard keeps meaning "a loss diverged".
MAX_LOGGED_PSNR = 100.0


def _psnr_per_example(output, target):
    """PSNR in dB on [0, 1]-scaled images, at most `MAX_LOGGED_PSNR` (the evaluation module has the 8-bit protocol version)."""
    return tf.minimum(tf.image.psnr(_to_unit_range(output), _to_unit_range(target), max_val=1.0), MAX_LOGGED_PSNR)


def _ssim_per_example(output, target):
    return tf.image.ssim(_to_unit_range(output), _to_unit_range(target), max_val=1.0)


def _all_reduce_sum(values):
    """Sums `values` (a tensor or a list) over all replicas; the identity without distribution.

    Differentiable: the gradient of an all-reduced sum is the all-reduced sum of the gradients.
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError(
            "DMFNTrainer steps must run in a replica context: call them through `fit` or "
            "`strategy.run`, not directly inside `strategy.scope()`."
        )
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


class DMFNTrainer(keras.Model):
    """Trains the DMFN generator against the global + local discriminator (docs/design.md §5–6).

    Each `train_step` makes one generator update, then one discriminator update on the same batch,
    and logs one running mean per loss term (`train_metric_names()`). `call` returns the composite, so
    `predict` inpaints; `test_step` logs L1, PSNR and SSIM of the composite (`TEST_METRICS`).

    Build it inside the strategy's scope, then `compile` and `build_optimizers` there too (or use
    `build_trainer`, which does all three).

    Args:
        generator: `dmfn_tf.models.generator.build_generator(...)`.
        discriminator: `dmfn_tf.models.discriminator.build_discriminator(...)`, built for the training
            image size.
        perceptual: `dmfn_tf.models.perceptual.build_perceptual_network(...)`, frozen.
        loss_config: a `dmfn_tf.config.LossConfig` (loss weights, guidance mode); defaults to the
            reference configuration.
        name: the model's name.
        warmup_steps: generator updates (counted by `g_optimizer.iterations`) during which the
            discriminator terms of the objective (dis_fm, adv_g) have zero weight (`train.warmup_steps`).

    Example:

    ```python
    strategy = make_strategy("mirrored")
    with strategy.scope():
        trainer = DMFNTrainer(build_generator(), build_discriminator(), build_perceptual_network())
        trainer.compile(g_optimizer=make_optimizer(train_cfg, "generator_adam"),
                        d_optimizer=make_optimizer(train_cfg, "discriminator_adam"),
                        learning_rate_schedule=learning_rate_schedule(train_cfg))
        trainer.build_optimizers()
    trainer.fit(dataset, steps_per_epoch=1000, epochs=100)  # dict batches: image, mask, bbox
    ```
    """

    def __init__(
        self,
        generator,
        discriminator,
        perceptual,
        loss_config: LossConfig | None = None,
        name="dmfn_trainer",
        warmup_steps: int = 0,
    ):
        super().__init__(name=name)
        self.generator = generator
        self.discriminator = discriminator
        self.perceptual = perceptual
        self.perceptual.trainable = False
        self.loss_config = loss_config if loss_config is not None else LossConfig()
        self.loss_config.validate()
        self.warmup_steps = int(warmup_steps)
        self.local_size = int(discriminator.inputs[0].shape[1])
        self.image_size = int(discriminator.inputs[1].shape[1])
        self.g_optimizer = None
        self.d_optimizer = None
        self.learning_rate_schedule = None
        self._trackers = {name: keras.metrics.Mean(name=name) for name in dict.fromkeys(train_metric_names() + TEST_METRICS)}
        # Every sub-model is already built; nothing is left for Keras to infer from data.
        self.built = True

    @property
    def metrics(self):
        # Listed here so that Keras resets them at the start of every epoch and evaluation.
        return list(self._trackers.values())

    def compile(self, g_optimizer, d_optimizer, learning_rate_schedule=None, **kwargs):
        """Sets the two optimizers; other keyword arguments go to `keras.Model.compile`.

        Args:
            g_optimizer: optimizer of the generator's weights.
            d_optimizer: optimizer of the discriminator's weights (a different instance).
            learning_rate_schedule: sets each optimizer's rate VARIABLE before every update from the
                number of training steps done (the generator's updates); `None` leaves the rates
                to the optimizers. An optimizer given a schedule of its own is left alone.
            **kwargs: e.g. `run_eagerly`, `steps_per_execution`, `jit_compile` (default False).
        """
        if g_optimizer is d_optimizer:
            raise ValueError("g_optimizer and d_optimizer must be two optimizer instances")
        kwargs.setdefault("jit_compile", False)
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.learning_rate_schedule = learning_rate_schedule

    def _follow_learning_rate_schedule(self):
        """Sets the rate variables of both optimizers for this step (see `compile`)."""
        if self.learning_rate_schedule is None:
            return
        rate = self.learning_rate_schedule(self.g_optimizer.iterations)
        for optimizer in (self.g_optimizer, self.d_optimizer):
            variable = optimizer.learning_rate
            if isinstance(variable, keras.Variable):
                variable.assign(keras.ops.cast(rate, variable.dtype))

    def build_optimizers(self):
        """Creates the optimizers' slot variables. Call it inside the strategy's scope, before `fit`:
        variables created lazily inside the first traced step would land outside the scope."""
        if self.g_optimizer is None or self.d_optimizer is None:
            raise RuntimeError("call compile(g_optimizer=..., d_optimizer=...) before build_optimizers()")
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @contextlib.contextmanager
    def averaged_generator(self):
        """The generator with its moving-average weights while the context lasts (`train.ema_momentum`).

        Without EMA it is the generator as it is. The training weights come back on exit.
        """
        averages = ema_weights(self.g_optimizer, self.generator.trainable_variables)
        if averages is None:
            yield self.generator
            return
        variables = self.generator.trainable_variables
        trained = [variable.numpy() for variable in variables]
        for variable, average in zip(variables, averages):
            variable.assign(average)
        try:
            yield self.generator
        finally:
            for variable, value in zip(variables, trained):
                variable.assign(value)

    def call(self, inputs, training=False):
        """Inpaints: `inputs` is a dict with "image" ([-1, 1]) and "mask" (1 = hole); returns the composite."""
        image = tf.cast(inputs["image"], tf.float32)
        mask = tf.cast(inputs["mask"], tf.float32)
        raw = self.generator(generator_input(image, mask), training=training)
        return composite(tf.cast(raw, tf.float32), image, mask)

    def _discriminate(self, images, bbox):
        """D on (local crop at `bbox`, whole image), in training mode (see the module docstring)."""
        logits, local_features = self.discriminator([crop_local(images, bbox, self.local_size), images], training=True)
        return tf.cast(logits, tf.float32), local_features

    @staticmethod
    def _global_logit_means(real_logits, fake_logits, global_batch_size):
        """Batch means of the logits over the global batch (RaGAN's "average")."""
        real_sum, fake_sum = _all_reduce_sum([tf.reduce_sum(real_logits), tf.reduce_sum(fake_logits)])
        return real_sum / global_batch_size, fake_sum / global_batch_size

    def generator_step(self, image, mask, bbox, global_batch_size):
        """One generator update. Returns `(composite, per_example_terms)`.

        `per_example_terms` maps each name of `dmfn_tf.models.losses.GENERATOR_LOSS_TERMS` and "g_total"
        to a `[B_replica]` vector.

        Args:
            image: `[B, S, S, 3]` ground truth in [-1, 1].
            mask: `[B, S, S, 1]`, 1 = hole.
            bbox: int32 `[B, 4]`, the local-discriminator box.
            global_batch_size: float32 scalar, the batch size summed over replicas.
        """
        cfg = self.loss_config
        # Targets: constants of the generator objective.
        seen_real = self._perceptual_region(image, bbox)
        vgg_real = self.perceptual(seen_real, training=False)
        with tf.GradientTape() as tape:
            raw = self.generator(generator_input(image, mask), training=True)
            output = composite(tf.cast(raw, tf.float32), image, mask)
            seen_fake = self._perceptual_region(output, bbox)
            vgg_fake = self.perceptual(seen_fake, training=False)
            fake_logits, dis_fake = self._discriminate(output, bbox)
            real_logits, dis_real = self._discriminate(image, bbox)
            real_mean, fake_mean = self._global_logit_means(real_logits, fake_logits, global_batch_size)
            inputs = losses.GeneratorLossInputs(
                output=output, target=image, seen_output=seen_fake, seen_target=seen_real,
                features_output=vgg_fake, features_target=vgg_real, dis_features_output=dis_fake,
                dis_features_target=dis_real, fake_logits=fake_logits, real_logits=real_logits,
                real_mean=real_mean, fake_mean=fake_mean,
            )
            terms = losses.generator_loss_terms(inputs, cfg)
            terms["g_total"] = losses.generator_total_loss(self._warmup_weighted(terms), cfg)
            loss = _share_of_global_mean(terms["g_total"], global_batch_size)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(gradients, variables))
        return output, terms

    def _perceptual_region(self, images, bbox):
        """What the perceptual terms see: the whole image, or the local box (`loss.perceptual_region`)."""
        if self.loss_config.perceptual_region == "local":
            return crop_local(images, bbox, self.local_size)
        return images

    def _warmup_weighted(self, terms):
        """`terms` with the discriminator terms multiplied by 0 during the warm-up, by 1 after it."""
        if not self.warmup_steps:
            return terms
        after_warmup = tf.cast(self.g_optimizer.iterations >= self.warmup_steps, tf.float32)
        adversarial = [name for name, term in losses.GENERATOR_LOSS_TERMS.items() if term.adversarial]
        return {**terms, **{name: terms[name] * after_warmup for name in adversarial}}

    def discriminator_step(self, image, fake, bbox, global_batch_size):
        """One discriminator update on the real `image` and the detached `fake`. Returns the `[B]` RaGAN loss.

        Args:
            image: `[B, S, S, 3]` ground truth in [-1, 1].
            fake: the composite of the generator step (its gradient is stopped here).
            bbox: int32 `[B, 4]`, the local-discriminator box.
            global_batch_size: float32 scalar, the batch size summed over replicas.
        """
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            real_logits, _ = self._discriminate(image, bbox)
            fake_logits, _ = self._discriminate(fake, bbox)
            real_mean, fake_mean = self._global_logit_means(real_logits, fake_logits, global_batch_size)
            per_example = losses.ragan_discriminator_loss_per_example(real_logits, fake_logits, real_mean, fake_mean)
            loss = _share_of_global_mean(per_example, global_batch_size)
            scaled_loss = self.d_optimizer.scale_loss(loss)
        variables = self.discriminator.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(gradients, variables))
        return per_example

    def _unpack(self, data, required):
        if not isinstance(data, dict):
            raise TypeError(
                f"DMFNTrainer expects dict batches with keys {list(required)}, got {type(data).__name__}; "
                "a tuple batch would be read by Keras as (x, y)"
            )
        missing = [key for key in required if key not in data]
        if missing:
            raise KeyError(f"DMFNTrainer batch lacks keys {missing}; it has {sorted(data)}")
        image = tf.cast(data["image"], tf.float32)
        mask = tf.cast(data["mask"], tf.float32)
        return image, mask

    def _update_with_global_means(self, per_example_by_metric, global_batch_size):
        """Updates each tracker with the global batch mean of its per-example values; returns the logs."""
        names = list(per_example_by_metric)
        local_shares = [_share_of_global_mean(per_example_by_metric[name], global_batch_size) for name in names]
        for name, value in zip(names, _all_reduce_sum(local_shares)):
            self._trackers[name].update_state(value)
        return {name: self._trackers[name].result() for name in names}

    def train_step(self, data):
        """One G update, then one D update, on the dict batch `data` (image, mask, bbox)."""
        image, mask = self._unpack(data, REQUIRED_TRAIN_KEYS)
        bbox = tf.cast(data["bbox"], tf.int32)
        global_batch_size = _all_reduce_sum(tf.cast(tf.shape(image)[0], tf.float32))

        self._follow_learning_rate_schedule()
        output, terms = self.generator_step(image, mask, bbox, global_batch_size)
        d_loss = self.discriminator_step(image, output, bbox, global_batch_size)

        per_example = {**terms, "d_loss": d_loss, "psnr": _psnr_per_example(output, image)}
        return self._update_with_global_means(per_example, global_batch_size)

    def test_step(self, data):
        """L1, PSNR and SSIM of the composite on the dict batch `data` (image, mask)."""
        image, mask = self._unpack(data, ("image", "mask"))
        global_batch_size = _all_reduce_sum(tf.cast(tf.shape(image)[0], tf.float32))
        output = self({"image": image, "mask": mask}, training=False)
        per_example = {
            "l1": losses.l1_loss_per_example(output, image),
            "psnr": _psnr_per_example(output, image),
            "ssim": _ssim_per_example(output, image),
        }
        return self._update_with_global_means(per_example, global_batch_size)


@keras.saving.register_keras_serializable(package="dmfn_tf")
class ConstantLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The same rate at every step: the schedule of a recipe without decay steps."""

    def __init__(self, rate: float):
        self.rate = float(rate)

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.rate, "float32")

    def get_config(self):
        return {"rate": self.rate}


def learning_rate_schedule(train_cfg: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """The reference schedule: `learning_rate`, multiplied by `lr_decay_factor` after each of `lr_decay_steps`.

    The first `m` updates use the rate before the boundary `m`; update `m + 1` onwards the decayed
    one (as PyTorch's `MultiStepLR` stepped once per iteration).

    Args:
        train_cfg: the `train` section of the configuration.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay`, or a `ConstantLearningRate` when there
        is no decay step. Called with the number of updates already made.
    """
    steps = [int(step) for step in train_cfg.lr_decay_steps]
    if not steps:
        return ConstantLearningRate(train_cfg.learning_rate)
    values = [train_cfg.learning_rate * train_cfg.lr_decay_factor**i for i in range(len(steps) + 1)]
    # `optimizer.iterations` counts the updates already made: update m + 1 sees iterations = m > m - 1.
    return keras.optimizers.schedules.PiecewiseConstantDecay([step - 1 for step in steps], values)


def make_optimizer(train_cfg: TrainConfig, name: str, ema_momentum: float = 0.0, rate_variable: bool = True):
    """Adam(rate, beta_1, beta_2, epsilon) of the configuration; loss-scaled under `mixed_float16`.

    Epsilon is placed by `train.adam_epsilon_convention` (`dmfn_tf.training.optimizers.make_adam`).
    The rate is a variable that `DMFNTrainer` sets from `learning_rate_schedule` before each update
    (`rate_variable=True`, what new runs use): the checkpoint's structure is then the same whatever
    the decay steps, so a run can be resumed with other ones. `rate_variable=False` gives the
    optimizer the schedule itself, as earlier versions saved their runs (checkpoints with no rate variable).

    Args:
        train_cfg: the `train` section of the configuration.
        name: the optimizer's name (e.g. "generator_adam"); names its variables in checkpoints.
        ema_momentum: keep an exponential moving average of the weights it updates (0 = none).
        rate_variable: keep the rate in a variable (see above) rather than give it the schedule.

    Returns:
        A `keras.optimizers.Adam` (or its `TorchAdam` subclass), or a
        `keras.optimizers.LossScaleOptimizer` wrapping one.
    """
    optimizer = make_adam(
        train_cfg.learning_rate if rate_variable else learning_rate_schedule(train_cfg),
        train_cfg.beta_1,
        train_cfg.beta_2,
        train_cfg.adam_epsilon,
        train_cfg.adam_epsilon_convention,
        name=name,
        ema_momentum=ema_momentum,
    )
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
    return optimizer


def build_trainer(
    cfg: ExperimentConfig, strategy: tf.distribute.Strategy | None = None, rate_variable: bool = True
) -> DMFNTrainer:
    """Builds the networks, the trainer and both optimizers inside `strategy.scope()`, and compiles.

    Args:
        cfg: the experiment configuration (`model`, `perceptual`, `loss` and `train` sections are used;
            `train.sync_batchnorm` selects synchronised BatchNorm in the discriminator, `model.init`
            the initialisation).
        strategy: a `tf.distribute.Strategy` (see `dmfn_tf.training.distribute.make_strategy`);
            `None` uses the current one (the default strategy outside any scope).
        rate_variable: the optimizers keep their rate in a variable that the trainer sets from the
            schedule (new runs); False for a checkpoint saved without one (`make_optimizer`).

    Returns:
        A compiled `DMFNTrainer` whose optimizers are built, ready for `fit`.

    Example:

    ```python
    cfg = load_config("configs/tiny.yaml")
    trainer = build_trainer(cfg, make_strategy(cfg.train.strategy))
    trainer.fit(dataset, steps_per_epoch=cfg.train.steps_per_epoch, epochs=2)
    ```
    """
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    with strategy.scope():
        generator = build_generator(**cfg.model.generator_kwargs())
        discriminator = build_discriminator(**cfg.model.discriminator_kwargs(), sync_batchnorm=cfg.train.sync_batchnorm)
        initialize(generator, cfg.model.init, seed=cfg.train.seed)
        initialize(discriminator, cfg.model.init, seed=cfg.train.seed + 1)
        perceptual = build_perceptual_network(
            cfg.perceptual.weights, cfg.perceptual.preprocessing, network=cfg.perceptual.network
        )
        trainer = DMFNTrainer(
            generator, discriminator, perceptual, cfg.loss, name=f"{cfg.name}_trainer", warmup_steps=cfg.train.warmup_steps
        )
        trainer.compile(
            g_optimizer=make_optimizer(cfg.train, "generator_adam", cfg.train.ema_momentum, rate_variable),
            d_optimizer=make_optimizer(cfg.train, "discriminator_adam", rate_variable=rate_variable),
            learning_rate_schedule=learning_rate_schedule(cfg.train) if rate_variable else None,
        )
        trainer.build_optimizers()
    return trainer
