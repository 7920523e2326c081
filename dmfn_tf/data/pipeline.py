"""`tf.data` input pipelines for training and evaluation (docs/design.md §6).

Each element is a dict (under `MirroredStrategy` a tuple would be taken as `(x, y)`):

- `image`: float32 `[B, S, S, 3]`, RGB in [-1, 1]: a square crop (random or centred), bicubic
  resize to S with antialiasing (like PIL's bicubic when shrinking), clipped to the 8-bit range;
  grey images are repeated to RGB, alpha channels dropped;
- `mask`: float32 `[B, S, S, 1]`, 1 = hole (see `dmfn_tf.data.masks`);
- `bbox`: int32 `[B, 4]`, `(top, left, S/2, S/2)`: the local discriminator's crop;
- `path` (evaluation only): the source file, or `tfds:<name>/<split>#<n>` for TFDS records.

Reproducible and resumable: every random choice is a stateless function of `seed` and a counter.
The file order of epoch `e` is a permutation keyed by `(seed, e)`; the crop and the mask of the
`i`-th example of the run are keyed by `(seed, i)`. Example `i` of batch `k` is therefore the same
whether the run started at step 0 or resumed with `start_step=k`, as long as the set of files is
unchanged. Decoding runs in parallel, in order, and batches are prefetched.

Every file is read through a `GuardedReader` (`dmfn_tf.data.guarded_reader`): the photos, and the
mask files of mask kind "file" (`masks.mask_file_maker` reading through the masks' reader, so the
same seed picks the same file): an example whose photo or mask became unusable during the run is dropped with a warning.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from dmfn_tf.config import DataConfig
from dmfn_tf.data import masks
from dmfn_tf.data.guarded_reader import GuardedReader
from dmfn_tf.data.image_files import (
    check_files, check_image_bytes, error_summary, find_image_files, list_source_files, read_file_list,
)
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.contract import to_model_range

# Independent random streams derived from the run's seed.
_SHUFFLE_STREAM, _EXAMPLE_STREAM = 1, 2
_ENDLESS = 2**62


def decode_image(contents) -> tf.Tensor:
    """Decodes JPEG, PNG, BMP, GIF (first frame) or WebP bytes to uint8 RGB `[H, W, 3]`.

    Args:
        contents: scalar string tensor, the encoded file.
    """
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def crop_and_resize(image, image_size: int, crop: str = "center", seed=None) -> tf.Tensor:
    """Square crop, bicubic resize to `image_size`, scale to [-1, 1] (docs/design.md §6).

    Args:
        image: uint8 `[H, W, 3]` tensor.
        image_size: output side S.
        crop: "center" or "random" (position of the largest square along the longer side).
        seed: shape-[2] stateless seed, required for "random".

    Returns:
        float32 `[S, S, 3]` in [-1, 1].

    Example:

    ```python
    photo = tf.zeros([48, 64, 3], tf.uint8)
    crop_and_resize(photo, 32).shape
    # -> TensorShape([32, 32, 3])
    ```
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    if crop == "random":
        # A square crop of a rectangle slides along one axis only: one offset range is 0.
        offset = tf.random.stateless_uniform([], seed, 0, height + width - 2 * side + 1, dtype=tf.int32)
        top, left = tf.minimum(offset, height - side), tf.minimum(offset, width - side)
    elif crop == "center":
        top, left = (height - side) // 2, (width - side) // 2
    else:
        raise UserError(f"unknown crop {crop!r}; expected 'random' or 'center'")
    square = tf.cast(image[top : top + side, left : left + side], tf.float32)
    resized = tf.image.resize(square, [image_size, image_size], method="bicubic", antialias=True)
    # Bicubic overshoots at edges; clip so that the result is what an 8-bit image would hold.
    return to_model_range(tf.clip_by_value(resized, 0.0, 255.0))


