#!/usr/bin/python3
"""Golden fixtures for the multi-level (FPN) RPN objective, from torchvision 0.14's real
RegionProposalNetwork: AnchorGenerator with one size per level, assign_targets_to_anchors over
the levels' concatenated anchors (one Matcher), box_coder.encode, concat_box_prediction_layers
and compute_loss (both losses, gradients w.r.t. every level's objectness and deltas).

Run from the repository root:  /usr/bin/python3 rpn/testdata/gen_fpn_fixtures.py
Writes rpn/testdata/fpn_golden.json; the Go tests read only the JSON.

The scenes are small (<= 180 anchors per image) so that the sampler never triggers (at most 128
positives and 256 labelled anchors): every label is deterministic.
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_rpn_fixtures import flat, random_boxes  # noqa: E402


def fpn_case(name, rng, im_h, im_w, maps, sizes, ratios, n_gts):
    B = len(n_gts)
    A = len(ratios)
    gen = AnchorGenerator(sizes=tuple((s,) for s in sizes), aspect_ratios=tuple(tuple(ratios) for _ in sizes))
    rpn = RegionProposalNetwork(gen, RPNHead(1, A), 0.7, 0.3, 256, 0.5, dict(training=100, testing=100),
                                dict(training=100, testing=100), 0.7)
    images = ImageList(torch.zeros(B, 1, im_h, im_w), [(im_h, im_w)] * B)
    anchors = gen(images, [torch.zeros(B, 1, h, w) for h, w in maps])
    gts = [random_boxes(rng, n, im_h, im_w, 10, 40) if n else np.zeros((0, 4)) for n in n_gts]
    labels, matched = rpn.assign_targets_to_anchors(anchors, [{"boxes": torch.tensor(g)} for g in gts])
    for l in labels:
        assert (l == 1).sum() <= 128 and (l >= 0).sum() <= 256, "sampling would trigger"
    reg_targets = rpn.box_coder.encode(matched, anchors)
    objectness = [(torch.randn(B, A, h, w) * 2).requires_grad_(True) for h, w in maps]
    deltas = [(torch.randn(B, 4 * A, h, w) * 0.3).requires_grad_(True) for h, w in maps]
    box_cls, box_reg = concat_box_prediction_layers(objectness, deltas)
    # float64 labels so that the whole loss is float64 (as gen_rpn_fixtures.py)
    cls_loss, box_loss = rpn.compute_loss(box_cls, box_reg, [l.double() for l in labels], reg_targets)
    (cls_loss + box_loss).backward()
    return dict(
        name=name, im_h=im_h, im_w=im_w, maps=[list(m) for m in maps], strides=[[im_h // h, im_w // w] for h, w in maps],
        sizes=sizes, ratios=ratios, gt=[flat(g) for g in gts],
        anchors=flat(anchors[0]),  # concatenated: level by level, (y, x, a) within a level
        labels=[flat(l) for l in labels],
        # an image without gt encodes to -inf; only positives' targets are compared
        reg_targets=[flat(torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)) for t in reg_targets],
        objectness=[flat(o) for o in objectness], deltas=[flat(d) for d in deltas],
        cls_loss=float(cls_loss), box_loss=float(box_loss),
        dobjectness=[flat(o.grad) for o in objectness], ddeltas=[flat(d.grad) for d in deltas])


def main():
    rng = np.random.RandomState(20261129)
    torch.manual_seed(20261129)
    cases = [
        fpn_case("3 levels", rng, 64, 64, [(8, 8), (4, 4), (2, 2)], [16, 32, 64], [0.5, 2.0], [2, 3, 0]),
        fpn_case("2 levels", rng, 48, 64, [(6, 8), (3, 4)], [12, 40], [0.5, 1.0, 2.0], [1, 4]),
    ]
    # torchvision's strides where the image is not a multiple of the map (image // map per axis)
    uneven_gen = AnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    uneven_maps = [(13, 19), (7, 10)]
    uneven = uneven_gen(ImageList(torch.zeros(1, 1, 50, 90), [(50, 90)]), [torch.zeros(1, 1, h, w) for h, w in uneven_maps])
    uneven = dict(im_h=50, im_w=90, maps=[list(m) for m in uneven_maps], sizes=[32, 64], ratios=[0.5, 1.0, 2.0],
                  strides=[[50 // h, 90 // w] for h, w in uneven_maps], anchors=flat(uneven[0]))
    with open(os.path.join(HERE, "fpn_golden.json"), "w") as f:
        json.dump(dict(cases=cases, uneven=uneven), f, allow_nan=False)
    for c in cases:
        print(c["name"], "positives", [int(sum(v == 1 for v in l)) for l in c["labels"]],
              "labelled", [int(sum(v >= 0 for v in l)) for l in c["labels"]], c["cls_loss"], c["box_loss"])


if __name__ == "__main__":
    main()
