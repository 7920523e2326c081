"""Reading checkpoints of the authors' PyTorch code and mapping them onto this package's models.

`torch_checkpoint` reads `torch.save` files (and `.npz` archives) into NumPy arrays without
PyTorch and without running any code stored in the file; `reference` builds Keras models from
them; `converter` writes them as Keras files (`dmfn convert`).
"""

from dmfn_tf.convert.torch_checkpoint import (
    CheckpointFormatError,
    NotAStateDictError,
    load_state_dict,
    load_torch_state_dict,
)
from dmfn_tf.convert.reference import load_discriminator_from_reference, load_generator_from_reference

__all__ = [
    "CheckpointFormatError",
    "NotAStateDictError",
    "load_discriminator_from_reference",
    "load_generator_from_reference",
    "load_state_dict",
    "load_torch_state_dict",
]