def build_dataset(
    data_cfg: DataConfig,
    image_size: int,
    batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    repeat: bool = True,
    training: bool = True,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tf.data.Dataset:
    """The training input: dict batches of images, masks and local-discriminator boxes.

    Args:
        data_cfg: where images and masks come from, crop mode and mask kind.
        image_size: side S of the square images, a multiple of 4.
        batch_size: global batch size (a `tf.distribute` strategy splits it).
        seed: run seed; the same seed gives the same batches.
        start_step: first batch to produce; the batches equal those from `start_step` onwards of a
            run started at 0 with the same seed and files (used to resume a killed run).
        repeat: endless epochs; otherwise stop at the end of the current epoch.
        training: shuffled order, `data_cfg.crop`, only full batches. When False: file order,
            centred crop, last partial batch kept (masks still follow `data_cfg.mask`).
        num_shards: input pipelines (workers) sharing each global batch.
        shard_index: this pipeline's index in `[0, num_shards)`. Pipeline `s` yields batches of
            `batch_size // num_shards` examples, those of the global batch at positions `s`,
            `s + num_shards`, ...; together the shards see exactly the unsharded run's examples.
            For `MultiWorkerMirroredStrategy`, build it inside
            `strategy.distribute_datasets_from_function` from the `tf.distribute.InputContext`'s
            `num_input_pipelines` and `input_pipeline_id`.

    Returns:
        A `tf.data.Dataset` of `{"image", "mask", "bbox"}` batches.

    Raises:
        UserError: a missing or empty source (after skipping bad files), a bad mask setting.

    Example:

    ```python
    cfg = load_config("configs/places2.yaml")
    dataset = build_dataset(cfg.data, cfg.model.image_size, cfg.train.batch_size, seed=cfg.train.seed)
    batch = next(iter(dataset))  # batch["image"]: [16, 256, 256, 3]
    ```
    """
    return _build(
        data_cfg,
        image_size,
        batch_size,
        seed=seed,
        start_step=start_step,
        repeat=repeat,
        shuffle=training,
        crop=data_cfg.crop if training else "center",
        mask_kind=data_cfg.mask,
        drop_remainder=training,
        with_path=False,
        num_shards=num_shards,
        shard_index=shard_index,
    )


def build_eval_dataset(
    data_cfg: DataConfig,
    image_size: int,
    batch_size: int,
    mask: str = "center_box",
    seed: int = 0,
    limit: int | None = None,
) -> tf.data.Dataset:
    """The evaluation input (the protocol's, `dmfn_tf.evaluation.protocol`): every image once, in
    file order, centred crop.

    Args:
        data_cfg: the image source (and `mask_path`, `mask_delta`, ... as the mask kind needs).
        image_size: side S, a multiple of 4.
        batch_size: batch size; the last batch may be smaller.
        mask: a kind of `masks.MASK_KINDS`: "center_box" (the paper's protocol), "random_box",
            "free_form" (keyed by `seed` and the image's position, so they are the same on every
            run) or "file" (mask `n` of `data_cfg.mask_path` for image `n`, cycling).
        seed: seed of the random mask kinds.
        limit: only the first `limit` images of the source (before checking files), or all.

    Returns:
        A `tf.data.Dataset` of `{"image", "mask", "bbox", "path"}` batches.

    Example:

    ```python
    for batch in build_eval_dataset(cfg.data, 256, 8):
        composites = inpaint_float(generator, batch["image"], batch["mask"])
    ```
    """
    return _build(
        data_cfg,
        image_size,
        batch_size,
        seed=seed,
        start_step=0,
        repeat=False,
        shuffle=False,
        crop="center",
        mask_kind=mask,
        drop_remainder=False,
        with_path=True,
        limit=limit,
    )


def _build(
    data_cfg,
    image_size,
    batch_size,
    seed,
    start_step,
    repeat,
    shuffle,
    crop,
    mask_kind,
    drop_remainder,
    with_path,
    num_shards=1,
    shard_index=0,
    limit=None,
):
    """`build_dataset` and its evaluation sibling: records in order from `start_step`, examples, batches."""
    _check_batching(image_size, batch_size, start_step, num_shards, shard_index)
    base_seed = tf.constant([seed, 0], tf.int64)
    if data_cfg.source == "tfds":
        records, num_records, fetch = _tfds_records(data_cfg, limit)
    else:
        records, num_records, fetch = _file_records(data_cfg, limit)
    epoch_records = records(tf.random.experimental.stateless_fold_in(base_seed, _SHUFFLE_STREAM), shuffle)
    indexed = _indexed_records(epoch_records, num_records, start_step * batch_size, repeat)
    if num_shards > 1:
        # Sharding happens before anything is read or decoded, so it only skips file names.
        indexed = indexed.shard(num_shards, shard_index)

    make_mask, mask_reader = _mask_maker(data_cfg, mask_kind, image_size, ordered=not shuffle)
    example_seed = tf.random.experimental.stateless_fold_in(base_seed, _EXAMPLE_STREAM)

    def example(index, path, contents):
        crop_key, mask_key = tf.unstack(
            tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(example_seed, index), 2)
        )
        image = crop_and_resize(decode_image(contents), image_size, crop, crop_key)
        mask, bbox, mask_ok, mask_hopeless = make_mask(index, mask_key)
        element = {"image": image, "mask": mask, "bbox": bbox}
        if with_path:
            element["path"] = path
        return element, mask_ok, mask_hopeless

    readers = (GuardedReader(_source_name(data_cfg), num_records),) + ((mask_reader,) if mask_reader else ())
    dataset = _checked_examples(indexed, fetch, readers, example, skip_decode_errors=shuffle)
    dataset = dataset.batch(
        batch_size // num_shards, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE
    )
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _check_batching(image_size, batch_size, start_step, num_shards, shard_index) -> None:
    """Raises `UserError` for an image size the masks cannot use or batch, shard and step numbers out of range."""
    masks.check_mask_size(image_size)
    if batch_size <= 0 or batch_size % num_shards:
        raise UserError(f"batch_size must be a positive multiple of num_shards ({num_shards}), got {batch_size}")
    if not 0 <= shard_index < num_shards:
        raise UserError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    if start_step < 0:
        raise UserError(f"start_step must be >= 0, got {start_step}")


