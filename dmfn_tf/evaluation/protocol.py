"""The evaluation protocol of the paper's Table 1, as one library function (`evaluate`).

Images come through the data package's evaluation input (`dmfn_tf.data.pipeline.build_eval_dataset`:
every image once, in file order, centre-cropped to a square and resized, bicubic, to `image_size`,
then quantised to 8 bits), the masks from its registry (`dmfn_tf.data.masks.MASK_KINDS`; the
paper's is "center_box", a centred hole of half the side). The model runs through the inpainting
contract (`dmfn_tf.inpainting`), the classic baselines through `baselines.BASELINES`, and every
method is scored on the same images and masks (`report.score`). The report (`per_image.csv`,
`summary.json`, `table.md`, `cases.png`) is written to `out` when given, and the result returned.
`dmfn evaluate` and `dmfn demo` both call `evaluate`.

Example:

```python
result = evaluate("celeba_hq_test.txt", generator=load_generator("runs/celeba_hq"), paper_row="celeba_hq",
                  out="eval_celeba")
result.summary["dmfn"]["psnr"], result.table
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from dmfn_tf.evaluation import report
from dmfn_tf.evaluation.baselines import BASELINES
from dmfn_tf.evaluation.paper import PAPER_DMFN_RESULTS
from dmfn_tf.evaluation.report import EvaluationInputError

DEFAULT_MASK = "center_box"
# LPIPS-AlexNet's pooling stages need at least 31 pixels a side.
MIN_IMAGE_SIZE = 32


@dataclass
class EvaluationResult:
    """What `evaluate` measured.

    Attributes:
        files: image names (relative to a data folder, or as listed), in scoring order.
        scores: method -> `{"psnr", "ssim", "l1", "lpips"}` -> per-image float64 arrays.
        summary: method -> means (`report.summarize`).
        table: the Markdown table (`report.markdown_table`).
        settings: the protocol settings, as `summary.json` records them.
        paths: report file name -> path, when written.
    """

    files: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    summary: dict[str, dict]
    table: str
    settings: dict
    paths: dict[str, Path] = field(default_factory=dict)


def _data_config(data: str, mask: str, mask_files: str | None, invert_mask: bool, mask_from_alpha: bool):
    from dmfn_tf.config import DataConfig
    from dmfn_tf.data.masks import MASK_KINDS

    if mask not in MASK_KINDS:
        raise EvaluationInputError(f"unknown mask kind {mask!r}; expected one of {', '.join(MASK_KINDS)}")
    if mask == "file" and not mask_files:
        raise EvaluationInputError("mask kind 'file' needs a folder or list of mask files")
    if not os.path.exists(data):
        raise EvaluationInputError(f"{data}: no such image folder or file list")
    # A random box keeps its full half-side size here (no shrinking: delta 0).
    return DataConfig(source="folder" if os.path.isdir(data) else "list", path=str(data), mask=mask,
                      mask_path=str(mask_files or ""), mask_delta=0, invert_mask=invert_mask,
                      mask_from_alpha=mask_from_alpha)


def evaluate(
    data: str | os.PathLike,
    *,
    generator=None,
    name: str = "dmfn",
    baselines: Sequence[str] = tuple(BASELINES),
    image_size: int = 256,
    mask: str = DEFAULT_MASK,
    mask_files: str | os.PathLike | None = None,
    invert_mask: bool = False,
    mask_from_alpha: bool = False,
    seed: int = 0,
    lpips: str = "alex",
    lpips_weights: str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    dataset_name: str | None = None,
    paper_row: str | None = None,
    grid_cases: int = 4,
    out: str | os.PathLike | None = None,
    record: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Scores a generator and classic baselines on the paper's protocol.

    Args:
        data: a folder of images (searched recursively, sorted) or a file listing one per line.
        generator: the DMFN generator, a mapping of row names to generators (several models side
            by side; `name` is then unused), or None to score only the baselines.
        name: the generator's row name.
        baselines: names among `baselines.BASELINES`.
        image_size: square side the images are cropped and resized to (a multiple of 4, >= 32).
        mask: a mask kind of `dmfn_tf.data.masks.MASK_KINDS` ("file": `mask_files`, image n with
            mask n, cycling). Random kinds depend only on `seed` and the image's position.
        mask_files: folder or list of mask files for mask kind "file".
        invert_mask: mask files mark holes with 0.
        mask_from_alpha: read the holes from the mask files' alpha channel.
        seed: seed of the random mask kinds.
        lpips: LPIPS backbone, "alex" or "vgg", or "none" to skip it.
        lpips_weights: local LPIPS weights (see `lpips_weights.lpips_weight_file`).
        limit: only the first N images.
        batch_size: images per model call.
        dataset_name: the table's dataset name (default: the paper's with `paper_row`, else the
            data's file or folder name).
        paper_row: a key of `report.PAPER_DMFN_RESULTS`, to add the paper's figures to the table.
        grid_cases: worst and best cases each in `cases.png` (0: none).
        out: folder to write the report to, or None.
        record: extra settings recorded in `summary.json` (e.g. the model's path).
        progress: called with the number of images scored so far, after each batch.

    Returns:
        An `EvaluationResult`.
    """
    from dmfn_tf.data.masks import check_mask_size
    from dmfn_tf.data.pipeline import build_eval_dataset
    from dmfn_tf.inpainting import to_uint8

    if image_size < MIN_IMAGE_SIZE:
        raise EvaluationInputError(f"image size {image_size}: must be at least {MIN_IMAGE_SIZE}")
    check_mask_size(image_size)  # a multiple of 4: the centred hole is S/2 at S/4
    if limit is not None and limit < 1:
        raise EvaluationInputError(f"limit {limit}: must be at least 1")
    unknown = [baseline for baseline in baselines if baseline not in BASELINES]
    if unknown:
        raise EvaluationInputError(f"unknown baselines {unknown}; choose among {', '.join(BASELINES)}")
    if paper_row is not None and paper_row not in PAPER_DMFN_RESULTS:
        raise EvaluationInputError(f"unknown paper row {paper_row!r}; expected one of {sorted(PAPER_DMFN_RESULTS)}")
    if generator is None and not baselines:
        raise EvaluationInputError("nothing to evaluate: give a model, or baselines")
    data = os.fspath(data)
    data_cfg = _data_config(data, mask, mask_files, invert_mask, mask_from_alpha)
    generators = generator if isinstance(generator, Mapping) else {} if generator is None else {name: generator}
    methods = {row: report.generator_inpaint_fn(model) for row, model in generators.items()}
    methods.update({baseline: report.baseline_inpaint_fn(BASELINES[baseline]) for baseline in baselines})
    lpips_metric = None
    if lpips != "none":
        from dmfn_tf.evaluation.lpips import LPIPS

        lpips_metric = LPIPS(lpips, source=lpips_weights, batch_size=batch_size)

    def batches():
        dataset = build_eval_dataset(data_cfg, image_size, batch_size, mask=mask, seed=seed, limit=limit)
        for batch in dataset:
            yield (np.asarray(to_uint8(batch["image"])), batch["mask"].numpy(),
                   [path.decode() for path in batch["path"].numpy()])

    paths, collected, done = [], {method: [] for method in methods}, 0
    for images, masks, batch_paths in batches():
        paths += batch_paths
        done += len(images)
        for method, inpaint_fn in methods.items():
            collected[method].append(report.score(inpaint_fn, images, list(masks), lpips_metric, batch_size))
        if progress is not None:
            progress(done)
    if not paths:
        raise EvaluationInputError(f"{data}: no readable image files listed or found")
    scores = {method: {metric: np.concatenate([part[metric] for part in parts]) for metric in report.METRICS}
              for method, parts in collected.items()}

    files = [os.path.relpath(path, data) if os.path.isdir(data) else path for path in paths]
    label = dataset_name or (PAPER_DMFN_RESULTS[paper_row][0] if paper_row else Path(data).stem or Path(data).name)
    summary = report.summarize(scores)
    table = report.markdown_table(summary, label, paper_row)
    settings = {"data": data, **(record or {}), "image_size": image_size, "mask": mask,
                "mask_files": None if mask_files is None else os.fspath(mask_files), "invert_mask": invert_mask,
                "seed": seed, "lpips": lpips, "n_images": len(files)}
    result = EvaluationResult(files, scores, summary, table, settings)
    if out is None:
        return result

    cases = case_files = None
    if grid_cases > 0:
        first = next(iter(methods))
        worst, best = report.select_cases(scores[first], grid_cases)
        wanted = worst + best
        picked = {}
        for start, (images, masks, _) in zip(range(0, len(files), batch_size), batches()):
            for offset in range(len(images)):
                if start + offset in wanted:
                    picked[start + offset] = (images[offset], masks[offset])
        case_images = np.stack([picked[index][0] for index in wanted])
        case_masks = np.stack([picked[index][1] for index in wanted])
        cases = report.case_grid(*report.render_cases(methods[first], case_images, case_masks, range(len(wanted))))
        case_files = {"method": first, "worst": [files[i] for i in worst], "best": [files[i] for i in best]}
    result.paths = report.write_report(out, files, scores, label, settings, paper_row, cases, case_files)
    return result
