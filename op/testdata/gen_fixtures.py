#!/usr/bin/python3
"""Golden fixtures for package op, from PyTorch (Debian's python3-torch, 1.13).

Run from the repository root:  /usr/bin/python3 op/testdata/gen_fixtures.py
Writes op/testdata/smoothl1_golden.json. The Go tests read the JSON only; CI needs no Python.

Two families:
  * "seed": faster-rcnn.pytorch's _smooth_l1_loss, copied verbatim from the seed write-up
    (../shared/seed), with inside/outside weights, several sigmas and dims.
  * "functional": torch.nn.functional.smooth_l1_loss for reduction none/sum/mean and several betas.
Gradients with respect to pred and target come from autograd; for reduction "none" the upstream
gradient is a random tensor (stored as "upstream").
Residuals are kept at least 1e-3 away from the kink |x| = beta and from 0, where PyTorch 1.13's
beta = 0 gradient is wrong (pytorch/pytorch#96813).
"""
import json
import os

import torch
import torch.nn.functional as F

def _smooth_l1_loss(bbox_pred, bbox_targets, bbox_inside_weights, bbox_outside_weights, sigma=1.0, dim=[1]):
    # Verbatim from faster-rcnn.pytorch lib/model/utils/net_utils.py (the seed). The other scripts
    # (rpn/testdata/gen_rpn_fixtures.py, scripts/torch_compare.py) import it from here.
    sigma_2 = sigma ** 2
    box_diff = bbox_pred - bbox_targets
    in_box_diff = bbox_inside_weights * box_diff
    abs_in_box_diff = torch.abs(in_box_diff)
    smoothL1_sign = (abs_in_box_diff < 1. / sigma_2).detach().float()
    in_loss_box = torch.pow(in_box_diff, 2) * (sigma_2 / 2.) * smoothL1_sign \
                  + (abs_in_box_diff - (0.5 / sigma_2)) * (1. - smoothL1_sign)
    out_loss_box = bbox_outside_weights * in_loss_box
    loss_box = out_loss_box
    for i in sorted(dim, reverse=True):
        loss_box = loss_box.sum(i)
    loss_box = loss_box.mean()
    return loss_box


def away_from_kinks(shape, beta, gen, scale):
    """pred - target with every |residual| at least 1e-3 from 0 and from beta."""
    target = torch.randn(shape, generator=gen)
    diff = torch.randn(shape, generator=gen) * scale
    for _ in range(100):
        bad = (diff.abs() < 1e-3) | ((diff.abs() - beta).abs() < 1e-3)
        if not bad.any():
            break
        diff = torch.where(bad, torch.randn(shape, generator=gen) * scale, diff)
    return target + diff, target


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def main():
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(20261128)
    cases = []

    # Seed function: (B, 4A, H, W)-like shapes, weights as in Faster R-CNN
    # (inside 1 on foreground / 0 elsewhere; outside 1/N).
    seed_cases = [
        ("rpn_sigma3_dim1", (2, 8, 3, 4), 3.0, [1]),
        ("rpn_sigma3_dim123", (2, 8, 3, 4), 3.0, [1, 2, 3]),
        ("sigma1_dim1", (3, 4), 1.0, [1]),
        ("sigma0.5_dim0", (5, 4), 0.5, [0]),
        ("sigma2_dim12_rank3", (2, 3, 4), 2.0, [1, 2]),
        ("sigma3_dim2_rank4", (1, 4, 2, 5), 3.0, [2]),
    ]
    for name, shape, sigma, dims in seed_cases:
        beta = 1.0 / sigma ** 2
        # inside weight in {0, 0.5, 1} pushes some x into each branch; keep w_in*diff off the kink
        inside = torch.randint(0, 3, shape, generator=gen).double() / 2
        pred, target = away_from_kinks(shape, beta, gen, 0.6)
        for _ in range(100):
            x = (inside * (pred - target)).abs()
            bad = (inside > 0) & (((x - beta).abs() < 1e-3) | (x < 1e-3))
            if not bad.any():
                break
            pred = torch.where(bad, pred + 0.05, pred)
        outside = torch.rand(shape, generator=gen)
        pred.requires_grad_(True)
        target.requires_grad_(True)
        loss = _smooth_l1_loss(pred, target, inside, outside, sigma=sigma, dim=dims)
        loss.backward()
        cases.append({
            "family": "seed", "name": name, "shape": list(shape), "sigma": sigma, "dims": dims,
            "pred": flat(pred), "target": flat(target), "inside": flat(inside), "outside": flat(outside),
            "loss": [float(loss)], "dpred": flat(pred.grad), "dtarget": flat(target.grad),
        })

    for beta in [0.0, 1.0 / 9, 0.5, 1.0, 2.0]:
        for reduction in ["none", "sum", "mean"]:
            shape = (3, 5, 2)
            pred, target = away_from_kinks(shape, beta, gen, 1.2)
            pred.requires_grad_(True)
            target.requires_grad_(True)
            out = F.smooth_l1_loss(pred, target, reduction=reduction, beta=beta)
            upstream = torch.randn(shape, generator=gen) if reduction == "none" else torch.tensor(1.0)
            out.backward(upstream)
            cases.append({
                "family": "functional", "name": "beta%g_%s" % (beta, reduction), "shape": list(shape),
                "beta": beta, "reduction": reduction,
                "pred": flat(pred), "target": flat(target), "upstream": flat(upstream),
                "loss": flat(out), "dpred": flat(pred.grad), "dtarget": flat(target.grad),
            })

    out = {
        "generator": "op/testdata/gen_fixtures.py",
        "torch_version": torch.__version__,
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smoothl1_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %d cases to %s" % (len(cases), path))


if __name__ == "__main__":
    main()
