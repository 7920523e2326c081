"""Ships a training run's generator: `saved_models/<name>.keras`, its evaluation, pictures and model card.

1. Loads the run's latest generator and rebuilds it under the float32 policy (a run trained with
   `mixed_bfloat16` stores float32 weights, but its layers would compute in bfloat16), so the shipped
   file computes in float32 everywhere (CPU, SavedModel, TFLite) and loads with
   `dmfn_tf.model_io.load_generator(path)`. The file describes itself (`dmfn_tf.model_metadata`):
   trained size, architecture, the run (`~/runs`-relative), step, CPU hours and recipe. Only the generator is shipped: no discriminator,
   optimizer state or checkpoint.
2. Measures what float16 weights would change: every weight rounded to float16 and back, scored on
   both protocols next to the float32 weights.
3. Scores the generator on the corpus's validation photos at the four validation protocols (256²
   with a centred 128² hole; 128² with a centred 64² hole; brush strokes at 256² and 128²) next to
   Telea, Navier–Stokes, biharmonic and PatchMatch (`dmfn_tf.evaluation.validation`, through
   `evaluation.protocol.evaluate`), with the paired LPIPS difference from the best classic method and
   its 95 % bootstrap interval.
4. Writes pictures of good and failure cases at each protocol (`docs/images/<name>_<protocol>_{best,worst}.png`:
   input, DMFN, the best classic method, Navier–Stokes, target) and the model card `saved_models/README.md`.

Usage:

```bash
python scripts/ship_model.py --run ~/runs/<run> --name dmfn_photo_cpu --corpus ~/data/photo_corpus
```
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from dmfn_tf.evaluation.baselines import BASELINES as BASELINE_FUNCTIONS  # noqa: E402
from dmfn_tf.model_metadata import home_relative  # noqa: E402,F401  (the card names no path of this machine)

# The validation protocols of the card (`dmfn_tf.evaluation.validation.PROTOCOLS`) and the baselines.
SHIP_PROTOCOLS = ("p256", "p128", "p256_free", "p128_free")
BASELINES = tuple(BASELINE_FUNCTIONS)
ROOT = Path(__file__).resolve().parents[1]
# Rows per case picture; tiles are downscaled to this side.
CASES = 3
TILE = 128


def shipped_metadata(run: Path, step: int, cpu_seconds):
    """The shipped file's description (`dmfn_tf.model_metadata`): what the run's generator file records (or its
    config.yaml for an older run), as written by this script, with the CPU time of the curve where the file has none."""
    import dataclasses

    from dmfn_tf.model_io import model_metadata

    metadata = model_metadata(str(run))
    cpu_hours = metadata.provenance.cpu_hours
    if cpu_hours is None and cpu_seconds is not None:
        cpu_hours = round(float(cpu_seconds) / 3600.0, 4)
    provenance = dataclasses.replace(metadata.provenance, made_by="scripts/ship_model.py", step=int(step), cpu_hours=cpu_hours)
    return dataclasses.replace(metadata, provenance=provenance)


def float32_generator(run_generator, cfg):
    """The run's generator rebuilt under the float32 policy with the same weights."""
    import keras

    from dmfn_tf.models.generator import build_generator

    keras.mixed_precision.set_global_policy("float32")
    generator = build_generator(**cfg.model.generator_kwargs())
    generator.set_weights([np.asarray(w, np.float32) for w in run_generator.get_weights()])
    return generator


def with_float16_weights(generator, cfg):
    """A copy whose weights were rounded to float16 (and back to float32)."""
    copy = float32_generator(generator, cfg)
    copy.set_weights([np.asarray(w, np.float16).astype(np.float32) for w in generator.get_weights()])
    return copy


def _tiles(images, masks, outputs):
    from PIL import Image

    from dmfn_tf.inpaint.contract import to_uint8

    rows = []
    for index in range(len(images)):
        inputs = masks[index] + (1.0 - masks[index]) * images[index]
        tiles = [inputs] + [output[index] for output in outputs] + [images[index]]
        rows.append([np.asarray(Image.fromarray(np.asarray(to_uint8(t))).resize((TILE, TILE), Image.BICUBIC)) for t in tiles])
    return rows


