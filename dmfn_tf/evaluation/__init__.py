"""Evaluation of inpainting models on the paper's protocol (docs/design.md §7): `protocol.evaluate` (the one
front door, used by `dmfn evaluate` and `dmfn demo`), LPIPS, PSNR/SSIM/L1, classic baselines, and
the report files.

`paper` (the paper's figures) and `baselines` need no TensorFlow; the rest goes through the
inpainting contract (`dmfn_tf.inpainting`) and imports it.
"""
