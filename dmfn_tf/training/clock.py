"""The training clock: process CPU seconds and wall-clock seconds spent training, summed over resumes.

Recipes are compared at equal CPU time (docs/training_on_cpu.md): on a shared machine the wall
clock measures the neighbours as much as the run. The clock lives in the checkpoint (a float64
variable `[cpu_seconds, wall_seconds]`), so a resumed run continues its count; `time.process_time`
counts every thread of this process (the training step, the input pipeline, the saving).

Example:

```python
clock = TrainingClock()
checkpoint = tf.train.Checkpoint(clock=clock.variable)
...
cpu_seconds, wall_seconds = clock.now()
```
"""

from __future__ import annotations

import time

import tensorflow as tf


class TrainingClock:
    """CPU and wall seconds: the restored total plus what this process has spent since `start`."""

    def __init__(self):
        self.variable = tf.Variable([0.0, 0.0], dtype=tf.float64, trainable=False, name="training_clock")
        self.start()

    def start(self) -> None:
        """Counts from now on top of the variable's value (call it after restoring a checkpoint)."""
        self._base = [float(x) for x in self.variable.numpy()]
        self._cpu_start, self._wall_start = time.process_time(), time.monotonic()

    def now(self) -> tuple[float, float]:
        """`(cpu_seconds, wall_seconds)` of the whole run so far."""
        return (self._base[0] + time.process_time() - self._cpu_start,
                self._base[1] + time.monotonic() - self._wall_start)

    def stamp(self) -> None:
        """Writes `now()` into the variable (before a checkpoint is saved)."""
        self.variable.assign(list(self.now()))
