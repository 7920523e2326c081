"""Independent NumPy re-implementations of the building blocks, for tests.

Written from the equations in SPEC.md, without calling any dmfn_tf code.
"""

import numpy as np


def conv2d(x, kernel, bias=None, stride=1, dilation=1, pad=0):
    """NHWC convolution with symmetric zero padding; kernel (kh, kw, in, out)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, cout = kernel.shape
    n, h, w, _ = x.shape
    out_h = (h - dilation * (kh - 1) - 1) // stride + 1
    out_w = (w - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, out_h, out_w, cout), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dilation : i * dilation + stride * out_h : stride, j * dilation : j * dilation + stride * out_w : stride, :]
            out += patch @ kernel[i, j]
    if bias is not None:
        out += bias
    return out


def instance_norm(x, eps=1e-5):
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def relu(x):
    return np.maximum(x, 0)
