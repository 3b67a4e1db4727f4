#!/usr/bin/python3
"""Golden fixtures for rpn.Proposals, from torchvision 0.14's real RegionProposalNetwork
(concat_box_prediction_layers + BoxCoder.decode + filter_proposals, FPN with 3 levels and a
single level) and a numpy re-derivation of py-faster-rcnn's lib/rpn/proposal_layer.py (softmax,
bbox_transform_inv, clip_boxes, _filter_boxes, argsort, pre/post top-n, py_cpu_nms), per image.

Run from the repository root:  /usr/bin/python3 rpn/testdata/gen_proposal_fixtures.py
Writes rpn/testdata/proposals_golden.json; the Go tests read only the JSON.

Inputs are continuous random numbers, so no two scores tie where the references' order depends
on a sort (torchvision's topk and sort, numpy's argsort).
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_rpn_fixtures import bbox_transform_inv, flat, generate_anchors  # noqa: E402


def torchvision_case(name, gen, image_sizes, padded, feature_sizes, sizes, ratios, pre, post, nms, min_size, score_thresh, training, delta_scale):
    """One torchvision case: random head outputs per level, the real decode + filter_proposals."""
    B = len(image_sizes)
    anchor_gen = AnchorGenerator(sizes=tuple((s,) for s in sizes), aspect_ratios=tuple(tuple(ratios) for _ in sizes))
    A = len(ratios)
    rpn = RegionProposalNetwork(anchor_gen, RPNHead(1, A), 0.7, 0.3, 256, 0.5,
                                dict(training=pre, testing=pre), dict(training=post, testing=post), nms, score_thresh)
    rpn.min_size = min_size
    rpn.train(training)
    images = ImageList(torch.zeros(B, 1, padded[0], padded[1]), image_sizes)
    features = [torch.zeros(B, 1, h, w) for h, w in feature_sizes]
    anchors = anchor_gen(images, features)
    objectness = [torch.randn(B, A, h, w, generator=gen) * 2 for h, w in feature_sizes]
    deltas = [torch.randn(B, 4 * A, h, w, generator=gen) * delta_scale for h, w in feature_sizes]
    num_anchors_per_level = [o[0].numel() for o in objectness]
    obj, pred = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(pred.detach(), anchors).view(B, -1, 4)
    boxes, scores = rpn.filter_proposals(proposals, obj, images.image_sizes, num_anchors_per_level)
    strides = [[padded[0] // h, padded[1] // w] for h, w in feature_sizes]
    return dict(
        name=name, style="torchvision", training=training, image_sizes=[list(s) for s in image_sizes],
        feature_sizes=[list(s) for s in feature_sizes], strides=strides, sizes=sizes, ratios=ratios,
        pre_nms_top_n=pre, post_nms_top_n=post, nms_thresh=nms, min_size=min_size, score_thresh=score_thresh,
        anchors=flat(anchors[0]), objectness=[flat(o) for o in objectness], deltas=[flat(d) for d in deltas],
        boxes=[flat(b) for b in boxes], scores=[flat(s) for s in scores])


def py_cpu_nms(dets, thresh):
    """py-faster-rcnn lib/nms/py_cpu_nms.py."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]
    return keep


def clip_boxes(boxes, im_shape):
    boxes[:, 0::4] = np.maximum(np.minimum(boxes[:, 0::4], im_shape[1] - 1), 0)
    boxes[:, 1::4] = np.maximum(np.minimum(boxes[:, 1::4], im_shape[0] - 1), 0)
    boxes[:, 2::4] = np.maximum(np.minimum(boxes[:, 2::4], im_shape[1] - 1), 0)
    boxes[:, 3::4] = np.maximum(np.minimum(boxes[:, 3::4], im_shape[0] - 1), 0)
    return boxes


def filter_boxes(boxes, min_size):
    ws = boxes[:, 2] - boxes[:, 0] + 1
    hs = boxes[:, 3] - boxes[:, 1] + 1
    return np.where((ws >= min_size) & (hs >= min_size))[0]


