"""Hole masks (1 = hole) for training, evaluation and inference, in three modules:

- `generators`: boxes, brush strokes and the training mixture (`center_box`, `random_box`,
  `free_form`, `mixture`, ...), stateless and seeded;
- `files`: a user's mask file turned into a binary mask by one documented rule
  (`mask_from_image`, `decode_mask_bytes`, `load_mask_file`);
- `kinds`: the registry of mask kinds (`MASK_KINDS`, `mask_kind`, `mask_maker`, `MaskSettings`),
  the names `data.mask` and `dmfn evaluate --mask` take, each with its help and settings.

Their public names are reachable from here too (`from dmfn_tf.data import masks; masks.free_form`),
each module imported when one of its names is first asked for (TensorFlow only with generators
and files).
"""

import importlib

_MODULE_OF = {
    "generators": ("check_mask_size", "max_box_shrink", "check_box_delta", "center_box", "random_bbox", "random_box",
                   "max_stroke_fraction", "free_form", "MIXTURE_SHARES", "WIDE_STROKE_SCALE", "any_box", "mixture"),
    "files": ("mask_from_image", "decode_mask_bytes", "load_mask_file", "mask_file_maker"),
    "kinds": ("MaskSettings", "MaskKind", "MaskMake", "MASK_KINDS", "mask_kind", "mask_maker", "describe_mask_kinds"),
}
_HOME = {name: module for module, names in _MODULE_OF.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
