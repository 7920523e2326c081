"""dmfn_tf: DMFN image fine-grained inpainting (Hui et al., arXiv:2002.02609) in TensorFlow / Keras 3.

The public builders are imported lazily, so that `import dmfn_tf` (and the `dmfn` command's help)
does not pay for importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "build_generator": "dmfn_tf.models.generator",
    "build_discriminator": "dmfn_tf.models.discriminator",
    "build_perceptual_network": "dmfn_tf.models.perceptual",
    "DMFB": "dmfn_tf.models.dmfb_layers",
    "load_config": "dmfn_tf.config",
    "ExperimentConfig": "dmfn_tf.config",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'dmfn_tf' has no attribute {name!r}")
