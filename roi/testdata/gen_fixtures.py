#!/usr/bin/python3
"""Golden fixtures for package roi, from torchvision 0.14's C++ CPU kernels.

Run from the repository root:  /usr/bin/python3 roi/testdata/gen_fixtures.py
Writes roi/testdata/roi_golden.json. The Go tests read the JSON only; CI needs no Python.

Inputs ("inputs"): features (N, C, H, W) drawn from a normal distribution (continuous values, so
roi_pool's bins have no ties) and rois (K, 5) in image coordinates for spatial scales 1/16 and
0.5: ordinary rois, rois partly and wholly outside the map, rois touching the borders, zero-size
and negative-size (x2 < x1) rois, sub-pixel rois and one covering everything. A roi whose
adaptive grid is negative on one axis only (aligned, size <= -output size on that axis) makes
torchvision 0.14 fail ("cannot create std::vector larger than max_size()"), so the negative-size
rois here are negative on both axes, or by less than a bin on one.
Cases ("cases"): torchvision.ops.roi_align for aligned True/False x sampling ratio -1/2 x the two
scales x output 7x7 and 2x3, and torchvision.ops.roi_pool for the two scales x the two output
sizes, in float64; a few in float32. Gradients with respect to the features come from autograd
with a random upstream gradient (stored), out.backward(upstream).
"""
import json
import os

import torch
import torchvision
from torchvision.ops import roi_align, roi_pool


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_rois(gen, scale, height, width):
    """Rois in image coordinates for a (height, width) map at the given scale."""
    H, W = height / scale, width / scale  # the image size
    rois = []
    for b in range(2):  # ordinary rois, random corners inside the image
        for _ in range(3):
            x1, x2 = sorted((torch.rand(2, generator=gen) * W).tolist())
            y1, y2 = sorted((torch.rand(2, generator=gen) * H).tolist())
            rois.append([b, x1, y1, x2, y2])
    u = lambda: float(torch.rand(1, generator=gen))  # noqa: E731
    rois += [
        [0, -0.3 * W, -0.2 * H, 0.4 * W, 0.5 * H],           # partly outside, top left
        [1, 0.6 * W, 0.7 * H, 1.3 * W, 1.2 * H],             # partly outside, bottom right
        [0, 1.2 * W, 0.1 * H, 1.5 * W, 0.6 * H],             # wholly outside, right
        [1, 0.0, 0.0, W, H],                                 # the whole image, touching borders
        [0, 0.3 * W, 0.3 * H, 0.3 * W, 0.3 * H],             # zero size
        [1, 0.5 * W, 0.2 * H, 0.5 * W - 0.5 * u() / scale, 0.6 * H],  # slightly negative width
        [0, 0.7 * W, 0.8 * H, 0.2 * W, 0.1 * H + u()],       # negative width and height
        [1, 0.4 * W, 0.4 * H, 0.4 * W + 0.3 / scale, 0.4 * H + 0.2 / scale],  # sub-pixel
        [0, -1.5 * W, -1.5 * H, 2.5 * W, 2.5 * H],           # covering everything and more
        [1, (width - 0.7) / scale, (height - 0.6) / scale, (width + 0.9) / scale, (height + 0.4) / scale],  # last pixel
    ]
    return torch.tensor(rois, dtype=torch.float64)


def main():
    gen = torch.Generator().manual_seed(20261129)
    inputs = {}
    for scale_name, scale, (h, w) in (("s16", 1 / 16, (9, 11)), ("s2", 0.5, (8, 10))):
        feats = torch.randn(2, 2, h, w, generator=gen, dtype=torch.float64)
        rois = make_rois(gen, scale, h, w)
        inputs[scale_name] = {"scale": scale, "features_shape": list(feats.shape), "features": flat(feats),
                              "rois_shape": list(rois.shape), "rois": flat(rois)}

    cases = []

    def run(op, name, inp, out_size, dtype, **kw):
        feats = torch.tensor(inp["features"], dtype=dtype).reshape(inp["features_shape"]).requires_grad_()
        rois = torch.tensor(inp["rois"], dtype=dtype).reshape(inp["rois_shape"])
        if op == "align":
            out = roi_align(feats, rois, out_size, spatial_scale=inp["scale"], **kw)
        else:
            out = roi_pool(feats, rois, out_size, spatial_scale=inp["scale"])
        up = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype)
        out.backward(up)
        case = {"op": op, "name": name, "input": name.split("/")[0], "dtype": str(dtype).replace("torch.", ""),
                "output_size": list(out_size), "upstream": flat(up), "output": flat(out), "grad": flat(feats.grad)}
        case.update({k: v for k, v in kw.items()})
        cases.append(case)

    for inp_name in ("s16", "s2"):
        inp = inputs[inp_name]
        for out_size in ((7, 7), (2, 3)):
            for aligned in (False, True):
                for ratio in (-1, 2):
                    name = f"{inp_name}/align/{out_size[0]}x{out_size[1]}/aligned={aligned}/ratio={ratio}"
                    run("align", name, inp, out_size, torch.float64, sampling_ratio=ratio, aligned=aligned)
            run("pool", f"{inp_name}/pool/{out_size[0]}x{out_size[1]}", inp, out_size, torch.float64)
    # float32: the benchmark's configuration and roi_pool
    run("align", "s16/align/7x7/aligned=True/ratio=2/float32", inputs["s16"], (7, 7), torch.float32,
        sampling_ratio=2, aligned=True)
    run("align", "s2/align/2x3/aligned=False/ratio=-1/float32", inputs["s2"], (2, 3), torch.float32,
        sampling_ratio=-1, aligned=False)
    run("pool", "s16/pool/7x7/float32", inputs["s16"], (7, 7), torch.float32)

    out = {"generator": "roi/testdata/gen_fixtures.py", "torch_version": torch.__version__,
           "torchvision_version": torchvision.__version__, "inputs": inputs, "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roi_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
