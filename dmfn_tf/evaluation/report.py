"""The evaluation protocol of the paper's Table 1 (docs/design.md §7) and the report `dmfn evaluate` writes.

Every method is scored on the composite (`dmfn_tf.inpaint.contract.composite`) against the ground truth:
LPIPS (lower is better), PSNR and SSIM on 8-bit RGB (higher is better), and L1 in [-1, 1] units.
`score` works with any inpainting function, so the model and the classic baselines share one code
path; `write_report` then writes

- `per_image.csv`: one row per image and method (`file, method, psnr, ssim, l1, lpips`);
- `summary.json`: the settings, each method's means over the images and each model's paired
  difference from each baseline with its bootstrap interval (`statistics.compare_methods`);
- `table.md`: a Markdown table laid out as the paper's Table 1 (rows: methods; one column, the
  dataset, holding "LPIPS / PSNR / SSIM"), optionally with the paper's DMFN row for reference,
  then the paired differences (model − baseline, with their bootstrap intervals);
- `cases.png`: the worst and best images of the first method (input | output | target).

The whole protocol (reading images, masks, model and baselines, report) is
`dmfn_tf.evaluation.protocol.evaluate`.

Example:

```python
scores = score(generator_inpaint_fn(generator), images_uint8, center_box(256)[0].numpy(), lpips_metric=LPIPS())
write_report("eval_out", files, {"dmfn": scores}, dataset_label="CelebA-HQ", paper_row="celeba_hq")
```
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dmfn_tf.atomic_files import atomic_path, write_text_atomically
from dmfn_tf.errors import UserError
from dmfn_tf.evaluation.metrics import hole_colour_error, image_metrics
from dmfn_tf.evaluation.paper import PAPER_DMFN_RESULTS
from dmfn_tf.evaluation.statistics import comparison_table
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.inpaint.contract import binarise_mask, composite, to_model_range, to_uint8
from dmfn_tf.inpaint.runner import inpaint_model_range

METRICS = ("psnr", "ssim", "l1", "lpips", "colour")
CSV_COLUMNS = ("file", "method") + METRICS

InpaintFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class EvaluationInputError(UserError, ValueError):
    """Images, masks or settings given to the evaluation do not fit together."""


def generator_inpaint_fn(generator, max_pixels: int = DEFAULT_MAX_PIXELS) -> InpaintFn:
    """Wraps a DMFN generator as an inpainting function returning composites (any size).

    The images go the way photos go (`dmfn_tf.inpaint`): the planner's budget check and plan with
    the `original` strategy (the whole image at its own size, as the paper scores it), run by
    `dmfn_tf.inpaint.runner.inpaint_model_range`, in [-1, 1] without rounding to 8 bits.

    Args:
        generator: a Keras model from (B, H, W, 4) to the raw (B, H, W, 3) tanh image.
        max_pixels: the budget of one image (`PixelBudgetError` above it).

    Returns:
        `inpaint_fn(images [-1, 1] (B, H, W, 3), masks (B, H, W, 1)) -> composites (B, H, W, 3)`.
    """
    def inpaint(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return inpaint_model_range(generator, images, masks, max_pixels=max_pixels, source="evaluation image",
                                   helps="evaluate at a smaller image size")

    return inpaint


def baseline_inpaint_fn(baseline: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> InpaintFn:
    """Wraps a per-image uint8 baseline (see `baselines.BASELINES`) as a batched inpainting function.

    Args:
        baseline: `(image uint8 (H, W, 3), mask bool (H, W)) -> uint8 (H, W, 3)`.

    Returns:
        `inpaint_fn(images [-1, 1] (B, H, W, 3), masks (B, H, W, 1)) -> composites (B, H, W, 3)`.
    """

    def inpaint(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        pixels = np.asarray(to_uint8(images))
        filled = [baseline(image, mask[..., 0] > 0.5) for image, mask in zip(pixels, masks)]
        return np.asarray(to_model_range(np.stack(filled)))

    return inpaint


def _mask_at(masks, index: int, image_shape: tuple) -> np.ndarray:
    """The (H, W, 1) float mask of image `index`: one mask for all, or one per image."""
    mask = np.asarray(masks if _is_single_mask(masks) else masks[index], np.float32)
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.shape != tuple(image_shape[:2]) + (1,):
        raise EvaluationInputError(f"mask {index} has shape {mask.shape}; image {index} is {tuple(image_shape)}")
    return np.asarray(binarise_mask(mask[None]))[0]


def _is_single_mask(masks) -> bool:
    return isinstance(masks, np.ndarray) and masks.ndim in (2, 3) and (masks.ndim == 2 or masks.shape[-1] == 1)


def _load_batch(images, masks, indices) -> tuple[np.ndarray, np.ndarray]:
    batch_images, batch_masks = [], []
    for index in indices:
        image = np.asarray(images[index])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise EvaluationInputError(f"image {index} must be (H, W, 3) uint8 RGB; got {image.shape} {image.dtype}")
        batch_images.append(np.asarray(to_model_range(image)))
        batch_masks.append(_mask_at(masks, index, image.shape))
    return np.stack(batch_images), np.stack(batch_masks)


def score(
    inpaint_fn: InpaintFn,
    images: Sequence[np.ndarray],
    masks,
    lpips_metric=None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Scores an inpainting function on the paper's protocol, per image.

    The function's output is composited with the known pixels (`dmfn_tf.inpaint.contract.composite`)
    before scoring, so a function returning the raw generator output is scored correctly too.

    Args:
        inpaint_fn: `(images [-1, 1] float32 (B, H, W, 3), masks float32 (B, H, W, 1), 1 = hole)
            -> (B, H, W, 3)` in [-1, 1]. See `generator_inpaint_fn` and `baseline_inpaint_fn`.
        images: ground truth as uint8 RGB (H, W, 3): an (N, H, W, 3) array or any sequence
            (e.g. one that reads files lazily). Scaled to [-1, 1] as `x / 127.5 - 1`.
        masks: one mask for all images ((H, W) or (H, W, 1) array) or a sequence of N of them;
            holes by the contract's mask rule (`dmfn_tf.inpaint.contract.binarise_mask`).
        lpips_metric: an `lpips.LPIPS` instance, or None to skip LPIPS (reported as NaN).
        batch_size: images per call of `inpaint_fn`.
        progress: optional callback `(done, total)` after each batch.

    Returns:
        `{"psnr", "ssim", "l1", "lpips"}` -> (N,) float64 arrays, in the order of `images`.

    Example:

    ```python
    scores = score(baseline_inpaint_fn(BASELINES["telea"]), images, center_box(256)[0].numpy())
    scores["psnr"].mean()
    ```
    """
    total = len(images)
    if total == 0:
        raise EvaluationInputError("no images to evaluate")
    if not _is_single_mask(masks) and len(masks) != total:
        raise EvaluationInputError(f"{len(masks)} masks for {total} images")
    collected = {metric: [] for metric in METRICS}
    for start in range(0, total, batch_size):
        batch_images, batch_masks = _load_batch(images, masks, range(start, min(start + batch_size, total)))
        outputs = np.asarray(inpaint_fn(batch_images, batch_masks), np.float32)
        if outputs.shape != batch_images.shape:
            raise EvaluationInputError(
                f"the inpainting function returned {outputs.shape} for images {batch_images.shape}"
            )
        composites = np.asarray(composite(np.clip(outputs, -1.0, 1.0), batch_images, batch_masks))
        for metric, values in image_metrics(composites, batch_images).items():
            collected[metric].append(values)
        collected["colour"].append(hole_colour_error(composites, batch_images, batch_masks))
        if lpips_metric is not None:
            collected["lpips"].append(lpips_metric(composites, batch_images))
        else:
            collected["lpips"].append(np.full(len(batch_images), np.nan))
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return {metric: np.concatenate(values) for metric, values in collected.items()}