def case_picture(rows, spacing=4) -> np.ndarray:
    height, width = len(rows), len(rows[0])
    grid = np.full((height * (TILE + spacing) - spacing, width * (TILE + spacing) - spacing, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            grid[r * (TILE + spacing): r * (TILE + spacing) + TILE, c * (TILE + spacing): c * (TILE + spacing) + TILE] = tile
    return grid


def load_run_generator(run: Path):
    """`(generator, step)`: the run's latest `generator.keras` and the checkpoint step it belongs to.

    The training run may be writing a checkpoint meanwhile (checkpoint first, then the generator
    file), so the pair is read again until the generator file is not older than the pointer.
    """
    from dmfn_tf.model_io import load_generator
    from dmfn_tf.training.checkpoints import read_latest

    pointer, generator_file = run / "checkpoints" / "latest.json", run / "generator.keras"
    for _ in range(30):
        step = read_latest(run / "checkpoints")["step"]
        if generator_file.stat().st_mtime >= pointer.stat().st_mtime:
            generator = load_generator(str(run))
            if read_latest(run / "checkpoints")["step"] == step:
                return generator, step
        time.sleep(2)
    raise SystemExit(f"{run}: the generator file keeps changing; try again")


def curve_summary(run: Path, step: int) -> dict:
    """The curve row of `step` (or the last one before it: its evaluation may still be running), from
    `validation.csv` (or an older run's `curve.csv`), with the clocks as `wall_s` and `cpu_s`."""
    path = run / "validation.csv" if (run / "validation.csv").is_file() else run / "curve.csv"
    if not path.is_file():
        return {}
    with open(path) as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
    row = dict(rows[-1]) if rows else {}
    for old, new in (("wall_s", "wall_seconds"), ("cpu_s", "cpu_seconds")):
        if new in row:
            row[old] = row[new]
    return row


def corpus_summary(corpus: Path) -> dict:
    manifest = json.loads((corpus / "manifest.json").read_text())
    sources, licences, counts = {}, {}, {}
    for photo in manifest["photos"]:
        key = (photo["source"], photo["version"])
        sources.setdefault(key, {"train": 0, "val": 0})[photo["split"]] += 1
        licences.setdefault(photo["licence"], []).append(photo["photo"].split(":", 1)[1])
        for file in photo["files"]:
            counts[file.split("/")[0]] = counts.get(file.split("/")[0], 0) + 1
    return {"sources": sources, "licences": licences, "files": counts, "manifest": manifest}


def protocol_title(results: dict, protocol: str) -> str:
    size = results["image_size"][protocol]
    hole = f"centred {size // 2}² hole" if results["mask"][protocol] == "center_box" else "brush strokes (`--mask free_form`)"
    return f"{size}² image, {hole}"


def table(results: dict, protocol: str) -> str:
    lines = [f"| {protocol_title(results, protocol)} ({results['n_images'][protocol]} images) | LPIPS ↓ | PSNR ↑ | SSIM ↑ "
             "| hole colour error ↓ |", "|---|---|---|---|---|"]
    names = {"dmfn": "**DMFN (this model)**", "telea": "Telea (OpenCV)", "ns": "Navier–Stokes (OpenCV)",
             "biharmonic": "biharmonic (scikit-image)", "patchmatch": "PatchMatch (patchmatch-cython)"}
    for method in ("dmfn",) + BASELINES:
        m = results[protocol][method]
        lines.append(f"| {names[method]} | {m['lpips']:.4f} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['colour']:.1f} |")
    return "\n".join(lines)


def verdict(results: dict, protocol: str) -> str:
    """One line: the model against the best classic method, with the paired difference's 95 % interval."""
    score = results["scores"][protocol]
    difference = score.lpips_difference
    beaten = difference["high"] < 0
    return (f"- {protocol_title(results, protocol)}: DMFN LPIPS {score.lpips:.4f} vs best classic ({score.best_classic}) "
            f"{score.best_classic_lpips:.4f}; paired difference {difference['mean']:+.4f} "
            f"[{difference['low']:+.4f}, {difference['high']:+.4f}]: "
            + ("**beats it**." if beaten else "**does not beat it yet**."))


def mixture_note(cfg) -> str:
    if cfg.data.mask != "mixture":
        return ""
    from dmfn_tf.data.masks.generators import MIXTURE_SHARES, WIDE_STROKE_SCALE

    shares = ", ".join(f"{share:.0%} {kind.replace('_', ' ')}" for share, kind in MIXTURE_SHARES)
    return f" ({shares}; wide strokes {WIDE_STROKE_SCALE}× the width of `--mask free_form`'s)"


def model_card(name, run, cfg, cfg_text, results, corpus, step, curve, float16, size_bytes, pictures) -> str:
    recipe = cfg.name if (ROOT / "configs" / f"{cfg.name}.yaml").is_file() else "photo_cpu"
    sources = "\n".join(f"| {src} | {ver} | {n['train']} | {n['val']} |" for (src, ver), n in sorted(corpus["sources"].items()))
    licences = "\n".join(f"- {lic}: {', '.join(sorted(photos))}" for lic, photos in sorted(corpus["licences"].items()))
    wall_h = float(curve.get("wall_s", 0)) / 3600
    cpu_h = float(curve.get("cpu_s", 0)) / 3600
    verdicts = [verdict(results, protocol) for protocol in SHIP_PROTOCOLS]
    beaten = [p for p in SHIP_PROTOCOLS if results["scores"][p].lpips_difference["high"] < 0]
    undertrained = "" if len(beaten) == len(SHIP_PROTOCOLS) else (
        "- **Beating the classic methods everywhere, at this training length**: where the verdicts above\n"
        "  say so, a classic method scores better in LPIPS. The learning curves in `docs/training_on_cpu.md`\n"
        "  say how far it is from the baselines and what the campaign tries next.\n")
    return f"""# Shipped models

## `{name}.keras`: a small DMFN trained on CPU on freely licensed photos

Load it with `dmfn_tf.model_io.load_generator("saved_models/{name}.keras")` (or `dmfn inpaint --model
saved_models/{name}.keras`). One file of {size_bytes / 1e6:.2f} MB: the generator only (float32 weights and
compute; no discriminator, optimizer state or checkpoint). Written by `scripts/ship_model.py` from the
training run `{run}`; everything below is generated by that script.

### Validation (photos never trained on)

{chr(10).join(verdicts)}

{chr(10).join(table(results, protocol) + chr(10) for protocol in SHIP_PROTOCOLS)}
All methods are scored on the composite (known pixels kept), LPIPS with AlexNet; see
`dmfn_tf/evaluation/report.py`. Validation images: for each of the {sum(n['val'] for n in corpus['sources'].values())} validation photos, the
whole photo's centre square and crops of the photo downscaled to larger short sides:
{results['n_images']['p256']} images of 256² and {results['n_images']['p128']} of 128² in all.

The hole colour error is the mean colour shift inside the hole, in 8-bit levels
(`metrics.hole_colour_error`). Float16 weights were measured, not adopted: rounding every weight to
float16 changes LPIPS by {float16['p256']:+.1e} (256²) and {float16['p128']:+.1e} (128²). The float32 file is already
{size_bytes / 1e6:.1f} MB, and a float16 Keras file would also compute in float16.

### Pictures

Best and worst validation cases by LPIPS: input (hole white) | DMFN | the best classic method of the
protocol | Navier–Stokes | original.

{chr(10).join(f"{protocol_title(results, p)}, best, then worst:{chr(10)}{chr(10)}![best cases, {p}]({pictures[p + '_best']}){chr(10)}{chr(10)}![failure cases, {p}]({pictures[p + '_worst']}){chr(10)}" for p in SHIP_PROTOCOLS)}
### Training

- Steps: {step} (batch {results['batch_size']}). Up to step {curve.get('step', '?')}: {wall_h:.2f} h wall-clock and {cpu_h:.2f} h
  of process CPU time on a 2-vCPU machine shared with other work (`nice -n 19`), evaluations not counted.
- Holes seen in training (`data.mask`): {cfg.data.mask}{mixture_note(cfg)}.
- Recipe: [`configs/{recipe}.yaml`](../configs/{recipe}.yaml), chosen by the learning curves in
  [`docs/training_on_cpu.md`](../docs/training_on_cpu.md). The run's resolved configuration:

```yaml
{cfg_text.strip()}
```

### Data and licences

Built offline by `scripts/build_photo_corpus.py` from photographs bundled in Python and Debian
packages, each reviewed by eye (renders, logos, abstract art and illustrations left out), split into
training and validation **by photo**. Training: {corpus['files'].get('train128', 0)} crops of 128²
(and {corpus['files'].get('train256', 0)} of 256²) cut at three scales from the training photos.

| Source | Version | Training photos | Validation photos |
|---|---|---|---|
{sources}

Licences (as stated by the package; Debian packages: the `Files: *` stanza of their copyright file):

{licences}

### What it is not good at

{undertrained}- **Large structures**: a hole over a building edge, a horizon or an object (the rocket, the sheep
  in the pictures) is filled from the surrounding colours, not with the continued structure.
- **Faces and text**: a handful of faces were in the training photos; it does not complete eyes,
  mouths or letters.
- **Fine detail at 256²**: it was trained on 128² crops; at 256² (hole 128²) the centre of the hole
  gets smoother than its surroundings.
- Holes much larger than a quarter of the image, and images far from the photographs above
  (drawings, screenshots, medical images).
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the training run folder")
    parser.add_argument("--name", default="dmfn_photo_cpu")
    parser.add_argument("--corpus", default=os.path.expanduser("~/data/photo_corpus"))
    parser.add_argument("--out", default=str(ROOT / "saved_models"))
    parser.add_argument("--images", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args(argv)

    from PIL import Image

    from dmfn_tf.config import load_config
    from dmfn_tf.evaluation.baselines import BASELINES as FUNCTIONS
    from dmfn_tf.evaluation.report import baseline_inpaint_fn, generator_inpaint_fn, render_cases, select_cases
    from dmfn_tf.model_io import load_generator
    from dmfn_tf.model_io import save_model_atomically

    run, corpus_dir = Path(args.run).expanduser(), Path(args.corpus).expanduser()
    cfg = load_config(run / "config.yaml")
    run_generator, step = load_run_generator(run)
    generator = float32_generator(run_generator, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.name}.keras"
    save_model_atomically(generator, path, metadata=shipped_metadata(run, step, curve_summary(run, step).get("cpu_s")))
    shipped = load_generator(str(path))
    probe = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 4)).astype(np.float32)
    difference = float(np.max(np.abs(np.asarray(shipped(probe)) - np.asarray(generator(probe)))))
    if difference > 1e-6:
        raise SystemExit(f"{path}: the reloaded generator differs by {difference}")

    from dmfn_tf.evaluation import validation
    from dmfn_tf.evaluation.protocol import evaluation_inputs

    protocols = {name: validation.PROTOCOLS[name] for name in SHIP_PROTOCOLS}
    evaluated = {name: validation.evaluate_protocol(shipped, corpus_dir, protocol) for name, protocol in protocols.items()}
    rounded = with_float16_weights(shipped, cfg)
    half = {name: validation.evaluate_protocol(rounded, corpus_dir, protocol) for name, protocol in protocols.items()}
    results = {"batch_size": cfg.train.batch_size, "n_images": {}, "image_size": {}, "mask": {}, "scores": {}}
    for name, result in evaluated.items():
        results[name] = {"dmfn": result.summary[validation.MODEL], **{b: result.summary[b] for b in BASELINES}}
        results["n_images"][name] = len(result.files)
        results["image_size"][name] = protocols[name].settings.image_size
        results["mask"][name] = protocols[name].settings.mask
        results["scores"][name] = validation.protocol_score(result)
    float16 = {p: half[p].summary[validation.MODEL]["lpips"] - results[p]["dmfn"]["lpips"] for p in SHIP_PROTOCOLS}

    # Pictures at every protocol: DMFN next to the best classic method and Navier–Stokes.
    images_dir = Path(args.images)
    images_dir.mkdir(parents=True, exist_ok=True)
    pictures, cases = {}, {}
    for protocol in SHIP_PROTOCOLS:
        result, folder = evaluated[protocol], corpus_dir / protocols[protocol].folder
        worst, best = select_cases(result.scores[validation.MODEL], CASES)
        for label, indices in (("best", best), ("worst", worst)):
            images, masks = evaluation_inputs(folder, protocols[protocol].settings, indices)
            shown = range(len(indices))
            case_images, case_masks, ours = render_cases(generator_inpaint_fn(shipped), images, list(masks), shown)
            shown_baselines = (results["scores"][protocol].best_classic, "ns")
            theirs = [render_cases(baseline_inpaint_fn(FUNCTIONS[b]), images, list(masks), shown)[2] for b in shown_baselines]
            picture = images_dir / f"{args.name}_{protocol}_{label}.png"
            Image.fromarray(case_picture(_tiles(case_images, case_masks, [ours] + theirs))).save(picture, optimize=True)
            pictures[f"{protocol}_{label}"] = os.path.relpath(picture, out)
            cases[f"{protocol}_{label}"] = [result.files[i] for i in indices]

    curve = curve_summary(run, step)
    card = model_card(args.name, run, cfg, (run / "config.yaml").read_text(), results, corpus_summary(corpus_dir), step, curve,
                      float16, path.stat().st_size, pictures)
    (out / "README.md").write_text(home_relative(card))
    summary = {"model": str(path), "step": step, "curve_step": curve.get("step"), "wall_s": curve.get("wall_s"), "cpu_s": curve.get("cpu_s"),
               "float16_lpips_change": float16, **{p: results[p] for p in SHIP_PROTOCOLS},
               "versus_best_classic": {p: {"best_classic": results["scores"][p].best_classic, **results["scores"][p].lpips_difference}
                                       for p in SHIP_PROTOCOLS},
               "cases": cases}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
