#!/usr/bin/python3
"""Golden fixtures for package rpn, from torchvision 0.14 / PyTorch 1.13 (Debian's python3-torch,
python3-torchvision) and a numpy re-derivation of py-faster-rcnn's anchor_target_layer.

Run from the repository root:  /usr/bin/python3 rpn/testdata/gen_rpn_fixtures.py
Writes rpn/testdata/rpn_golden.json; the Go tests read only the JSON (CI needs no Python).

Cases are small (4x5 feature maps, <= 120 anchors per image) so that sampling never triggers:
every positive and negative is kept and the results are deterministic.

py-faster-rcnn policy reproduced here (rpn-reference.md): a gt whose best IoU is 0 has no
"best anchors" (py-faster-rcnn would make every zero-overlap anchor positive,
rbgirshick/py-faster-rcnn#940); each image is normalised by its own N_v (not the last image's,
jwyang/faster-rcnn.pytorch#256).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import box_iou, nms

torch.set_default_dtype(torch.float64)

# The seed's _smooth_l1_loss, kept verbatim in one place: op/testdata/gen_fixtures.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "op", "testdata"))
from gen_fixtures import _smooth_l1_loss  # noqa: E402


# ---- py-faster-rcnn generate_anchors.py, verbatim logic -------------------------------------
def _whctrs(anchor):
    w = anchor[2] - anchor[0] + 1
    h = anchor[3] - anchor[1] + 1
    x_ctr = anchor[0] + 0.5 * (w - 1)
    y_ctr = anchor[1] + 0.5 * (h - 1)
    return w, h, x_ctr, y_ctr


def _mkanchors(ws, hs, x_ctr, y_ctr):
    ws = ws[:, np.newaxis]
    hs = hs[:, np.newaxis]
    return np.hstack((x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1), x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)))


def _ratio_enum(anchor, ratios):
    w, h, x_ctr, y_ctr = _whctrs(anchor)
    size = w * h
    size_ratios = size / ratios
    ws = np.round(np.sqrt(size_ratios))
    hs = np.round(ws * ratios)
    return _mkanchors(ws, hs, x_ctr, y_ctr)


def _scale_enum(anchor, scales):
    w, h, x_ctr, y_ctr = _whctrs(anchor)
    ws = w * scales
    hs = h * scales
    return _mkanchors(ws, hs, x_ctr, y_ctr)


def generate_anchors(base_size=16, ratios=[0.5, 1, 2], scales=2 ** np.arange(3, 6)):
    base_anchor = np.array([1, 1, base_size, base_size]) - 1
    ratio_anchors = _ratio_enum(base_anchor, np.array(ratios, dtype=float))
    return np.vstack([_scale_enum(ratio_anchors[i, :], np.array(scales, dtype=float)) for i in range(ratio_anchors.shape[0])])


# ---- py-faster-rcnn bbox_transform / bbox_overlaps ------------------------------------------
def bbox_transform(ex_rois, gt_rois):
    ex_widths = ex_rois[:, 2] - ex_rois[:, 0] + 1.0
    ex_heights = ex_rois[:, 3] - ex_rois[:, 1] + 1.0
    ex_ctr_x = ex_rois[:, 0] + 0.5 * ex_widths
    ex_ctr_y = ex_rois[:, 1] + 0.5 * ex_heights
    gt_widths = gt_rois[:, 2] - gt_rois[:, 0] + 1.0
    gt_heights = gt_rois[:, 3] - gt_rois[:, 1] + 1.0
    gt_ctr_x = gt_rois[:, 0] + 0.5 * gt_widths
    gt_ctr_y = gt_rois[:, 1] + 0.5 * gt_heights
    return np.vstack(((gt_ctr_x - ex_ctr_x) / ex_widths, (gt_ctr_y - ex_ctr_y) / ex_heights,
                      np.log(gt_widths / ex_widths), np.log(gt_heights / ex_heights))).transpose()


def bbox_transform_inv(boxes, deltas):
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    pred_ctr_x = deltas[:, 0] * widths + ctr_x
    pred_ctr_y = deltas[:, 1] * heights + ctr_y
    pred_w = np.exp(deltas[:, 2]) * widths
    pred_h = np.exp(deltas[:, 3]) * heights
    return np.vstack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h, pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h)).transpose()


def bbox_overlaps(boxes, query_boxes):
    # utils/bbox.pyx, in numpy
    N, K = boxes.shape[0], query_boxes.shape[0]
    overlaps = np.zeros((N, K))
    for k in range(K):
        box_area = (query_boxes[k, 2] - query_boxes[k, 0] + 1) * (query_boxes[k, 3] - query_boxes[k, 1] + 1)
        for n in range(N):
            iw = min(boxes[n, 2], query_boxes[k, 2]) - max(boxes[n, 0], query_boxes[k, 0]) + 1
            if iw > 0:
                ih = min(boxes[n, 3], query_boxes[k, 3]) - max(boxes[n, 1], query_boxes[k, 1]) + 1
                if ih > 0:
                    ua = float((boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1) + box_area - iw * ih)
                    overlaps[n, k] = iw * ih / ua
    return overlaps


def anchor_target_layer(all_anchors, gt_boxes, im_h, im_w, H, W, A):
    """py-faster-rcnn rpn/anchor_target_layer.py forward(), for one image, without sampling
    (the cases are small enough that it never triggers), with the zero-IoU-gt policy."""
    total = all_anchors.shape[0]
    inds_inside = np.where((all_anchors[:, 0] >= 0) & (all_anchors[:, 1] >= 0) &
                           (all_anchors[:, 2] < im_w) & (all_anchors[:, 3] < im_h))[0]
    anchors = all_anchors[inds_inside, :]
    labels = np.empty((len(inds_inside),)); labels.fill(-1)
    bbox_targets = np.zeros((len(inds_inside), 4))
    if len(gt_boxes) == 0:
        labels.fill(0)
    else:
        overlaps = bbox_overlaps(anchors, gt_boxes)
        argmax_overlaps = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(len(inds_inside)), argmax_overlaps]
        gt_argmax_overlaps = overlaps.argmax(axis=0)
        gt_max_overlaps = overlaps[gt_argmax_overlaps, np.arange(overlaps.shape[1])]
        valid = gt_max_overlaps > 0  # policy: skip gts that overlap nothing
        gt_argmax_overlaps = np.where((overlaps == gt_max_overlaps) & valid[np.newaxis, :])[0]
        labels[max_overlaps < 0.3] = 0
        labels[gt_argmax_overlaps] = 1
        labels[max_overlaps >= 0.7] = 1
        bbox_targets = bbox_transform(anchors, gt_boxes[argmax_overlaps, :])
    assert (labels == 1).sum() <= 128 and (labels >= 0).sum() <= 256, "sampling would trigger"
    inside_w = np.zeros((len(inds_inside), 4)); inside_w[labels == 1, :] = 1
    nv = np.sum(labels >= 0)
    outside_w = np.zeros((len(inds_inside), 4))
    if nv > 0:
        outside_w[labels == 1, :] = 1.0 / nv
        outside_w[labels == 0, :] = 1.0 / nv

    def unmap(data, fill):
        ret = np.empty((total,) + data.shape[1:]); ret.fill(fill); ret[inds_inside] = data
        return ret
    labels = unmap(labels, -1).reshape((1, H, W, A)).transpose(0, 3, 1, 2)
    bbox_targets = unmap(bbox_targets, 0).reshape((1, H, W, A * 4)).transpose(0, 3, 1, 2)
    inside_w = unmap(inside_w, 0).reshape((1, H, W, A * 4)).transpose(0, 3, 1, 2)
    outside_w = unmap(outside_w, 0).reshape((1, H, W, A * 4)).transpose(0, 3, 1, 2)
    return labels[0], bbox_targets[0], inside_w[0], outside_w[0], int(nv)


def flat(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().numpy()
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


def random_boxes(rng, n, im_h, im_w, lo, hi):
    out = []
    for _ in range(n):
        w, h = rng.uniform(lo, hi), rng.uniform(lo, hi)
        x1, y1 = rng.uniform(0, im_w - w - 1), rng.uniform(0, im_h - h - 1)
        out.append([round(x1), round(y1), round(x1 + w), round(y1 + h)])
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def main():
    rng = np.random.RandomState(20261128)
    torch.manual_seed(20261128)
    out = {"generator": "rpn/testdata/gen_rpn_fixtures.py", "torch_version": torch.__version__}

    out["generate_anchors_default"] = flat(generate_anchors())
    out["generate_anchors_small"] = {"base": 16, "ratios": [0.5, 1, 2], "scales": [1, 2, 3],
                                     "anchors": flat(generate_anchors(16, [0.5, 1, 2], [1, 2, 3]))}

    # torchvision cell and grid anchors
    sizes, ratios = (24.0, 48.0), (0.5, 1.0, 2.0)
    ag = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
    H, W, stride = 4, 5, 16
    im_h, im_w = 64, 80
    feat = torch.zeros(1, 1, H, W)
    il = ImageList(torch.zeros(1, 3, im_h, im_w), [(im_h, im_w)])
    grid = ag(il, [feat])[0]
    out["torchvision_anchors"] = {"sizes": list(sizes), "ratios": list(ratios), "H": H, "W": W, "stride": stride,
                                  "cell": flat(ag.cell_anchors[0]), "grid": flat(grid)}

    # box coding
    anchors = np.array([[-84, -40, 99, 55], [0, 0, 15, 15], [10.5, 3, 40, 70]], dtype=np.float64)
    gts = np.array([[10, 20, 110, 80], [2, 3, 20, 12], [0, 0, 50, 50]], dtype=np.float64)
    deltas = rng.randn(3, 4) * 0.5
    coder = det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    coder_w = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    big = deltas.copy(); big[:, 2:] = 6.0  # beyond the clamp ln(1000/16) = 4.135
    out["coding"] = {
        "anchors": flat(anchors), "gts": flat(gts), "deltas": flat(deltas), "big_deltas": flat(big),
        "pyfrcnn_encode": flat(bbox_transform(anchors, gts)),
        "pyfrcnn_decode": flat(bbox_transform_inv(anchors, deltas)),
        "tv_encode": flat(coder.encode_single(torch.tensor(gts), torch.tensor(anchors))),
        "tv_encode_w": flat(coder_w.encode_single(torch.tensor(gts), torch.tensor(anchors))),
        "tv_decode": flat(coder.decode_single(torch.tensor(deltas), torch.tensor(anchors))),
        "tv_decode_w": flat(coder_w.decode_single(torch.tensor(deltas), torch.tensor(anchors))),
        "tv_decode_clamped": flat(coder.decode_single(torch.tensor(big), torch.tensor(anchors))),
    }

    # IoU and NMS
    a = random_boxes(rng, 7, 100, 100, 5, 60)
    b = random_boxes(rng, 5, 100, 100, 5, 60)
    nb = random_boxes(rng, 30, 100, 100, 10, 40)
    ns = rng.rand(30)
    out["iou"] = {"a": flat(a), "b": flat(b), "tv": flat(box_iou(torch.tensor(a), torch.tensor(b))),
                  "pyfrcnn": flat(bbox_overlaps(a, b))}
    out["nms"] = {"boxes": flat(nb), "scores": flat(ns), "thresh": 0.5,
                  "keep": [int(i) for i in nms(torch.tensor(nb), torch.tensor(ns), 0.5)]}

    # ---- RPN objective, torchvision: 3 images (1 gt, 3 gts, none) ------------------------
    images = [random_boxes(rng, 1, im_h, im_w, 16, 40), random_boxes(rng, 3, im_h, im_w, 12, 48), np.zeros((0, 4))]
    A = len(sizes) * len(ratios)
    B = len(images)
    rpn = RegionProposalNetwork(ag, RPNHead(1, A), 0.7, 0.3, 256, 0.5, dict(training=100, testing=100),
                                dict(training=100, testing=100), 0.7)
    anchors_list = [grid.clone() for _ in range(B)]
    targets = [{"boxes": torch.tensor(g)} for g in images]
    labels, matched = rpn.assign_targets_to_anchors(anchors_list, targets)
    reg_targets = rpn.box_coder.encode(matched, anchors_list)
    for l in labels:
        assert (l == 1).sum() <= 128 and (l >= 0).sum() <= 256, "sampling would trigger"
    obj = (torch.randn(B, A, H, W) * 2).requires_grad_(True)
    dl = (torch.randn(B, 4 * A, H, W) * 0.3).requires_grad_(True)
    box_cls, box_reg = concat_box_prediction_layers([obj], [dl])
    # torchvision makes float32 labels; in float64 so that the whole loss is float64 (with float32
    # labels binary_cross_entropy_with_logits rounds the result to float32)
    cls_loss, box_loss = rpn.compute_loss(box_cls, box_reg, [l.double() for l in labels], reg_targets)
    (cls_loss + box_loss).backward()
    out["torchvision_rpn"] = {
        "im_h": im_h, "im_w": im_w, "H": H, "W": W, "A": A, "stride": stride,
        "gt": [flat(g) for g in images],
        "labels": [flat(l) for l in labels],  # per anchor n = (y*W + x)*A + a
        # an image without gt encodes torchvision's zero "matched boxes" to -inf; JSON has no
        # infinities and only positives' targets are compared, so non-finite values become 0
        "reg_targets": [flat(torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)) for t in reg_targets],
        "objectness": flat(obj), "deltas": flat(dl),  # (B, A, H, W) and (B, 4A, H, W)
        "cls_loss": float(cls_loss), "box_loss": float(box_loss),
        "dobjectness": flat(obj.grad), "ddeltas": flat(dl.grad),
    }

    # ---- RPN objective, py-faster-rcnn: softmax2, sigma 3, per-image normalisation -------
    cell = generate_anchors(16, [0.5, 1, 2], [1, 2, 3])
    A2 = cell.shape[0]
    shift_x, shift_y = np.meshgrid(np.arange(0, W) * stride, np.arange(0, H) * stride)
    shifts = np.vstack((shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel())).transpose()
    all_anchors = (cell.reshape((1, A2, 4)) + shifts.reshape((1, H * W, 4)).transpose((1, 0, 2))).reshape((H * W * A2, 4))
    images2 = [random_boxes(rng, 2, im_h, im_w, 14, 40), random_boxes(rng, 1, im_h, im_w, 20, 44), np.zeros((0, 4))]
    per = [anchor_target_layer(all_anchors, g, im_h, im_w, H, W, A2) for g in images2]
    lab = np.stack([p[0] for p in per]); bt = np.stack([p[1] for p in per])
    iw = np.stack([p[2] for p in per]); ow = np.stack([p[3] for p in per]); nvs = [p[4] for p in per]
    scores = (torch.randn(B, 2 * A2, H, W) * 2).requires_grad_(True)
    deltas2 = (torch.randn(B, 4 * A2, H, W) * 0.3).requires_grad_(True)
    cls_terms = []
    for bi in range(B):
        s = scores[bi].reshape(2, A2, H, W)  # channel c*A + a: bg block then fg block
        logits = s.permute(1, 2, 3, 0).reshape(-1, 2)  # (A*H*W, 2) in (a, y, x) order
        l = torch.tensor(lab[bi].reshape(-1)).long()
        keep = l >= 0
        if keep.sum() > 0:
            cls_terms.append(F.cross_entropy(logits[keep], l[keep], reduction="mean"))
        else:
            cls_terms.append(scores.sum() * 0)
    cls2 = torch.stack(cls_terms).mean()
    reg2 = _smooth_l1_loss(deltas2, torch.tensor(bt), torch.tensor(iw), torch.tensor(ow), sigma=3.0, dim=[1, 2, 3])
    (cls2 + reg2).backward()
    out["pyfrcnn_rpn"] = {
        "im_h": im_h, "im_w": im_w, "H": H, "W": W, "A": A2, "stride": stride,
        "scales": [1, 2, 3], "ratios": [0.5, 1, 2],
        "gt": [flat(g) for g in images2], "nv": nvs,
        "labels": flat(lab), "bbox_targets": flat(bt), "inside": flat(iw), "outside": flat(ow),
        "scores": flat(scores), "deltas": flat(deltas2),
        "cls_loss": float(cls2), "box_loss": float(reg2),
        "dscores": flat(scores.grad), "ddeltas": flat(deltas2.grad),
    }

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rpn_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    tv = out["torchvision_rpn"]; pf = out["pyfrcnn_rpn"]
    print("wrote", path)
    print("torchvision labels: pos", [int(np.sum(np.array(l) == 1)) for l in tv["labels"]],
          "neg", [int(np.sum(np.array(l) == 0)) for l in tv["labels"]])
    print("py-faster-rcnn nv", nvs, "pos", [int((lab[i] == 1).sum()) for i in range(B)])


if __name__ == "__main__":
    main()
