"""`dmfn convert --checkpoint G.pth [--discriminator D.pth] --out DIR [--export saved_model,tflite]`.

Converts the authors' PyTorch checkpoints (or `.npz` archives with the same tensor names) into
Keras files; see `dmfn_tf.convert.converter.convert_checkpoint`.
"""

from __future__ import annotations

import argparse


def _export_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _tflite_size(text: str) -> int | None:
    if text == "dynamic":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a multiple of 4 or 'dynamic', got {text!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' PyTorch checkpoints into Keras models",
        description="Reads the authors' generator (and discriminator) checkpoint without PyTorch, infers the "
        "architecture from it, and writes generator.keras, generator.weights.h5, discriminator.keras, "
        "discriminator.weights.h5 and conversion.json to the output directory.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="G.pth", help="generator checkpoint (.pth/.pt, or .npz with the same names)")
    parser.add_argument("--discriminator", metavar="D.pth", help="discriminator checkpoint (optional)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--export", type=_export_list, default=(), metavar="FORMATS", help="also export the generator: saved_model, tflite, or both (comma-separated)"
    )
    parser.add_argument(
        "--tflite-size", type=_tflite_size, default=256, metavar="N", help="fixed square input side of the TFLite model, or 'dynamic' (default 256)"
    )
    parser.add_argument(
        "--tflite-quantization", default="float32", metavar="TYPE", help="TFLite weights: float32 (default), float16 or int8 (dynamic range)"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from dmfn_tf.convert.converter import convert_checkpoint

    record = convert_checkpoint(
        args.checkpoint,
        args.discriminator,
        out_dir=args.out,
        export_formats=args.export,
        tflite_size=args.tflite_size,
        tflite_quantization=args.tflite_quantization,
    )
    generator = record["generator"]["config"]
    print(
        f"generator: nf {generator['nf']}, {generator['n_blocks']} {generator['block']} blocks, "
        f"{record['generator']['tensors']} tensors from {args.checkpoint}"
    )
    if "discriminator" in record:
        discriminator = record["discriminator"]["config"]
        print(
            f"discriminator: nf {discriminator['nf']}, image size {discriminator['image_size']}, "
            f"{record['discriminator']['tensors']} tensors from {args.discriminator}"
        )
    written = [name for part in ("generator", "discriminator") if part in record for name in record[part]["files"]]
    written += list(record["exports"].values())
    print(f"wrote {', '.join(written)} and conversion.json to {args.out}")
    return 0
