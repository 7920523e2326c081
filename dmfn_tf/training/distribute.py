"""Distribution strategies for training, and the one `fit` that works under all of them.

`make_strategy(name)` returns the `tf.distribute.Strategy` of `train.strategy`:

- "default": the current (default) strategy, one device.
- "mirrored": `tf.distribute.MirroredStrategy`, synchronous data parallelism over the local GPUs (or
  the given devices).
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG`
  environment variable (one process per worker, same program, same configuration).

`fit(trainer, dataset, ...)` trains a `DMFNTrainer` with Keras callbacks under any of them: it calls
`trainer.fit` for "default" and "mirrored", and `custom_loop_fit` (an equivalent loop built on
`strategy.run`) in multi-worker mode (below).

Public API (stable):

- `make_strategy(name="default", devices=None) -> tf.distribute.Strategy`
- `is_multi_worker(strategy) -> bool`
- `fit(trainer, dataset, *, epochs, steps_per_epoch, callbacks=None, initial_epoch=0, verbose="auto")
  -> keras.callbacks.History`
- `custom_loop_fit(...)`: same signature as `fit`, never calls `keras.Model.fit`
- `StrategyError(UserError)`: bad `TF_CONFIG`

The trainer's steps scale losses by the global batch size and all-reduce the RaGAN logit means,
so the data-parallel step equals the one-device step on the global batch (exactly with
`train.sync_batchnorm: true`; see `dmfn_tf.training.trainer`).

Traps measured on TensorFlow 2.21 / Keras 3.15, and what this module does about them:

1. Batches must be dicts (`{"image", "mask", "bbox"}`): Keras reads a tuple batch as `(x, y)`.
2. Both optimizers must be built inside `strategy.scope()` before training
   (`DMFNTrainer.build_optimizers`, done by `build_trainer`): Keras builds only `model.optimizer`,
   and slot variables created lazily inside the traced step would not be distributed variables.
3. `model.fit` under `MultiWorkerMirroredStrategy` in multi-worker mode fails twice
   (keras-team/keras#20329, tensorflow/tensorflow#72388, keras-team/keras#20585):
   - before the first step, `fit` reduces the first batch with `strategy.reduce("MEAN", batch)` to
     build the model symbolically; the collective implementation cannot convert a dict (nested)
     batch: `ValueError: Attempt to convert a value ({'image': PerReplica...}) with an unsupported
     type (<class 'dict'>) to a Tensor`;
   - after each step, `fit` reduces every logged value with `strategy.reduce("MEAN", v, axis=0)`,
     which rejects scalar metrics: `ValueError: Invalid reduction dimension 0 for input with 0
     dimensions`.
   Workaround: in multi-worker mode `fit` does not call `keras.Model.fit` but `custom_loop_fit`,
   which distributes the dataset with `strategy.experimental_distribute_dataset`, runs
   `trainer.train_step` through `strategy.run` in a `tf.function`, takes the logs of the first
   local replica (the trainer logs global batch means, identical on every replica) and drives the
   same Keras callbacks (`keras.callbacks.CallbackList`, with `History`) with the same calls in
   the same order as `keras.Model.fit`, so callbacks written for `fit` work unchanged.
4. Under `MirroredStrategy`, `fit` takes the mean over replicas of the logged values; since they
   are global means already, the logs are those of the global batch.
5. Logical CPU devices for tests (`tf.config.set_logical_device_configuration`) must be configured
   before TensorFlow initialises its devices, so such tests run in a subprocess.

Under multi-worker training every worker must run the same steps (collectives hang otherwise),
and `dataset` is auto-sharded by `tf.data` (by files where it can, else by elements).

Example:

```python
strategy = make_strategy(cfg.train.strategy)
trainer = build_trainer(cfg, strategy)
history = fit(trainer, dataset, epochs=10, steps_per_epoch=1000, callbacks=[...])
```
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from dmfn_tf.config import DISTRIBUTION_STRATEGIES
from dmfn_tf.errors import ConfigError, UserError


class StrategyError(UserError):
    """The distribution strategy cannot be created from the configuration or the environment."""


def _check_tf_config() -> None:
    """Fails with a clear message when `TF_CONFIG` is missing or does not describe a worker."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise StrategyError(
            "train.strategy 'multi_worker' needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON: {err}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise StrategyError(f"TF_CONFIG has no 'cluster' mapping of job names to addresses: {raw}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise StrategyError(f"TF_CONFIG has no 'task' with 'type' and 'index': {raw}")
    addresses = cluster.get(task["type"])
    if not isinstance(addresses, list) or not isinstance(task["index"], int) or not 0 <= task["index"] < len(addresses):
        raise StrategyError(f"TF_CONFIG task {task} does not name an entry of cluster[{task['type']!r}]: {raw}")


