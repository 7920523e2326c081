"""Training and evaluation data: image sources, hole masks and `tf.data` pipelines (docs/design.md §6).

- `build_dataset`, `build_eval_dataset` (the evaluation protocol's input): dict batches
  `{"image", "mask", "bbox"}` (+ `"path"`).
- `MASK_KINDS`, `mask_kind`, `mask_maker`, `MaskSettings`: the registry of mask kinds (name ->
  kind with its help and settings; `dmfn_tf.data.masks.kinds`).
- `center_box`, `random_box`, `free_form`, `random_bbox`: mask generators (1 = hole;
  `dmfn_tf.data.masks.generators`).
- `load_mask_file`: a user's mask file as a binary NumPy array, for training and inference
  (`dmfn_tf.data.masks.files`).
- `find_image_files`, `read_file_list`, `check_files`: source discovery and validation.
- `demo_photos`: the demo's small photo set, built from photos that ship inside Python packages.

TensorFlow is imported lazily, so that file discovery works without paying for it.
"""

import importlib

_LAZY_EXPORTS = {
    "build_dataset": "dmfn_tf.data.pipeline",
    "build_eval_dataset": "dmfn_tf.data.pipeline",
    "crop_and_resize": "dmfn_tf.data.pipeline",
    "decode_image": "dmfn_tf.data.pipeline",
    "MASK_KINDS": "dmfn_tf.data.masks.kinds",
    "MaskSettings": "dmfn_tf.data.masks.kinds",
    "mask_kind": "dmfn_tf.data.masks.kinds",
    "mask_maker": "dmfn_tf.data.masks.kinds",
    "center_box": "dmfn_tf.data.masks.generators",
    "random_box": "dmfn_tf.data.masks.generators",
    "free_form": "dmfn_tf.data.masks.generators",
    "random_bbox": "dmfn_tf.data.masks.generators",
    "load_mask_file": "dmfn_tf.data.masks.files",
    "mask_from_image": "dmfn_tf.data.masks.files",
    "find_image_files": "dmfn_tf.data.image_files",
    "read_file_list": "dmfn_tf.data.image_files",
    "list_source_files": "dmfn_tf.data.image_files",
    "check_files": "dmfn_tf.data.image_files",
    "IMAGE_EXTENSIONS": "dmfn_tf.data.image_files",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'dmfn_tf.data' has no attribute {name!r}")
