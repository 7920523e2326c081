"""The evaluation protocol of the paper's Table 1, as one library function (`evaluate`).

What is measured is an `EvaluationSettings` (image size, mask kind and seed, LPIPS network,
baselines...), which `summary.json` records as given. Images come through the data package's
evaluation input (`dmfn_tf.data.pipeline.build_eval_dataset`: every image once, in file order,
centre-cropped to a square and resized, bicubic, to `image_size`, then quantised to 8 bits), the
masks from its registry (`dmfn_tf.data.masks.MASK_KINDS`; the paper's is "center_box", a centred
hole of half the side; random kinds are keyed by the seed and the image's position, so every
method and every model scored on the same listing gets the same holes). The model runs the way
`dmfn inpaint` and `dmfn app` run it, through the planner and runner of `dmfn_tf.inpaint` (the
`original` strategy: each image whole at its own size, `report.generator_inpaint_fn`), the classic
baselines through `baselines.BASELINES`,
and every method is scored on the same images and masks (`report.score`). Each model is compared
with each baseline image by image (`statistics.compare_methods`: the mean difference and its
bootstrap interval). The report (`per_image.csv`, `summary.json`, `table.md`, `cases.png`) is
written to `out` when given, and the result returned. `dmfn evaluate`, `dmfn demo` and the
training-time validation (`evaluation.validation`) all call `evaluate`.

Example:

```python
result = evaluate("celeba_hq_test.txt", EvaluationSettings(image_size=256),
                  generator=load_generator("runs/celeba_hq"), paper_row="celeba_hq", out="eval_celeba")
result.summary["dmfn"]["psnr"], result.comparisons["dmfn"]["patchmatch"]["lpips"], result.table
```
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from dmfn_tf.data.skip_tally import counting_skips
from dmfn_tf.evaluation import report, statistics
from dmfn_tf.evaluation.baselines import BASELINES, baseline_routes
from dmfn_tf.evaluation.paper import PAPER_DMFN_RESULTS
from dmfn_tf.evaluation.report import EvaluationInputError

DEFAULT_MASK = "center_box"
# LPIPS-AlexNet's pooling stages need at least 31 pixels a side.
MIN_IMAGE_SIZE = 32

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvaluationSettings:
    """What an evaluation measures; `summary.json` records these fields under "settings".

    Attributes:
        image_size: square side the images are cropped and resized to (a multiple of 4, >= 32).
        mask: a mask kind of `dmfn_tf.data.masks.MASK_KINDS` ("file": `mask_files`, image n with
            mask n, cycling). Random kinds depend only on `seed` and the image's position.
        mask_files: folder or list of mask files for mask kind "file".
        invert_mask: mask files mark holes with 0.
        mask_from_alpha: read the holes from the mask files' alpha channel.
        seed: seed of the random mask kinds.
        baselines: names among `baselines.BASELINES`.
        lpips: LPIPS backbone, "alex" or "vgg", or "none" to skip it.
        lpips_weights: local LPIPS weights (see `lpips_weights.lpips_weight_file`).
        limit: only the first N images.
        batch_size: images per model call.
        grid_cases: worst and best cases each in `cases.png` (0: none).
        bootstrap_resamples: resamples of the paired model-vs-baseline intervals.
    """

    image_size: int = 256
    mask: str = DEFAULT_MASK
    mask_files: str | None = None
    invert_mask: bool = False
    mask_from_alpha: bool = False
    seed: int = 0
    baselines: tuple[str, ...] = tuple(BASELINES)
    lpips: str = "alex"
    lpips_weights: str | None = None
    limit: int | None = None
    batch_size: int = 8
    grid_cases: int = 4
    bootstrap_resamples: int = statistics.BOOTSTRAP_RESAMPLES

    def __post_init__(self):
        object.__setattr__(self, "baselines", tuple(self.baselines))
        if self.mask_files is not None:
            object.__setattr__(self, "mask_files", os.fspath(self.mask_files))

    def check(self) -> None:
        """Raises `EvaluationInputError` naming the first unusable setting."""
        from dmfn_tf.data.masks import MASK_KINDS, check_mask_size

        if self.image_size < MIN_IMAGE_SIZE:
            raise EvaluationInputError(f"image size {self.image_size}: must be at least {MIN_IMAGE_SIZE}")
        check_mask_size(self.image_size)  # a multiple of 4: the centred hole is S/2 at S/4
        if self.limit is not None and self.limit < 1:
            raise EvaluationInputError(f"limit {self.limit}: must be at least 1")
        unknown = [baseline for baseline in self.baselines if baseline not in BASELINES]
        if unknown:
            raise EvaluationInputError(f"unknown baselines {unknown}; choose among {', '.join(BASELINES)}")
        if self.mask not in MASK_KINDS:
            raise EvaluationInputError(f"unknown mask kind {self.mask!r}; expected one of {', '.join(MASK_KINDS)}")
        if self.mask == "file" and not self.mask_files:
            raise EvaluationInputError("mask kind 'file' needs a folder or list of mask files")

    def record(self) -> dict:
        """The settings as JSON values (what `summary.json` records)."""
        return {**dataclasses.asdict(self), "baselines": list(self.baselines)}


@dataclass
class EvaluationResult:
    """What `evaluate` measured.

    Attributes:
        files: image names (relative to a data folder, or as listed), in scoring order.
        scores: method -> `{"psnr", "ssim", "l1", "lpips"}` -> per-image float64 arrays.
        summary: method -> means (`report.summarize`).
        comparisons: model -> baseline -> metric -> paired difference with its bootstrap interval
            (`statistics.compare_methods`).
        table: the Markdown tables (`report.markdown_table`, then `statistics.comparison_table`).
        settings: what `summary.json` records as settings (the data, `EvaluationSettings.record()`,
            the caller's record, the number of images, the files skipped as unusable (`skipped_files`,
            and `skipped`: the line `dmfn evaluate` prints), the routes of baselines that have several).
        paths: report file name -> path, when written.
    """

    files: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    summary: dict[str, dict]
    comparisons: dict[str, dict]
    table: str
    settings: dict
    paths: dict[str, Path] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def lpips_metric(net: str, weights: str | None, batch_size: int):
    """The LPIPS network, built once per process and settings (None for "none")."""
    if net == "none":
        return None
    from dmfn_tf.evaluation.lpips import LPIPS

    return LPIPS(net, source=weights, batch_size=batch_size)


def _data_config(data: str, settings: EvaluationSettings):
    from dmfn_tf.config import DataConfig

    if not os.path.exists(data):
        raise EvaluationInputError(f"{data}: no such image folder or file list")
    # A random box keeps its full half-side size here (no shrinking: delta 0).
    return DataConfig(source="folder" if os.path.isdir(data) else "list", path=str(data), mask=settings.mask,
                      mask_path=str(settings.mask_files or ""), mask_delta=0, invert_mask=settings.invert_mask,
                      mask_from_alpha=settings.mask_from_alpha)


def _batches(data_cfg, settings: EvaluationSettings):
    """(uint8 images, masks, paths) batches of the evaluation input."""
    from dmfn_tf.data.pipeline import build_eval_dataset
    from dmfn_tf.inpaint.contract import to_uint8

    dataset = build_eval_dataset(data_cfg, settings.image_size, settings.batch_size, mask=settings.mask,
                                 seed=settings.seed, limit=settings.limit)
    for batch in dataset:
        yield (np.asarray(to_uint8(batch["image"])), batch["mask"].numpy(),
               [path.decode() for path in batch["path"].numpy()])


def _expected_count(data: str, limit: int | None) -> int:
    """Images listed (an upper bound: unreadable files are skipped), for progress bars."""
    from dmfn_tf.data.image_files import list_source_files

    listed = len(list_source_files(data))
    return listed if limit is None else min(listed, limit)


def _score_all(data: str, data_cfg, settings: EvaluationSettings, methods: dict, progress: Progress | None):
    """Scores every method on every batch: (paths, method -> metric -> per-image array)."""
    metric = lpips_metric(settings.lpips, settings.lpips_weights, settings.batch_size)
    total = _expected_count(data, settings.limit) if progress is not None else 0
    paths, collected = [], {method: [] for method in methods}
    for images, masks, batch_paths in _batches(data_cfg, settings):
        paths += batch_paths
        for method, inpaint_fn in methods.items():
            collected[method].append(report.score(inpaint_fn, images, list(masks), metric, settings.batch_size))
        if progress is not None:
            progress(len(paths), max(total, len(paths)))
    if not paths:
        raise EvaluationInputError(f"{data}: no readable image files listed or found")
    scores = {method: {name: np.concatenate([part[name] for part in parts]) for name in report.METRICS}
              for method, parts in collected.items()}
    return paths, scores


def _check_request(settings: EvaluationSettings, paper_row: str | None, has_models: bool) -> None:
    settings.check()
    if paper_row is not None and paper_row not in PAPER_DMFN_RESULTS:
        raise EvaluationInputError(f"unknown paper row {paper_row!r}; expected one of {sorted(PAPER_DMFN_RESULTS)}")
    if not has_models and not settings.baselines:
        raise EvaluationInputError("nothing to evaluate: give a model, or baselines")


def _methods(generators: Mapping, settings: EvaluationSettings, scored: Mapping) -> tuple[dict, list[str]]:
    """(row -> inpainting function of every method to score now, the baselines among them).

    Baselines in `scored` are not scored again; the others have their route counts reset.
    """
    methods = {row: report.generator_inpaint_fn(model) for row, model in generators.items()}
    to_score = [baseline for baseline in settings.baselines if baseline not in scored]
    methods.update({baseline: report.baseline_inpaint_fn(BASELINES[baseline]) for baseline in to_score})
    for baseline in to_score:
        getattr(BASELINES[baseline], "reset", lambda: None)()
    return methods, to_score


def _check_scored(scored: Mapping[str, Mapping[str, np.ndarray]], count: int) -> None:
    for method, values in scored.items():
        lengths = {len(values[name]) for name in report.METRICS}
        if lengths != {count}:
            raise EvaluationInputError(f"scores given for {method!r} cover {sorted(lengths)} images; "
                                       f"the data has {count}")


def _method_routes(baselines) -> dict[str, dict]:
    """Baseline -> `baselines.baseline_routes(...)`, for the baselines that have several routes (e.g. PatchMatch)."""
    routes = {name: baseline_routes(name) for name in baselines}
    return {name: report for name, report in routes.items() if report is not None}


def evaluate(
    data: str | os.PathLike,
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    generator=None,
    name: str = "dmfn",
    scored: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    dataset_name: str | None = None,
    paper_row: str | None = None,
    out: str | os.PathLike | None = None,
    record: dict | None = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Scores a generator and classic baselines on the paper's protocol.

    Args:
        data: a folder of images (searched recursively, sorted) or a file listing one per line.
        settings: what to measure (`EvaluationSettings`).
        generator: the DMFN generator, a mapping of row names to generators (several models side
            by side; `name` is then unused), or None to score only the baselines.
        name: the generator's row name.
        scored: method -> metric -> per-image scores of baselines already scored on the same data
            and settings (e.g. cached); they join the report as if scored now.
        dataset_name: the table's dataset name (default: the paper's, else the data's name).
        paper_row: a key of `report.PAPER_DMFN_RESULTS`, to add the paper's figures to the table.
        out: folder to write the report to, or None.
        record: extra settings recorded in `summary.json` (e.g. the model's path).
        progress: called with (images scored so far, images expected) after each batch.

    Returns:
        An `EvaluationResult`.
    """
    scored = dict(scored or {})
    _check_request(settings, paper_row, generator is not None or bool(scored))
    data = os.fspath(data)
    data_cfg = _data_config(data, settings)
    generators = generator if isinstance(generator, Mapping) else {} if generator is None else {name: generator}
    methods, to_score = _methods(generators, settings, scored)
    with counting_skips() as skips:
        paths, scores = _score_all(data, data_cfg, settings, methods, progress)
    _check_scored(scored, len(paths))
    scores.update({method: {metric: np.asarray(values[metric], np.float64) for metric in report.METRICS}
                   for method, values in scored.items()})
    files = [os.path.relpath(path, data) if os.path.isdir(data) else path for path in paths]
    label = dataset_name or (PAPER_DMFN_RESULTS[paper_row][0] if paper_row else Path(data).stem or Path(data).name)
    summary = report.summarize(scores)
    comparisons = statistics.compare_methods(scores, list(generators), [m for m in scores if m not in generators],
                                             resamples=settings.bootstrap_resamples)
    table = "\n".join(filter(None, [report.markdown_table(summary, label, paper_row),
                                     statistics.comparison_table(comparisons)]))
    recorded = {"data": data, **(record or {}), **settings.record(), "n_images": len(files),
                "skipped_files": skips.skipped, "skipped": skips.summary(), "baseline_routes": _method_routes(to_score)}
    result = EvaluationResult(files, scores, summary, comparisons, table, recorded)
    if out is not None:
        cases, case_files = _cases(data, settings, methods, scores, files)
        result.paths = report.write_report(out, files, scores, label, recorded, paper_row, cases, case_files,
                                           comparisons=comparisons)
    return result


