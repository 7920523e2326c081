"""Evaluation of inpainting models on the paper's protocol (docs/design.md §7): `protocol.evaluate` (the one
front door, used by `dmfn evaluate`, `dmfn demo` and the validation), LPIPS, PSNR/SSIM/L1, classic
baselines (PatchMatch among them), the report files, paired bootstrap comparisons (`statistics`) and
the training campaign's four validation protocols (`validation`).

`paper` (the paper's figures), `baselines` and `statistics` need no TensorFlow; the rest goes through the
inpainting contract (`dmfn_tf.inpaint.contract`) and imports it.
"""