def summarize(scores_by_method: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float | None]]:
    """Means over the images of each method and metric (None where a metric was not computed).

    Args:
        scores_by_method: method name -> the dict `score` returned.

    Returns:
        method name -> {"n_images", "psnr", "ssim", "l1", "lpips"}.
    """
    summary = {}
    for method, scores in scores_by_method.items():
        means = {metric: float(np.mean(scores[metric])) for metric in METRICS}
        summary[method] = {"n_images": int(len(scores["psnr"]))}
        summary[method].update({metric: None if math.isnan(value) else value for metric, value in means.items()})
    return summary


def _format_triplet(lpips_value, psnr_value, ssim_value) -> str:
    lpips_text = "–" if lpips_value is None else f"{lpips_value:.4f}"
    return f"{lpips_text} / {psnr_value:.2f} / {ssim_value:.4f}"


def markdown_table(summary: dict, dataset_label: str, paper_row: str | None = None) -> str:
    """Formats method means as the paper's Table 1: one row per method, "LPIPS / PSNR / SSIM".

    Args:
        summary: the output of `summarize`.
        dataset_label: the column's dataset name.
        paper_row: a key of `PAPER_DMFN_RESULTS` (e.g. "celeba_hq") to add the paper's DMFN
            figures for that dataset as the first row, for reference.

    Returns:
        The table as Markdown text, ending with a newline.
    """
    n_images = next(iter(summary.values()))["n_images"] if summary else 0
    lines = [
        f"| Method | {dataset_label} ({n_images:,} images): LPIPS ↓ / PSNR ↑ / SSIM ↑ |",
        "|---|---|",
    ]
    if paper_row is not None:
        if paper_row not in PAPER_DMFN_RESULTS:
            raise EvaluationInputError(f"unknown paper row {paper_row!r}; expected one of {sorted(PAPER_DMFN_RESULTS)}")
        name, paper_images, lpips_value, psnr_value, ssim_value = PAPER_DMFN_RESULTS[paper_row]
        lines.append(f"| DMFN (paper, {name}, {paper_images:,} images) | "
                     f"{_format_triplet(lpips_value, psnr_value, ssim_value)} |")
    for method, means in summary.items():
        lines.append(f"| {method} | {_format_triplet(means['lpips'], means['psnr'], means['ssim'])} |")
    return "\n".join(lines) + "\n"


