#!/usr/bin/python3
"""Times PyTorch/torchvision beside this project's Go benchmarks, on the same shapes.

Optional (needs Debian's python3-torch and python3-torchvision; CI does not run it):

    /usr/bin/python3 scripts/torch_compare.py            # runs the Go benchmarks too
    /usr/bin/python3 scripts/torch_compare.py --no-go    # PyTorch side only

Workloads (as the Go benchmarks):
  * Smooth L1, 16x36x64x64 float32 (batch 16, 9 anchors x 4 deltas, 64x64 map), sigma 3, forward +
    backward: the seed's _smooth_l1_loss (inside/outside weights, dim [1]) and the vectorised,
    unweighted F.smooth_l1_loss (beta 1/9, mean), with 1 and 2 threads.
    Go: BenchmarkSmoothL1_2_36M/float32/fwdbwd in package op, the user's default path
    (op.SmoothL1Loss(pred, target, in, out, 3, 1, 2, 3), G.Grad(loss, pred), a TapeMachine run and
    Reset), beside .../floor, the memory floor (one pass on GOMAXPROCS goroutines reading the four
    inputs once and writing one tensor).
  * RPN: 8 images of 1024x1024, 64x64 feature map, 9 anchors, 20 gt each: torchvision's
    assign_targets_to_anchors + box_coder.encode + compute_loss (sampler inside) forward +
    backward. Go: BenchmarkAssignAndLoss8x64x64Torchvision in package rpn (the default call,
    TargetNodes.Assign, then the loss) beside ...TorchvisionSet (AssignTargets + Set, the baseline).
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

# The seed's _smooth_l1_loss, kept verbatim in one place: op/testdata/gen_fixtures.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "op", "testdata"))
from gen_fixtures import _smooth_l1_loss  # noqa: E402



def timeit(fn, min_time=2.0):
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_time and n >= 5:
            return el / n


def smooth_l1_workloads(threads):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(7)
    shape = (16, 36, 64, 64)
    pred = (torch.randn(shape, generator=g) * 0.3).float().requires_grad_(True)
    target = (torch.randn(shape, generator=g) * 0.3).float()
    inside = (torch.randint(0, 8, shape, generator=g) == 0).float()
    outside = torch.full(shape, 1.0 / 256, dtype=torch.float32)

    def seed():
        pred.grad = None
        _smooth_l1_loss(pred, target, inside, outside, sigma=3.0, dim=[1]).backward()

    def functional():
        pred.grad = None
        F.smooth_l1_loss(pred, target, beta=1.0 / 9, reduction="mean").backward()

    return timeit(seed), timeit(functional)


def rpn_workload(threads, ngt=20):
    torch.set_num_threads(threads)
    rng = np.random.RandomState(31)
    B, H, W, A = 8, 64, 64, 9
    ag = AnchorGenerator(sizes=((128.0, 256.0, 512.0),), aspect_ratios=((0.5, 1.0, 2.0),))
    rpn = RegionProposalNetwork(ag, RPNHead(1, A), 0.7, 0.3, 256, 0.5, dict(training=2000, testing=1000),
                                dict(training=2000, testing=1000), 0.7)
    il = ImageList(torch.zeros(B, 3, 1024, 1024), [(1024, 1024)] * B)
    anchors = ag(il, [torch.zeros(B, 1, H, W)])
    targets = []
    for _ in range(B):
        boxes = []
        for _ in range(ngt):
            w, h = rng.uniform(30, 300, 2)
            x, y = rng.uniform(0, 1024 - w - 1), rng.uniform(0, 1024 - h - 1)
            boxes.append([round(x), round(y), round(x + w), round(y + h)])
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32)})
    obj = (torch.randn(B, A, H, W) * 0.5).requires_grad_(True)
    deltas = (torch.randn(B, 4 * A, H, W) * 0.5).requires_grad_(True)

    def step():
        obj.grad = None
        deltas.grad = None
        labels, matched = rpn.assign_targets_to_anchors(anchors, targets)
        reg_targets = rpn.box_coder.encode(matched, anchors)
        box_cls, box_reg = concat_box_prediction_layers([obj], [deltas])
        cls_loss, box_loss = rpn.compute_loss(box_cls, box_reg, labels, reg_targets)
        (cls_loss + box_loss).backward()

    return timeit(step)


def go_bench(pkg, pattern, benchtime="2s"):
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, pkg],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"^(Benchmark\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            res[m.group(1)] = float(m.group(3)) / 1e9
    return res


def interleaved_l1(rounds):
    """The op's headline comparison, side by side: each round times F.smooth_l1_loss on 2 threads,
    then the Go default path and the memory floor, so that the machine's load hits both alike.
    Returns per-round (torch, go, floor) seconds."""
    out = []
    for _ in range(rounds):
        torch.set_num_threads(2)
        g = torch.Generator().manual_seed(7)
        shape = (16, 36, 64, 64)
        pred = (torch.randn(shape, generator=g) * 0.3).float().requires_grad_(True)
        target = (torch.randn(shape, generator=g) * 0.3).float()

        def functional():
            pred.grad = None
            F.smooth_l1_loss(pred, target, beta=1.0 / 9, reduction="mean").backward()

        t = timeit(functional, 1.0)
        go = go_bench("./op", "SmoothL1_2_36M/float32/(fwdbwd|floor)$", "1s")
        out.append((t, go.get("BenchmarkSmoothL1_2_36M/float32/fwdbwd"), go.get("BenchmarkSmoothL1_2_36M/float32/floor")))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-go", action="store_true")
    ap.add_argument("--only", choices=["l1", "rpn"], help="one workload only")
    ap.add_argument("--gt", type=int, choices=[20, 500], default=20, help="gt boxes per image of the rpn workload")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the op's headline comparison")
    args = ap.parse_args()
    print("torch", torch.__version__)
    rows = []
    if args.only != "rpn":
        for threads in (1, 2):
            seed, func = smooth_l1_workloads(threads)
            rows.append(("torch seed _smooth_l1_loss fwd+bwd, %d thread(s)" % threads, seed))
            rows.append(("torch F.smooth_l1_loss fwd+bwd, %d thread(s)" % threads, func))
    if args.only != "l1":
        for threads in (1, 2):
            rows.append(("torchvision assign+encode+compute_loss fwd+bwd, %d gt, %d thread(s)" % (args.gt, threads), rpn_workload(threads, args.gt)))
    go = {}
    if not args.no_go:
        if args.only != "rpn":
            go.update(go_bench("./op", "SmoothL1_2_36M/float32/(fwdbwd|floor)$"))
        if args.only != "l1":
            go.update(go_bench("./rpn", "AssignAndLoss8x64x64Torchvision%s(Set)?$" % ("500GT" if args.gt == 500 else "")))
    go_l1 = go.get("BenchmarkSmoothL1_2_36M/float32/fwdbwd")
    go_floor = go.get("BenchmarkSmoothL1_2_36M/float32/floor")
    suffix = "500GT" if args.gt == 500 else ""
    go_rpn = go.get("BenchmarkAssignAndLoss8x64x64Torchvision" + suffix)
    go_rpn_set = go.get("BenchmarkAssignAndLoss8x64x64Torchvision%sSet" % suffix)
    print("%-66s %10s %10s" % ("workload", "ms", "x Go"))
    for name, sec in rows:
        ref = go_rpn if "torchvision" in name else go_l1
        ratio = "%.1fx" % (sec / ref) if ref else "-"
        print("%-66s %10.2f %10s" % (name, sec * 1e3, ratio))
    if go_l1:
        print("%-66s %10.2f" % ("Go op.SmoothL1Loss fwd+bwd, default path (TapeMachine, GOMAXPROCS=2)", go_l1 * 1e3))
    if go_floor:
        print("%-66s %10.2f %9.2fx" % ("Go memory floor (read 4 inputs once, write 1; x = default / floor)", go_floor * 1e3, go_l1 / go_floor if go_l1 else 0))
    if args.only != "rpn" and not args.no_go and args.rounds > 0:
        print("\ninterleaved rounds: F.smooth_l1_loss (2 threads) | Go default path | memory floor, ms; Go / torch; Go / floor")
        res = interleaved_l1(args.rounds)
        for t, go, fl in res:
            print("  %8.2f | %8.2f | %8.2f   %.2fx   %.2fx" % (t * 1e3, go * 1e3, fl * 1e3, go / t, go / fl))
        ratios = sorted(go / t for t, go, _ in res)
        print("  median Go / torch: %.2fx" % ratios[len(ratios) // 2])
    if go_rpn:
        print("%-66s %10.2f" % ("Go rpn TargetNodes.Assign + rpn.Loss fwd+bwd (torchvision config)", go_rpn * 1e3))
    if go_rpn_set:
        print("%-66s %10.2f" % ("Go baseline: rpn.AssignTargets + TargetNodes.Set + rpn.Loss", go_rpn_set * 1e3))
        for name, sec in rows:
            if "torchvision" in name:
                print("  %-64s %9.1fx" % (name + " / baseline", sec / go_rpn_set))

if __name__ == "__main__":
    main()
