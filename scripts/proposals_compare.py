#!/usr/bin/python3
"""Times torchvision 0.14's RPN proposal step and NMS beside this project's Go benchmarks, in one
run, on the same workloads, and prints the ratios.

    /usr/bin/python3 scripts/proposals_compare.py     # needs Debian's python3-torch/-torchvision

Workloads (as rpn.BenchmarkProposalsFPN8x800x1216 and box.BenchmarkNMS12000):
  * proposals: 8 images of 800x1216, torchvision's FPN RPN (sizes 32-512 on 5 levels, ratios
    0.5/1/2, 242,991 anchors per image), random float32 logits N(0, 1) and deltas N(0, s^2)
    (--delta-scale s, default 1); anchors +
    concat_box_prediction_layers + box_coder.decode + filter_proposals, pre/post top-n 2000
    (train) and 1000 (eval), 2 threads. Go: rpn.Proposals with TorchvisionProposals(train) (the
    anchors built once; the "with-anchors" variant rebuilds them each call).
  * NMS: 12,000 random boxes, sides 16-316 in 1000x1000, IoU 0.7, torchvision.ops.nms (C++).
    Go: box.NMS.
"""
import argparse
import os
import re
import subprocess
import sys

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import nms

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_compare import timeit  # noqa: E402  (one timing loop for both scripts)


def proposals_workload(train, delta_scale):
    g = torch.Generator().manual_seed(33)
    B, maps = 8, [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    gen = AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    n = 2000 if train else 1000
    rpn = RegionProposalNetwork(gen, RPNHead(1, 3), 0.7, 0.3, 256, 0.5, dict(training=n, testing=n), dict(training=n, testing=n), 0.7)
    rpn.train(train)
    images = ImageList(torch.zeros(B, 1, 800, 1216), [(800, 1216)] * B)
    features = [torch.zeros(B, 1, h, w) for h, w in maps]
    objectness = [torch.randn(B, 3, h, w, generator=g) for h, w in maps]
    deltas = [torch.randn(B, 12, h, w, generator=g) * delta_scale for h, w in maps]
    per_level = [o[0].numel() for o in objectness]

    def run():
        with torch.no_grad():
            anchors = gen(images, features)
            obj, pred = concat_box_prediction_layers(objectness, deltas)
            props = rpn.box_coder.decode(pred, anchors).view(B, -1, 4)
            rpn.filter_proposals(props, obj, images.image_sizes, per_level)
    return run


def nms_workload():
    g = torch.Generator().manual_seed(3)
    n = 12000
    w, h = 16 + torch.rand(n, generator=g, dtype=torch.float64) * 300, 16 + torch.rand(n, generator=g, dtype=torch.float64) * 300
    x, y = torch.rand(n, generator=g, dtype=torch.float64) * (1000 - w), torch.rand(n, generator=g, dtype=torch.float64) * (1000 - h)
    boxes = torch.stack([x, y, x + w, y + h], 1)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    return lambda: nms(boxes, scores, 0.7)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--delta-scale", type=float, default=1.0, help="deltas N(0, s^2) (Go: RPN_BENCH_DELTA_SCALE)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torchvision_ms = {
        "train": timeit(proposals_workload(True, args.delta_scale), 3.0) * 1e3,
        "eval": timeit(proposals_workload(False, args.delta_scale), 3.0) * 1e3,
        "nms": timeit(nms_workload(), 3.0) * 1e3,
    }
    for k, v in torchvision_ms.items():
        print(f"torchvision {k}: {v:.1f} ms")
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", "ProposalsFPN8x800x1216|NMS12000", "-benchtime", "3s",
                          "./rpn", "./box"], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, RPN_BENCH_DELTA_SCALE=str(args.delta_scale))).stdout
    go_ms = {}
    for line in out.splitlines():
        m = re.match(r"Benchmark(\S+)-\d+\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            go_ms[m.group(1)] = float(m.group(2)) / 1e6
            print(f"go {m.group(1)}: {go_ms[m.group(1)]:.1f} ms")
    for k, name in [("train", "ProposalsFPN8x800x1216/train"), ("eval", "ProposalsFPN8x800x1216/eval"), ("nms", "NMS12000/windowed")]:
        print(f"ratio {k}: torchvision / go = {torchvision_ms[k] / go_ms[name]:.2f}x")


if __name__ == "__main__":
    main()