def write_per_image_csv(path: str | Path, files: Sequence[str], scores_by_method: dict) -> None:
    """Writes one row per image and method: `file, method, psnr, ssim, l1, lpips` (empty if not computed).

    Args:
        path: the CSV file to write.
        files: the image names, in the order of the scores.
        scores_by_method: method name -> the dict `score` returned.
    """
    with atomic_path(path, suffix=".csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for method, scores in scores_by_method.items():
            for index, name in enumerate(files):
                values = [scores[metric][index] for metric in METRICS]
                writer.writerow([name, method] + ["" if math.isnan(value) else repr(float(value)) for value in values])


def select_cases(scores: dict[str, np.ndarray], count: int) -> tuple[list[int], list[int]]:
    """Indices of the `count` worst and `count` best images (by LPIPS, or by PSNR without LPIPS).

    Args:
        scores: the dict `score` returned for one method.
        count: cases per end; fewer when there are not enough distinct images.

    Returns:
        (worst first, best first) index lists, disjoint.
    """
    badness = scores["lpips"] if not np.isnan(scores["lpips"]).any() else -scores["psnr"]
    order = [int(index) for index in np.argsort(-badness, kind="stable")]
    worst = order[:min(count, (len(order) + 1) // 2)]
    best = [index for index in reversed(order) if index not in worst][:count]
    return worst, best


def render_cases(inpaint_fn: InpaintFn, images, masks, indices: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Runs the inpainting function again on a few images, for the case grid.

    Args:
        inpaint_fn, images, masks: as given to `score`.
        indices: which images.

    Returns:
        (images, masks, composites) of those images, as `case_grid` takes them.
    """
    case_images, case_masks = _load_batch(images, masks, indices)
    outputs = np.clip(np.asarray(inpaint_fn(case_images, case_masks), np.float32), -1.0, 1.0)
    return case_images, case_masks, np.asarray(composite(outputs, case_images, case_masks))


def case_grid(images: np.ndarray, masks: np.ndarray, composites: np.ndarray, spacing: int = 4) -> np.ndarray:
    """Tiles rows of input (hole shown white) | output | target into one uint8 image.

    Args:
        images: (K, H, W, 3) ground truth in [-1, 1].
        masks: (K, H, W, 1), 1 = hole.
        composites: (K, H, W, 3) outputs in [-1, 1].
        spacing: white pixels between tiles.

    Returns:
        (K * (H + spacing) - spacing, 3 * (W + spacing) - spacing, 3) uint8.
    """
    count, height, width = images.shape[:3]
    grid = np.full((count * (height + spacing) - spacing, 3 * (width + spacing) - spacing, 3), 255, np.uint8)
    inputs = np.asarray(composite(1.0, images, masks))  # holes white
    for row in range(count):
        for column, tile in enumerate((inputs[row], composites[row], images[row])):
            top, left = row * (height + spacing), column * (width + spacing)
            grid[top:top + height, left:left + width] = np.asarray(to_uint8(tile))
    return grid


def write_report(
    out_dir: str | Path,
    files: Sequence[str],
    scores_by_method: dict[str, dict[str, np.ndarray]],
    dataset_label: str,
    settings: dict | None = None,
    paper_row: str | None = None,
    cases: np.ndarray | None = None,
    case_files: dict[str, list[str]] | None = None,
    comparisons: dict | None = None,
) -> dict[str, Path]:
    """Writes `per_image.csv`, `summary.json`, `table.md` and, given `cases`, `cases.png`.

    Args:
        out_dir: output folder (created if needed).
        files: image names, in the order of the scores.
        scores_by_method: method name -> the dict `score` returned; the order is the table's.
        dataset_label: the dataset's name in the table.
        settings: protocol settings to record in `summary.json` (image size, mask, LPIPS network...).
        paper_row: key of `PAPER_DMFN_RESULTS` to add the paper's DMFN figures to the table.
        cases: a uint8 image from `case_grid`, saved as `cases.png`.
        case_files: the grid's rows as `{"worst": [...], "best": [...]}`, recorded in `summary.json`.
        comparisons: model -> baseline -> metric -> paired difference (`statistics.compare_methods`),
            recorded in `summary.json` and tabled in `table.md` below the means.

    Returns:
        Name -> path of every file written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("per_image.csv", "summary.json", "table.md")}
    write_per_image_csv(paths["per_image.csv"], files, scores_by_method)
    summary = summarize(scores_by_method)
    document = {"dataset": dataset_label, "settings": settings or {}, "methods": summary}
    if paper_row is not None and paper_row in PAPER_DMFN_RESULTS:
        name, paper_images, lpips_value, psnr_value, ssim_value = PAPER_DMFN_RESULTS[paper_row]
        document["paper_dmfn"] = {"dataset": name, "n_images": paper_images, "lpips": lpips_value,
                                  "psnr": psnr_value, "ssim": ssim_value}
    if case_files is not None:
        document["cases"] = case_files
    table = markdown_table(summary, dataset_label, paper_row)
    if comparisons:
        document["comparisons"] = comparisons
        table += "\n" + comparison_table(comparisons)
    write_text_atomically(paths["table.md"], table)
    write_text_atomically(paths["summary.json"], json.dumps(document, indent=2) + "\n")
    if cases is not None:
        paths["cases.png"] = out_dir / "cases.png"
        with atomic_path(paths["cases.png"], suffix=".png") as temporary:
            Image.fromarray(cases).save(temporary, format="PNG")
    return paths
