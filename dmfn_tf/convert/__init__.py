"""Reading checkpoints of the authors' PyTorch code and mapping them onto this package's models.

`torch_checkpoint` reads `torch.save` files (and `.npz` archives) into NumPy arrays without
PyTorch and without running any code stored in the file.
"""

from dmfn_tf.convert.torch_checkpoint import (
    CheckpointFormatError,
    NotAStateDictError,
    load_state_dict,
    load_torch_state_dict,
)

__all__ = ["CheckpointFormatError", "NotAStateDictError", "load_state_dict", "load_torch_state_dict"]