def evaluation_inputs(data: str | os.PathLike, settings: EvaluationSettings, indices) -> tuple[np.ndarray, np.ndarray]:
    """The images and masks `evaluate` scores as images `indices` of `data` (e.g. to picture cases).

    Returns:
        (uint8 images (K, S, S, 3), float masks (K, S, S, 1)), in the order of `indices`.
    """
    wanted, picked = list(indices), {}
    batches = _batches(_data_config(os.fspath(data), settings), settings)
    for start, (images, masks, _) in zip(itertools.count(0, settings.batch_size), batches):
        for offset in range(len(images)):
            if start + offset in wanted:
                picked[start + offset] = (images[offset], masks[offset])
        if len(picked) == len(set(wanted)):
            break
    missing = [index for index in wanted if index not in picked]
    if missing:
        raise EvaluationInputError(f"{data}: no images at positions {missing}")
    return np.stack([picked[index][0] for index in wanted]), np.stack([picked[index][1] for index in wanted])


def _cases(data: str, settings: EvaluationSettings, methods: dict, scores: dict, files: list[str]):
    """The case grid of the first method scored now, and its rows' files (None, None without one)."""
    if settings.grid_cases <= 0 or not methods:
        return None, None
    first = next(iter(methods))
    worst, best = report.select_cases(scores[first], settings.grid_cases)
    case_images, case_masks = evaluation_inputs(data, settings, worst + best)
    cases = report.case_grid(*report.render_cases(methods[first], case_images, case_masks, range(len(worst + best))))
    return cases, {"method": first, "worst": [files[i] for i in worst], "best": [files[i] for i in best]}
