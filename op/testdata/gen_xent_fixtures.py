#!/usr/bin/python3
"""Golden fixtures for op.SoftmaxCrossEntropy from PyTorch's F.cross_entropy.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 op/testdata/gen_xent_fixtures.py
Writes op/testdata/xent_golden.json; the Go tests read only the JSON.

Each case: logits (N, K) and labels (N) (some rows carry the ignore index), a reduction, the loss,
its gradient with respect to the logits (upstream `upstream` for reduction "none", 1 otherwise),
and a Hessian-vector product: the gradient of <v, dL/dlogits> with respect to the logits
(torch.autograd.grad with create_graph=True), all in float64.
"""
import json
import math
import os

import torch
import torch.nn.functional as F


def case(name, n, k, reduction, ignore, ignored_rows, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=g)
    for r in ignored_rows:
        labels[r] = ignore
    upstream = torch.randn(n, generator=g, dtype=torch.float64)
    v = torch.randn(n, k, generator=g, dtype=torch.float64)
    loss = F.cross_entropy(logits, labels, ignore_index=ignore, reduction=reduction)
    out = (loss * upstream).sum() if reduction == "none" else loss
    (dlogits,) = torch.autograd.grad(out, logits, create_graph=True)
    (hvp,) = torch.autograd.grad((dlogits * v).sum(), logits)
    # non-finite numbers as the strings "NaN", "Inf", "-Inf" (JSON has no literal for them)
    f = lambda t: [x if math.isfinite(x) else ("NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf"))
                   for x in (float(y) for y in t.detach().reshape(-1).tolist())]
    return {
        "name": name, "n": n, "k": k, "reduction": reduction, "ignore": ignore,
        "logits": f(logits), "labels": [int(x) for x in labels.tolist()],
        "upstream": f(upstream) if reduction == "none" else [1.0],
        "v": f(v), "loss": f(loss.reshape(-1)), "dlogits": f(dlogits), "hvp": f(hvp),
    }


def main():
    cases = []
    seed = 100
    for reduction in ("mean", "sum", "none"):
        for (n, k, ignore, ignored, scale) in [
            (4, 2, -100, [], 1.0),           # the py-faster-rcnn 2-class case
            (7, 3, -100, [2, 5], 2.0),       # K = 3 (two classes and background), ignored rows
            (6, 5, -1, [0], 1.0),            # ignore index -1 (py-faster-rcnn's RPN labels)
            (5, 4, -100, [], 30.0),          # large logits: the max-shift matters
            (1, 1, -100, [], 1.0),           # one class: loss 0, gradient 0
        ]:
            seed += 1
            cases.append(case("%s/n%d_k%d_ign%d_%d_scale%g" % (reduction, n, k, ignore, len(ignored), scale),
                              n, k, reduction, ignore, ignored, scale, seed))
    # every row ignored: PyTorch's mean is NaN (0/0), its sum 0
    cases.append(case("mean/all_ignored", 3, 4, "mean", -100, [0, 1, 2], 1.0, 999))
    cases.append(case("sum/all_ignored", 3, 4, "sum", -100, [0, 1, 2], 1.0, 998))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xent_golden.json")
    with open(path, "w") as fh:
        json.dump({"generator": "op/testdata/gen_xent_fixtures.py", "torch_version": torch.__version__,
                   "cases": cases}, fh, indent=1, allow_nan=False)
    print("wrote", path, len(cases), "cases")


if __name__ == "__main__":
    main()
