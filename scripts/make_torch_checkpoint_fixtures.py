"""Writes the small `torch.save` files that `tests/torch_checkpoint_test.py` reads, and what PyTorch reads back.

Needs PyTorch, which the project itself does not: run it once, in any environment that has torch,
and commit the output. The tests then check `dmfn_tf.convert.torch_checkpoint` (which reads these
files without torch) against the arrays torch itself produced.

    python scripts/make_torch_checkpoint_fixtures.py tests/data

Writes:
    torch_views.pth           a state dict of every supported dtype and of strided, offset, shared,
                              expanded, 0-d and empty tensors (zip format, PyTorch >= 1.6)
    torch_views_legacy.pth    the same state dict in the pre-1.6 format
    torch_wrapped.pth         {"state_dict": <parameters of a small model>, "optimizer": <Adam's
                              state after one step>, "epoch": 3}, as a training script saves it
    torch_checkpoint_expected.npz   the tensors as torch reads them back: `<name>` for the views,
                              `wrapped/<name>` for the wrapped state dict; bfloat16 as float32
"""

import argparse
import collections
import pathlib

import numpy as np
import torch


def views_state_dict() -> collections.OrderedDict:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=generator)
    shared = torch.arange(20, dtype=torch.float32)
    state = collections.OrderedDict()
    state["float32"] = torch.randn(3, 4, generator=generator)
    state["float64"] = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    state["float16"] = torch.randn(2, 3, 2, generator=generator).half()
    state["bfloat16"] = torch.randn(7, generator=generator).bfloat16()
    state["int64"] = torch.arange(-3, 5, dtype=torch.int64).reshape(2, 4)
    state["int32"] = torch.arange(-4, 4, dtype=torch.int32)
    state["uint8"] = torch.arange(250, 256, dtype=torch.int32).to(torch.uint8)
    state["uint16"] = torch.tensor([0, 1, 40000, 65535], dtype=torch.int32).to(torch.uint16)
    state["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    state["transposed"] = base.t()
    state["column_slice"] = base[1:5, 2]
    state["strided_2d"] = base[::2, 1::2]
    state["conv_weight_permuted"] = torch.randn(4, 3, 3, 2, generator=generator).permute(3, 1, 2, 0)
    state["shared_head"] = shared[:8].view(2, 4)
    state["shared_tail"] = shared[12:].view(4, 2).t()
    state["expanded"] = torch.tensor([1.5, -2.0, 3.25]).view(3, 1).expand(3, 4)
    state["scalar"] = torch.tensor(7, dtype=torch.int64)
    state["empty"] = torch.zeros(0, 3)
    return state


def wrapped_checkpoint() -> tuple[dict, collections.OrderedDict]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.InstanceNorm2d(3), torch.nn.Conv2d(3, 1, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))
    model(torch.randn(1, 2, 5, 5)).mean().backward()
    optimizer.step()
    # keep_vars=True keeps the Parameter objects, which pickle through torch's parameter rebuild.
    state = model.state_dict(keep_vars=True)
    return {"state_dict": state, "optimizer": optimizer.state_dict(), "epoch": 3}, state


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.contiguous().numpy().copy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    out_dir = parser.parse_args().out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    views = views_state_dict()
    torch.save(views, out_dir / "torch_views.pth")
    torch.save(views, out_dir / "torch_views_legacy.pth", _use_new_zipfile_serialization=False)
    wrapped, wrapped_state = wrapped_checkpoint()
    torch.save(wrapped, out_dir / "torch_wrapped.pth")

    expected = {name: as_numpy(torch.load(out_dir / "torch_views.pth")[name]) for name in views}
    reloaded = torch.load(out_dir / "torch_wrapped.pth")["state_dict"]
    expected.update({f"wrapped/{name}": as_numpy(reloaded[name]) for name in wrapped_state})
    np.savez(out_dir / "torch_checkpoint_expected.npz", **expected)
    for path in sorted(out_dir.glob("torch_*")):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