def proposal_layer(scores_2a, deltas_4a, anchors_cell, stride, im_h, im_w, pre, post, nms, min_size):
    """lib/rpn/proposal_layer.py forward() for one image (im_scale 1); scores_2a is the raw
    (2A, H, W) classifier output, softmaxed over (bg, fg) as the rpn_cls_prob layer does."""
    A = anchors_cell.shape[0]
    _, H, W = scores_2a.shape
    bg, fg = scores_2a[:A], scores_2a[A:]
    m = np.maximum(bg, fg)  # Caffe's softmax: subtract the max, exp, normalise
    e_bg, e_fg = np.exp(bg - m), np.exp(fg - m)
    prob = (e_fg / (e_bg + e_fg))[np.newaxis]  # (1, A, H, W): bottom[0].data[:, A:, :, :]
    shift_x = np.arange(0, W) * stride
    shift_y = np.arange(0, H) * stride
    shift_x, shift_y = np.meshgrid(shift_x, shift_y)
    shifts = np.vstack((shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel())).transpose()
    K = shifts.shape[0]
    anchors = anchors_cell.reshape((1, A, 4)) + shifts.reshape((1, K, 4)).transpose((1, 0, 2))
    anchors = anchors.reshape((K * A, 4))
    bbox_deltas = deltas_4a[np.newaxis].transpose((0, 2, 3, 1)).reshape((-1, 4))
    scores = prob.transpose((0, 2, 3, 1)).reshape((-1, 1))
    proposals = bbox_transform_inv(anchors, bbox_deltas)
    proposals = clip_boxes(proposals, (im_h, im_w))
    keep = filter_boxes(proposals, min_size)
    proposals, scores = proposals[keep, :], scores[keep]
    order = scores.ravel().argsort()[::-1]
    if pre > 0:
        order = order[:pre]
    proposals, scores = proposals[order, :], scores[order]
    keep = py_cpu_nms(np.hstack((proposals, scores)), nms)
    if post > 0:
        keep = keep[:post]
    return proposals[keep, :], scores[keep].ravel()


def pyfrcnn_case(name, rng, image_sizes, H, W, stride, pre, post, nms, min_size, delta_scale):
    cell = generate_anchors(base_size=16, ratios=[0.5, 1, 2], scales=np.array([1, 2, 4], dtype=float))
    A = cell.shape[0]
    B = len(image_sizes)
    scores = rng.normal(0, 2, size=(B, 2 * A, H, W))
    deltas = rng.normal(0, delta_scale, size=(B, 4 * A, H, W))
    boxes, probs = [], []
    for b, (h, w) in enumerate(image_sizes):
        bx, pr = proposal_layer(scores[b], deltas[b], cell, stride, h, w, pre, post, nms, min_size)
        boxes.append(flat(bx))
        probs.append(flat(pr))
    return dict(name=name, style="py-faster-rcnn", image_sizes=[list(s) for s in image_sizes], feature_sizes=[[H, W]],
                strides=[[stride, stride]], base_size=16, ratios=[0.5, 1, 2], scales=[1, 2, 4],
                pre_nms_top_n=pre, post_nms_top_n=post, nms_thresh=nms, min_size=min_size,
                anchors=flat(cell), objectness=[flat(scores)], deltas=[flat(deltas)], boxes=boxes, scores=probs)


def main():
    gen = torch.Generator().manual_seed(20261129)
    rng = np.random.RandomState(20261129)
    cases = [
        torchvision_case("fpn3-train", gen, [(64, 96), (50, 90)], (64, 96), [(16, 24), (8, 12), (4, 6)],
                         [16, 32, 64], [0.5, 1.0, 2.0], 60, 80, 0.7, 1e-3, 0.0, True, 0.5),
        torchvision_case("fpn3-eval-thresh", gen, [(64, 96), (64, 70)], (64, 96), [(16, 24), (8, 12), (4, 6)],
                         [16, 32, 64], [0.5, 1.0, 2.0], 40, 50, 0.6, 4.0, 0.3, False, 0.8),
        torchvision_case("fpn2-clamp", gen, [(48, 64)], (48, 64), [(12, 16), (6, 8)],
                         [12, 40], [0.5, 1.0, 2.0], 1000, 1000, 0.7, 1e-3, 0.0, True, 3.0),
        torchvision_case("single-level", gen, [(64, 80), (60, 72)], (64, 80), [(8, 10)],
                         [24], [0.5, 1.0, 2.0], 100, 30, 0.7, 1e-3, 0.0, False, 0.5),
        pyfrcnn_case("pyfrcnn-train", rng, [(128, 160), (100, 150)], 8, 10, 16, 200, 50, 0.7, 16, 0.4),
        pyfrcnn_case("pyfrcnn-test-all", rng, [(128, 160)], 8, 10, 16, 0, 0, 0.5, 8, 0.8),
    ]
    out = os.path.join(HERE, "proposals_golden.json")
    with open(out, "w") as f:
        json.dump(dict(cases=cases), f, indent=None, allow_nan=False)
    for c in cases:
        print(c["name"], [len(b) // 4 for b in c["boxes"]])


if __name__ == "__main__":
    main()