def _indexed_records(epoch_records, num_records: int, start: int, repeat: bool) -> tf.data.Dataset:
    """`(index, record)` pairs from the `start`-th example of the endless sequence of epochs onwards.

    Args:
        epoch_records: `(epoch, first) -> Dataset` of that epoch's records from position `first`.
        num_records: records in one epoch.
        start: the index of the first example (steps done × global batch size).
        repeat: endless epochs; otherwise only the epoch `start` falls in.
    """
    start_epoch, first = divmod(start, num_records)
    first = tf.constant(first, tf.int64)
    epochs = tf.data.Dataset.range(start_epoch, _ENDLESS if repeat else start_epoch + 1)
    ordered = epochs.flat_map(lambda epoch: epoch_records(epoch, tf.where(epoch == start_epoch, first, 0)))
    return tf.data.Dataset.zip(tf.data.Dataset.range(start, _ENDLESS), ordered)


def _file_records(data_cfg: DataConfig, limit: int | None = None):
    """A folder or list of image files as records, read by random access (full permutations)."""
    if not data_cfg.path:
        raise UserError(f"data.path is empty: set it to a folder of images or a file list (source {data_cfg.source!r})")
    paths = find_image_files(data_cfg.path) if data_cfg.source == "folder" else read_file_list(data_cfg.path)
    paths = paths[:limit]
    if data_cfg.check_files:
        paths = check_files(paths, _decode_check, "image", cache_path=data_cfg.file_check_cache or None,
                            source=data_cfg.path)
    if not paths:
        raise UserError(f"no usable images in {data_cfg.path}")
    table = tf.constant(paths)
    count = len(paths)

    def records(shuffle_seed, shuffle):
        def epoch_records(epoch, first):
            order = tf.range(count, dtype=tf.int64)
            if shuffle:
                epoch_seed = tf.random.experimental.stateless_fold_in(shuffle_seed, epoch)
                order = tf.random.experimental.stateless_shuffle(order, epoch_seed)
            return tf.data.Dataset.from_tensor_slices(tf.gather(table, order[first:]))

        return epoch_records

    # The pipeline's `GuardedReader` opens the file, once it has checked what it is.
    return records, count, lambda path: (path, tf.constant(b""), True)


def _tfds_records(data_cfg: DataConfig, limit: int | None = None):
    """A TensorFlow Datasets split as records of (label, encoded image), read as a stream."""
    if not data_cfg.tfds_name:
        raise UserError("data.tfds_name is empty: name the TensorFlow Datasets dataset to read (source 'tfds')")
    import tensorflow_datasets as tfds

    name, split = data_cfg.tfds_name, data_cfg.tfds_split
    try:
        builder = tfds.builder(name, data_dir=data_cfg.tfds_data_dir or None)
        if "image" not in builder.info.features:
            raise UserError(f"TFDS dataset {name!r} has no 'image' feature (features: {list(builder.info.features)})")
        stream = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
    except UserError:
        raise
    except Exception as err:  # TFDS raises many types for a missing, unknown or unprepared dataset.
        raise UserError(
            f"cannot read TFDS dataset {name!r} split {split!r} (data_dir {data_cfg.tfds_data_dir or 'default'}): "
            f"{error_summary(err)}. Prepare it first, e.g. `tfds build {name}`."
        ) from None
    prefix = f"tfds:{name}/{split}#"
    stream = stream.enumerate().map(
        lambda n, record: (tf.strings.join([prefix, tf.strings.as_string(n)]), record["image"])
    )
    if limit is not None:
        stream = stream.take(limit)
    count = int(stream.cardinality())
    if count < 0:  # Unknown cardinality: count once.
        count = int(stream.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))
    if count == 0:
        raise UserError(f"TFDS dataset {name!r} split {split!r} is empty")

    def records(shuffle_seed, shuffle):
        def epoch_records(epoch, first):
            epoch_stream = stream
            if shuffle:
                epoch_seed = tf.random.experimental.stateless_fold_in(shuffle_seed, epoch)
                op_seed = tf.random.stateless_uniform([], epoch_seed, minval=None, maxval=None, dtype=tf.int64)
                # A tensor op seed next to a global seed of 0 (`keras.utils.set_random_seed(0)`, as
                # training does) trips TensorFlow's `seeds == (0, 0)` check; clearing this traced
                # function's graph-level seed leaves the shuffle a function of `op_seed` alone.
                tf.random.set_seed(None)
                epoch_stream = stream.shuffle(data_cfg.shuffle_buffer, seed=op_seed, reshuffle_each_iteration=False)
            return epoch_stream.skip(first)

        return epoch_records

    return records, count, lambda record: (record[0], record[1], False)


