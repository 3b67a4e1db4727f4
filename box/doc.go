// Package box is the box geometry both stages of a two-stage detector share, as torchvision's
// ops/boxes.py and models/detection/_utils.py: IoU, area, clipping, removing small boxes, box
// coding (Coder), and non-maximum suppression (NMS, BatchedNMS). It knows nothing of graphs or
// of the RPN; package rpn and a second stage build on it.
//
// A box is [x1, y1, x2, y2]. Two pixel conventions are supported, chosen by plusOne:
//
//	plusOne (py-faster-rcnn):  w = x2 - x1 + 1, h = y2 - y1 + 1, clip to [0, W-1] x [0, H-1]
//	otherwise (torchvision):   w = x2 - x1,     h = y2 - y1,     clip to [0, W]   x [0, H]
//
//	IoU(a, b) = inter / (area(a) + area(b) - inter),  inter = max(0, iw) * max(0, ih)
//	iw = min(a.x2, b.x2) - max(a.x1, b.x1) (+1)
//
// # NMS
//
// Greedy NMS visits boxes by decreasing score, ties by lower index (a documented, deterministic
// rule: torchvision's sort leaves ties unspecified), and keeps a box unless its IoU with a kept
// box exceeds the threshold, as torchvision's nms and py-faster-rcnn's py_cpu_nms. It sorts
// once and, for finite boxes, visits only the boxes that can reach the threshold: IoU(a, b) > t
// implies |a.x1 - b.x1| < (1 - t) max(w_a, w_b) (IoU <= iw/w for either box, and iw <= w_a -
// |a.x1 - b.x1|), so each kept box checks the boxes of a sorted-by-x1 window around it, not all
// of them. Results equal the quadratic algorithm's (tests compare them on random sets).
//
// The arithmetic rounds every product on its own (explicit float64 conversions), so results are
// bit-identical between GOAMD64=v1 and v3 builds (no fused multiply-adds).
package box
