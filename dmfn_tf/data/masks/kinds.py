"""The registry of mask kinds: the names `data.mask` and `dmfn evaluate --mask` take, with their help.

A kind is one factory registered with `@mask_kind(name, help=..., settings=...)`: it takes the
image side and the `MaskSettings` and returns `make(index, seed) -> (mask [S, S, 1], bbox [4])`
(1 = hole; `index` is the example's index, `seed` a stateless seed). `help` is the line that
`dmfn evaluate --help` shows; `settings` names the `MaskSettings` fields the kind reads (the
configuration's `data.mask_delta`, `data.mask_shrink`, `data.mask_path`, `data.invert_mask`,
`data.mask_from_alpha`). `mask_maker` looks a kind up. Adding a kind is adding one such function.

This module imports no TensorFlow, so the command line lists the kinds without loading it: the
factories import the generators (`dmfn_tf.data.masks.generators`) and the mask-file reader
(`dmfn_tf.data.masks.files`) when a kind is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dmfn_tf.errors import UserError


@dataclass(frozen=True)
class MaskSettings:
    """What the mask kinds need besides the image side.

    Args:
        delta: the random box's shrink parameter (`random_box`).
        shrink: how the random box shrinks, "independent" or "reference" (`random_box`).
        files: mask files (`file`), used in order, cycling, when `ordered`, else picked at random.
        invert: mask files mark holes with 0.
        from_alpha: read the holes from the mask files' alpha channel.
        ordered: example `i` takes mask file `i % len(files)` (evaluation) instead of a random one.
        read: reads the mask files, `read(path) -> (contents, ok, hopeless)` (the training pipeline's
            guarded reader); `make` then returns `(mask, bbox, ok, hopeless)`. None: `tf.io.read_file`.
    """

    delta: int = 32
    shrink: str = "independent"
    files: tuple[str, ...] = ()
    invert: bool = False
    from_alpha: bool = False
    ordered: bool = False
    read: Callable | None = None


# `make(index, seed) -> (mask, bbox)`, tensors.
MaskMake = Callable[[Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class MaskKind:
    """One registered mask kind.

    Args:
        name: what `data.mask` and `--mask` call it.
        help: one line describing its holes, for `--help` texts.
        settings: the `MaskSettings` fields it reads.
        factory: `(size, settings) -> make(index, seed) -> (mask, bbox)`.
    """

    name: str
    help: str
    settings: tuple[str, ...]
    factory: Callable[[int, MaskSettings], MaskMake]


# The registry: name -> kind, in registration order.
MASK_KINDS: dict[str, MaskKind] = {}


def mask_kind(name: str, help: str, settings: tuple[str, ...] = ()):
    """Registers `factory(size, settings) -> make(index, seed) -> (mask, bbox)` as mask kind `name` (a decorator).

    Args:
        name: the kind's name; a second kind of the same name is refused.
        help: one line describing its holes.
        settings: the `MaskSettings` fields it reads.
    """
    unknown = sorted(set(settings) - {field.name for field in dataclasses.fields(MaskSettings)})
    if unknown:
        raise ValueError(f"mask kind {name!r}: unknown settings {unknown}; MaskSettings has no such fields")
    if name in MASK_KINDS:
        raise ValueError(f"mask kind {name!r} is already registered")

    def register(factory):
        MASK_KINDS[name] = MaskKind(name, help, tuple(settings), factory)
        return factory

    return register


def mask_maker(kind: str, size: int, settings: MaskSettings = MaskSettings()) -> MaskMake:
    """`make(index, seed) -> (mask [S, S, 1], bbox [4])` of a registered mask kind.

    Args:
        kind: a name in `MASK_KINDS`.
        size: image side `S`, a multiple of 4.
        settings: what the kind needs besides the size.

    Example:

    ```python
    make = mask_maker("random_box", 64, MaskSettings(delta=8))
    mask, bbox = make(0, tf.constant([1, 2], tf.int64))
    ```
    """
    if kind not in MASK_KINDS:
        raise UserError(f"unknown mask kind {kind!r}; expected one of {', '.join(MASK_KINDS)}")
    return MASK_KINDS[kind].factory(size, settings)


def describe_mask_kinds(names=None) -> str:
    """`"name: help (settings: ...); ..."` of the kinds `names` (default: all), for `--help` texts."""
    kinds = [MASK_KINDS[name] for name in (MASK_KINDS if names is None else names)]
    return "; ".join(
        f"{kind.name}: {kind.help}" + (f" (settings: {', '.join(kind.settings)})" if kind.settings else "") for kind in kinds
    )


@mask_kind("center_box", help="a centred hole of half the side (the paper's evaluation protocol)")
def _center_box_kind(size: int, settings: MaskSettings) -> MaskMake:
    from dmfn_tf.data.masks.generators import center_box

    mask, bbox = center_box(size)
    return lambda index, seed: (mask, bbox)


@mask_kind("random_box", help="a box of half the side at a random position, its sides shrunk at random",
           settings=("delta", "shrink"))
def _random_box_kind(size: int, settings: MaskSettings) -> MaskMake:
    from dmfn_tf.data.masks.generators import check_box_delta, random_box

    check_box_delta(size, settings.delta, settings.shrink)
    return lambda index, seed: random_box(size, settings.delta, seed, settings.shrink)


@mask_kind("free_form", help="random brush strokes covering 10-60% of the image")
def _free_form_kind(size: int, settings: MaskSettings) -> MaskMake:
    from dmfn_tf.data.masks.generators import check_mask_size, free_form

    check_mask_size(size)
    return lambda index, seed: free_form(size, seed)


@mask_kind("mixture", help="the training mixture: boxes of several sizes and positions, the centred box, "
                           "and brush strokes of two widths")
def _mixture_kind(size: int, settings: MaskSettings) -> MaskMake:
    from dmfn_tf.data.masks.generators import check_mask_size, mixture

    check_mask_size(size)
    return lambda index, seed: mixture(size, seed)


@mask_kind("file", help="the user's mask files, picked at random (in order, cycling, when evaluating)",
           settings=("files", "invert", "from_alpha", "ordered"))
def _file_kind(size: int, settings: MaskSettings) -> MaskMake:
    from dmfn_tf.data.masks.files import mask_file_maker

    return mask_file_maker(size, settings.files, invert=settings.invert, from_alpha=settings.from_alpha,
                           ordered=settings.ordered, read=settings.read)