def _checked_examples(indexed, fetch, readers, example, skip_decode_errors: bool) -> tf.data.Dataset:
    """Each record read and checked (`GuardedReader`), the skipped ones dropped, the rest decoded by `example`.

    `readers` are the photos' reader and, for mask files, the masks' (`example` returns the mask's
    `ok` and `hopeless` beside the element). The examples keep their indices, so the crops and masks
    of the others are those of a run without the skipped files' failures (resuming stays exact).
    """
    def read_and_decode(index, record):
        name, contents, from_file = fetch(record)
        contents, ok, hopeless = readers[0].read(name, contents, from_file)  # a skipped file: a black pixel
        element, mask_ok, mask_hopeless = example(index, name, contents)
        hopeless = tf.stack([hopeless, mask_hopeless])
        return element, tf.logical_or(tf.logical_and(ok, mask_ok), tf.reduce_any(hopeless)), hopeless

    def stop_if_hopeless(element, keep, hopeless):
        for position, reader in enumerate(readers):
            element = reader.stop_if_hopeless(element, hopeless[position])
        return element

    dataset = indexed.map(read_and_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if skip_decode_errors:
        # Files that pass the checks but do not decode (changed during the run, or never checked up
        # front) are dropped, with TensorFlow's warning.
        dataset = dataset.ignore_errors(log_warning=True)
    return dataset.filter(lambda element, keep, hopeless: keep).map(stop_if_hopeless)


def _source_name(data_cfg: DataConfig) -> str:
    if data_cfg.source == "tfds":
        return f"TFDS {data_cfg.tfds_name}/{data_cfg.tfds_split}"
    return data_cfg.path


def _mask_maker(data_cfg: DataConfig, kind: str, image_size: int, ordered: bool):
    """`(make, reader)`: `make(index, seed) -> (mask, bbox, ok, hopeless)` of one mask kind
    (`masks.MASK_KINDS`), and the `GuardedReader` of the mask files (kind "file"; else None).

    Mask files are read through that reader, like the photos: one that became a FIFO, a device,
    huge or unreadable mid-run is skipped with a warning (`ok` False), and none left stops the run.
    """
    settings = masks.MaskSettings(
        delta=data_cfg.mask_delta, shrink=data_cfg.mask_shrink, invert=data_cfg.invert_mask,
        from_alpha=data_cfg.mask_from_alpha, ordered=ordered,
    )
    if kind != "file":
        make = masks.mask_maker(kind, image_size, settings)
        return (lambda index, seed: (*make(index, seed), tf.constant(True), tf.constant(False))), None
    if not data_cfg.mask_path:
        raise UserError("data.mask_path is empty: set it to a folder or list of mask images (mask 'file')")
    files = _usable_mask_files(data_cfg)
    reader = GuardedReader(data_cfg.mask_path, len(files), what="mask")
    read = lambda path: reader.read(path, tf.constant(b""), from_file=True)  # noqa: E731
    return masks.mask_maker(kind, image_size, dataclasses.replace(settings, files=tuple(files), read=read)), reader


def _usable_mask_files(data_cfg: DataConfig) -> list[str]:
    # Mask files are always checked, whatever `check_files` says: they are few and small.
    from_alpha = data_cfg.mask_from_alpha

    def decode_mask(contents):
        check_image_bytes(contents)
        masks.decode_mask_bytes(tf.constant(contents), from_alpha=from_alpha)

    paths = check_files(
        list_source_files(data_cfg.mask_path), decode_mask, "mask (alpha)" if from_alpha else "mask",
        cache_path=data_cfg.file_check_cache or None, source=data_cfg.mask_path,
    )
    if not paths:
        raise UserError(f"no usable mask images in {data_cfg.mask_path}")
    return paths


def _decode_check(contents: bytes) -> None:
    check_image_bytes(contents)
    decode_image(tf.constant(contents))

