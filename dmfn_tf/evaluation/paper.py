"""The paper's published figures, which reports can show beside a model's (no TensorFlow needed)."""

# The paper's Table 1, DMFN row: (dataset name, test images, LPIPS, PSNR, SSIM).
PAPER_DMFN_RESULTS = {
    "paris_streetview": ("Paris StreetView", 100, 0.1018, 25.00, 0.8563),
    "places2": ("Places2", 100, 0.1361, 21.53, 0.8079),
    "celeba_hq": ("CelebA-HQ", 2000, 0.0460, 26.50, 0.8932),
    "ffhq": ("FFHQ", 10000, 0.0457, 26.49, 0.8985),
}
