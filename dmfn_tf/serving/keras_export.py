"""`.keras` export of the generator, for Keras users."""

from __future__ import annotations

import os

from dmfn_tf.model_io import save_model_atomically


def export_keras(generator, path: str, metadata=None) -> str:
    """Saves the generator as a `.keras` file (architecture and weights, no optimizer state).

    With `metadata` (its source's `dmfn_tf.model_metadata.ModelMetadata`) the file describes itself
    as its source did.

    Loading it needs this package's custom layers registered: `import dmfn_tf.models.generator` (or use
    `dmfn_tf.model_io.load_generator`, which does it).

    Args:
        generator: a DMFN generator.
        path: the file to write; must end in `.keras`.
        metadata: the description to write inside the file, or None.

    Returns:
        `path`.

    Example:

    ```python
    export_keras(generator, "saved_models/dmfn.keras")
    generator = load_generator("saved_models/dmfn.keras")
    ```
    """
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: a Keras model file must end in .keras")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_model_atomically(generator, path, metadata=metadata)
    return path
