#!/usr/bin/python3
"""Golden fixtures for package fastrcnn, from torchvision 0.14 / PyTorch 1.13 (Debian's
python3-torch, python3-torchvision) and a numpy re-derivation of py-faster-rcnn's
lib/rpn/proposal_target_layer.py with faster-rcnn.pytorch's head loss.

Run from the repository root:  /usr/bin/python3 fastrcnn/testdata/gen_fastrcnn_fixtures.py
Writes fastrcnn/testdata/fastrcnn_golden.json; the Go tests read only the JSON (CI needs no Python).

Cases are small (<= 20 proposals per image) so that sampling never truncates: every foreground
and background candidate is kept, and the results do not depend on the random draw.
Coordinates are random floats, so IoUs have no ties.

Row order: torchvision keeps the sampled rows in proposal order (torch.where on the masks), as
the real code does here. py-faster-rcnn orders fg then bg, each in npr.choice's random order;
the re-derivation below keeps each part in proposal order instead (np.where's order, no choice
when nothing is dropped): the library's documented FgFirst rule. The numpy code runs in float64
(py-faster-rcnn's bbox_targets are float32) so that the fixtures hold to 1e-12.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

torch.set_default_dtype(torch.float64)

# The seed's _smooth_l1_loss, kept verbatim in one place: op/testdata/gen_fixtures.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "op", "testdata"))
from gen_fixtures import _smooth_l1_loss  # noqa: E402
# py-faster-rcnn's bbox_overlaps (+1 areas) and bbox_transform, in numpy, kept in one place:
# rpn/testdata/gen_rpn_fixtures.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rpn", "testdata"))
from gen_rpn_fixtures import bbox_overlaps, bbox_transform  # noqa: E402


def make_image(rng, num_gt, num_classes, num_props, size=200.0):
    """gt boxes with labels 1..K, and proposals: jittered copies of the gt (some foreground,
    some in the background band, some below it) and random boxes."""
    gts, labels = [], []
    for _ in range(num_gt):
        w, h = rng.uniform(30, 80), rng.uniform(30, 80)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        gts.append([x1, y1, x1 + w, y1 + h])
        labels.append(int(rng.integers(1, num_classes + 1)))
    props = []
    for k in range(num_props):
        if k % 3 != 2:
            g = gts[k % num_gt]
            w, h = g[2] - g[0], g[3] - g[1]
            s = rng.uniform(0.05, 0.6)
            dx, dy = rng.uniform(-s, s) * w, rng.uniform(-s, s) * h
            dw, dh = rng.uniform(-s, s) * w, rng.uniform(-s, s) * h
            props.append([g[0] + dx, g[1] + dy, g[2] + dx + dw, g[3] + dy + dh])
        else:
            w, h = rng.uniform(10, 60), rng.uniform(10, 60)
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            props.append([x1, y1, x1 + w, y1 + h])
    return np.array(props), np.array(gts), np.array(labels)


def loss_fields(images, num_classes, logits, deltas, cls, box):
    """the inputs, and the loss at random head outputs with its gradients (after backward)"""
    return {
        "num_classes": num_classes,
        "images": [{"proposals": p.tolist(), "boxes": g.tolist(), "labels": l.tolist()} for p, g, l in images],
        "logits": logits.detach().tolist(),
        "deltas": deltas.detach().tolist(),
        "loss_cls": cls.item(),
        "loss_box": box.item(),
        "grad_logits": logits.grad.tolist(),
        "grad_deltas": deltas.grad.tolist(),
    }


# ---- torchvision 0.14 ----------------------------------------------------------------------
def torchvision_case(rng, images, num_classes):
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.05, 0.5, 100)
    proposals = [torch.tensor(p) for p, _, _ in images]
    targets = [{"boxes": torch.tensor(g), "labels": torch.tensor(l, dtype=torch.int64)} for _, g, l in images]
    rois, matched, labels, reg = heads.select_training_samples(proposals, targets)
    for b, (p, g, _) in enumerate(images):
        n = len(p) + len(g)
        pos = int((labels[b] > 0).sum())
        assert pos <= 128 and len(labels[b]) - pos <= 512 - pos and len(labels[b]) <= n
    R = sum(len(l) for l in labels)
    logits = torch.tensor(rng.normal(0, 1.5, (R, num_classes + 1)), requires_grad=True)
    deltas = torch.tensor(rng.normal(0, 0.5, (R, 4 * (num_classes + 1))), requires_grad=True)
    cls, box = fastrcnn_loss(logits, deltas, labels, reg)
    total = cls + box
    total.backward()
    out_rois = []
    for b, r in enumerate(rois):
        for row in r.tolist():
            out_rois.append([float(b)] + row)
    return dict(loss_fields(images, num_classes, logits, deltas, cls, box), **{
        "rois": out_rois,
        "labels": torch.cat(labels).tolist(),
        "matched": torch.cat(matched).tolist(),
        "regression_targets": torch.cat(reg).tolist(),
    })


# ---- py-faster-rcnn proposal_target_layer.py, re-derived in numpy ----------------------------
MEANS = np.array([0.0, 0.0, 0.0, 0.0])
STDS = np.array([0.1, 0.1, 0.2, 0.2])


def proposal_target_layer(all_rois, gt_boxes, num_classes, batch_size=128, fg_fraction=0.25,
                          fg_thresh=0.5, bg_hi=0.5, bg_lo=0.1):
    """forward() for one image: all_rois (N, 5) with batch index 0, gt_boxes (G, 5) with label."""
    zeros = np.zeros((gt_boxes.shape[0], 1))
    all_rois = np.vstack((all_rois, np.hstack((zeros, gt_boxes[:, :-1]))))
    rois_per_image = batch_size
    fg_rois_per_image = np.round(fg_fraction * rois_per_image).astype(int)
    # _sample_rois
    overlaps = bbox_overlaps(all_rois[:, 1:5], gt_boxes[:, :4])
    gt_assignment = overlaps.argmax(axis=1)
    max_overlaps = overlaps.max(axis=1)
    labels = gt_boxes[gt_assignment, 4]
    fg_inds = np.where(max_overlaps >= fg_thresh)[0]
    fg_rois_per_this_image = min(fg_rois_per_image, fg_inds.size)
    assert fg_inds.size == fg_rois_per_this_image  # no truncation: no npr.choice
    bg_inds = np.where((max_overlaps < bg_hi) & (max_overlaps >= bg_lo))[0]
    bg_rois_per_this_image = min(rois_per_image - fg_rois_per_this_image, bg_inds.size)
    assert bg_inds.size == bg_rois_per_this_image
    keep_inds = np.append(fg_inds, bg_inds)
    labels = labels[keep_inds]
    labels[fg_rois_per_this_image:] = 0
    rois = all_rois[keep_inds]
    # _compute_targets (BBOX_NORMALIZE_TARGETS_PRECOMPUTED)
    targets = bbox_transform(rois[:, 1:5], gt_boxes[gt_assignment[keep_inds], :4])
    targets = (targets - MEANS) / STDS
    # _get_bbox_regression_labels
    bbox_targets = np.zeros((labels.size, 4 * num_classes))
    inside = np.zeros_like(bbox_targets)
    for ind in np.where(labels > 0)[0]:
        cls = int(labels[ind])
        bbox_targets[ind, 4 * cls:4 * cls + 4] = targets[ind]
        inside[ind, 4 * cls:4 * cls + 4] = (1.0, 1.0, 1.0, 1.0)
    outside = (inside > 0).astype(np.float64)
    return rois, labels, bbox_targets, inside, outside, keep_inds, max_overlaps[keep_inds]


def pyfrcnn_case(rng, images, num_classes, bg_lo):
    rois, labels, bt, iw, ow, src = [], [], [], [], [], []
    for b, (p, g, l) in enumerate(images):
        all_rois = np.hstack((np.zeros((len(p), 1)), p))
        gt = np.hstack((g, np.array(l, dtype=np.float64)[:, None]))
        r, lab, t, i, o, keep, _ = proposal_target_layer(all_rois, gt, num_classes + 1, bg_lo=bg_lo)
        r[:, 0] = b  # faster-rcnn.pytorch's batch index column
        rois.append(r)
        labels.append(lab)
        bt.append(t)
        iw.append(i)
        ow.append(o)
        src.append(keep)
    rois, labels, bt, iw, ow = (np.concatenate(x) for x in (rois, labels, bt, iw, ow))
    R = len(labels)
    logits = torch.tensor(rng.normal(0, 1.5, (R, num_classes + 1)), requires_grad=True)
    deltas = torch.tensor(rng.normal(0, 1.0, (R, 4 * (num_classes + 1))), requires_grad=True)
    # faster-rcnn.pytorch faster_rcnn.py: RCNN_loss_cls + RCNN_loss_bbox
    cls = F.cross_entropy(logits, torch.tensor(labels, dtype=torch.int64))
    box = _smooth_l1_loss(deltas, torch.tensor(bt), torch.tensor(iw), torch.tensor(ow), sigma=1.0, dim=[1])
    (cls + box).backward()
    return dict(loss_fields(images, num_classes, logits, deltas, cls, box), **{
        "bg_lo": bg_lo,
        "rois": rois.tolist(),
        "labels": labels.astype(int).tolist(),
        "source": np.concatenate(src).tolist(),
        "bbox_targets": bt.tolist(),
        "inside": iw.tolist(),
        "outside": ow.tolist(),
    })


def main():
    rng = np.random.default_rng(20261129)
    K = 3
    tv_images = [make_image(rng, 3, K, 14), make_image(rng, 2, K, 10), make_image(rng, 1, K, 6)]
    py_images = [make_image(rng, 3, K, 16), make_image(rng, 2, K, 12)]
    out = {
        "torchvision": torchvision_case(rng, tv_images, K),
        "pyfrcnn": pyfrcnn_case(rng, py_images, K, 0.1),
        "pyfrcnn_lo0": pyfrcnn_case(rng, py_images, K, 0.0),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastrcnn_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
    for name, c in out.items():
        lab = np.array(c["labels"])
        print(name, "rows", len(lab), "fg", int((lab > 0).sum()), "loss", c["loss_cls"], c["loss_box"])


if __name__ == "__main__":
    main()