def make_strategy(name: str = "default", devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Creates the distribution strategy `name` ("default", "mirrored" or "multi_worker").

    Call it at the start of the program: "multi_worker" starts this worker's server and waits for
    the others, and a strategy cannot be changed after variables exist.

    Args:
        name: the value of `train.strategy`.
        devices: for "mirrored", the devices to replicate over (e.g. `["/cpu:0", "/cpu:1"]`);
            `None` means every local GPU, or the CPU if there is none.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    ```python
    make_strategy("default").num_replicas_in_sync
    # -> 1
    ```
    """
    if name not in DISTRIBUTION_STRATEGIES:
        raise ConfigError(f"train.strategy: unknown strategy {name!r}; expected one of {DISTRIBUTION_STRATEGIES}")
    if devices is not None and name != "mirrored":
        raise ConfigError(f"train.strategy: devices can only be given for 'mirrored', not {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True for a `MultiWorkerMirroredStrategy` whose cluster has more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def fit(
    trainer,
    dataset: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    callbacks=None,
    initial_epoch: int = 0,
    verbose="auto",
) -> keras.callbacks.History:
    """Trains `trainer` on `dataset` under the strategy it was built in, with Keras callbacks.

    Same meaning as `keras.Model.fit` for the arguments it takes; `trainer.fit` itself is used
    except in multi-worker mode (see the module docstring for why and how).

    Args:
        trainer: a compiled `DMFNTrainer` whose optimizers are built (`build_trainer`).
        dataset: a `tf.data.Dataset` of dict batches (global batch size), repeated as needed.
        epochs: index of the last epoch (exclusive), as in `keras.Model.fit`.
        steps_per_epoch: steps in each epoch.
        callbacks: list of `keras.callbacks.Callback`.
        initial_epoch: epoch to start from (when resuming).
        verbose: 0, 1, 2 or "auto", as in `keras.Model.fit`.

    Returns:
        The `keras.callbacks.History` of the run.
    """
    strategy = trainer.distribute_strategy
    if not is_multi_worker(strategy):
        return trainer.fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
            verbose=verbose,
            shuffle=False,  # a tf.data pipeline shuffles itself; Keras would only warn
        )
    return custom_loop_fit(
        trainer,
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        initial_epoch=initial_epoch,
        verbose=verbose,
    )


def custom_loop_fit(
    trainer,
    dataset: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    callbacks=None,
    initial_epoch: int = 0,
    verbose="auto",
) -> keras.callbacks.History:
    """`keras.Model.fit` rebuilt from `strategy.run`: the multi-worker path of `fit` (trap 3 above).

    Works under any strategy (the tests compare it with `trainer.fit` on one device). Callbacks get
    the same calls, in the same order, as under `keras.Model.fit`; the logs are the trainer's
    running means of the epoch (global batch means, identical on every replica).

    Args:
        trainer: a compiled `DMFNTrainer` whose optimizers are built.
        dataset: a `tf.data.Dataset` of dict batches (global batch size) with at least
            `(epochs - initial_epoch) * steps_per_epoch` batches.
        epochs: index of the last epoch (exclusive).
        steps_per_epoch: steps in each epoch.
        callbacks: list of `keras.callbacks.Callback`.
        initial_epoch: epoch to start from.
        verbose: 0 (silent), 1 (progress bar), 2 (one line per epoch) or "auto" (1).

    Returns:
        The `keras.callbacks.History` of the run.
    """
    if verbose == "auto":
        verbose = 1
    train_function = _replicated_train_function(trainer)
    iterator = iter(trainer.distribute_strategy.experimental_distribute_dataset(dataset))
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
            model=trainer,
        )
    trainer.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = {}
    for epoch in range(initial_epoch, epochs):
        epoch_logs = _run_epoch(trainer, train_function, iterator, callbacks, epoch, steps_per_epoch)
        if trainer.stop_training:
            break
    callbacks.on_train_end(logs=epoch_logs)
    return trainer.history


def _replicated_train_function(trainer):
    """A `tf.function` that runs `trainer.train_step` on every replica for the iterator's next batch."""
    strategy = trainer.distribute_strategy

    @tf.function
    def train_function(iterator):
        per_replica_logs = strategy.run(trainer.train_step, args=(next(iterator),))
        # The trainer logs global batch means, the same on every replica.
        return {name: strategy.experimental_local_results(value)[0] for name, value in per_replica_logs.items()}

    return train_function


def _run_epoch(trainer, train_function, iterator, callbacks, epoch: int, steps_per_epoch: int) -> dict:
    """One epoch of `custom_loop_fit`, with the callbacks' epoch and batch calls; returns the epoch's logs."""
    trainer.reset_metrics()
    callbacks.on_epoch_begin(epoch)
    logs = {}
    for step in range(steps_per_epoch):
        callbacks.on_train_batch_begin(step)
        logs = train_function(iterator)
        callbacks.on_train_batch_end(step, logs)
        if trainer.stop_training:
            break
    epoch_logs = {name: float(value) for name, value in logs.items()}
    callbacks.on_epoch_end(epoch, epoch_logs)
    return epoch_logs
