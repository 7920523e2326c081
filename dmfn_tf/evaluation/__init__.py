"""Evaluation of inpainting models: LPIPS, PSNR, SSIM and L1 on the paper's protocol (SPEC §7),
classic baselines, and the report written by `dmfn evaluate`.

TensorFlow is imported only by `lpips` and `report` (through Keras), so the metrics and baselines
stay usable without it.
"""
