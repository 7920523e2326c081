"""`dmfn convert --checkpoint G.pth [--discriminator D.pth] --out DIR`.

Converts the authors' PyTorch checkpoints (or `.npz` archives with the same tensor names) into
Keras files; see `dmfn_tf.convert.converter.convert_checkpoint`. Serving formats are written by
the one export front door, `dmfn export --model DIR` (the output holds `generator.keras`).
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' PyTorch checkpoints into Keras models",
        description="Reads the authors' generator (and discriminator) checkpoint without PyTorch, infers the "
        "architecture from it, and writes generator.keras, generator.weights.h5, discriminator.keras, "
        "discriminator.weights.h5 and conversion.json to the output directory. Export the result for "
        "serving with `dmfn export --model DIR`.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="G.pth", help="generator checkpoint (.pth/.pt, or .npz with the same names)")
    parser.add_argument("--discriminator", metavar="D.pth", help="discriminator checkpoint (optional)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dmfn_tf.convert.converter import convert_checkpoint

    record = convert_checkpoint(args.checkpoint, args.discriminator, out_dir=args.out)
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
    print(f"wrote {', '.join(written)} and conversion.json to {args.out}")
    print(f"export it for serving with: dmfn export --model {args.out} --format saved_model|tflite|keras")
    return 0
