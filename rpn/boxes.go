package rpn

import (
	"fmt"
	"math"
	"sort"
)

// IoU returns the intersection over union of a and b. With plusOne (py-faster-rcnn's pixel
// convention) widths are x2 - x1 + 1; without (torchvision) x2 - x1. Disjoint boxes give 0; two
// empty boxes give 0. It does not validate: a NaN coordinate gives NaN or 0 (AssignTargets rejects
// such boxes before any IoU is computed).
func IoU(a, b [4]float64, plusOne bool) float64 {
	one := pixelOne(plusOne)
	return iouAreas(a, b, boxArea(a, one), boxArea(b, one), one)
}

// pixelOne is what the pixel convention adds to a width or height: 1 with plusOne
// (py-faster-rcnn: w = x2 - x1 + 1), else 0.
func pixelOne(plusOne bool) float64 {
	if plusOne {
		return 1
	}
	return 0
}

// boxArea is (x2 - x1 + one) * (y2 - y1 + one).
// The float64(...) conversions here and in Encode/Decode round each product on its own: without
// them the compiler may fuse a product and a following add into one FMA on GOAMD64=v3 builds
// (the Go spec allows it; an explicit conversion forbids it), and results would differ in the
// last bit between builds.
func boxArea(b [4]float64, one float64) float64 {
	return float64((b[2] - b[0] + one) * (b[3] - b[1] + one))
}

// iouAreas is IoU with the two areas (boxArea) given, so that loops over many anchors compute
// each area once; the arithmetic, and so every bit of the result, is IoU's.
func iouAreas(a, b [4]float64, areaA, areaB, one float64) float64 {
	// builtin min/max compile to single instructions (math.Min/Max do not); coordinates are
	// finite here (validated), where they agree.
	iw := min(a[2], b[2]) - max(a[0], b[0]) + one
	if iw <= 0 {
		return 0
	}
	ih := min(a[3], b[3]) - max(a[1], b[1]) + one
	if ih <= 0 {
		return 0
	}
	inter := float64(iw * ih)
	union := areaA + areaB - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// IoUMatrix returns the len(a) x len(b) IoU matrix, row-major. It holds len(a)*len(b) float64s;
// target assignment does not use it (see AssignTargets), it is for callers and tests.
func IoUMatrix(a, b [][4]float64, plusOne bool) []float64 {
	out := make([]float64, len(a)*len(b))
	for i := range a {
		for j := range b {
			out[i*len(b)+j] = IoU(a[i], b[j], plusOne)
		}
	}
	return out
}

// BoxCoder encodes ground-truth boxes relative to anchors and decodes deltas back to boxes.
type BoxCoder struct {
	// PlusOne uses py-faster-rcnn's pixel convention: w = x2 - x1 + 1.
	PlusOne bool
	// Weights multiply (dx, dy, dw, dh) when encoding and divide them when decoding
	// (torchvision's BoxCoder weights; the RPN uses 1, 1, 1, 1).
	Weights [4]float64
	// ClampLog caps dw and dh before exp when decoding (torchvision: ln(1000/16)); 0 means none.
	ClampLog float64
}

// PyFasterRCNNCoder is py-faster-rcnn's bbox_transform / bbox_transform_inv.
func PyFasterRCNNCoder() BoxCoder { return BoxCoder{PlusOne: true, Weights: [4]float64{1, 1, 1, 1}} }

// TorchvisionCoder is torchvision's BoxCoder((1, 1, 1, 1)) with its default clamp.
func TorchvisionCoder() BoxCoder {
	return BoxCoder{Weights: [4]float64{1, 1, 1, 1}, ClampLog: math.Log(1000.0 / 16)}
}

// Validate reports a weight that is not finite and > 0, or a negative or NaN ClampLog.
func (c BoxCoder) Validate() error {
	for k, w := range c.Weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("rpn: BoxCoder weight %d is %v, want finite and > 0", k, w)
		}
	}
	if c.ClampLog < 0 || math.IsNaN(c.ClampLog) {
		return fmt.Errorf("rpn: BoxCoder ClampLog is %v, want >= 0 (0: no clamp)", c.ClampLog)
	}
	return nil
}

func (c BoxCoder) one() float64 { return pixelOne(c.PlusOne) }

// Encode returns the regression target (dx, dy, dw, dh) of gt relative to anchor:
//
//	dx = wx (gcx - acx)/aw, dy = wy (gcy - acy)/ah, dw = ww ln(gw/aw), dh = wh ln(gh/ah)
//
// with w = x2 - x1 (+1) and cx = x1 + w/2. Encode and Decode do not validate (they are pure
// arithmetic on hot paths): boxes of zero width or height give ±Inf or NaN, NaN propagates, and a
// coder with a zero weight divides by zero. AssignTargets validates the coder (Config.Validate)
// and rejects such ground truth before encoding; call Validate on a hand-made coder.
func (c BoxCoder) Encode(anchor, gt [4]float64) [4]float64 {
	one := c.one()
	aw, ah := anchor[2]-anchor[0]+one, anchor[3]-anchor[1]+one
	acx, acy := anchor[0]+float64(0.5*aw), anchor[1]+float64(0.5*ah)
	gw, gh := gt[2]-gt[0]+one, gt[3]-gt[1]+one
	gcx, gcy := gt[0]+float64(0.5*gw), gt[1]+float64(0.5*gh)
	return [4]float64{
		c.Weights[0] * (gcx - acx) / aw,
		c.Weights[1] * (gcy - acy) / ah,
		c.Weights[2] * math.Log(gw/aw),
		c.Weights[3] * math.Log(gh/ah),
	}
}

// Decode applies deltas to anchor: cx = dx*aw + acx, w = exp(dw)*aw, box [cx - w/2, cy - h/2,
// cx + w/2, cy + h/2]. With PlusOne this is py-faster-rcnn's bbox_transform_inv, which does not
// subtract 1 from x2: Decode(a, Encode(a, g)) = g + (0, 0, 1, 1).
func (c BoxCoder) Decode(anchor, d [4]float64) [4]float64 {
	one := c.one()
	aw, ah := anchor[2]-anchor[0]+one, anchor[3]-anchor[1]+one
	acx, acy := anchor[0]+float64(0.5*aw), anchor[1]+float64(0.5*ah)
	dx, dy := d[0]/c.Weights[0], d[1]/c.Weights[1]
	dw, dh := d[2]/c.Weights[2], d[3]/c.Weights[3]
	if c.ClampLog > 0 {
		dw, dh = math.Min(dw, c.ClampLog), math.Min(dh, c.ClampLog)
	}
	cx, cy := float64(dx*aw)+acx, float64(dy*ah)+acy
	w, h := float64(math.Exp(dw)*aw), float64(math.Exp(dh)*ah)
	hw, hh := float64(0.5*w), float64(0.5*h)
	return [4]float64{cx - hw, cy - hh, cx + hw, cy + hh}
}

// ClipBox clips b to an image of the given size: to [0, W-1] x [0, H-1] with plusOne
// (py-faster-rcnn), [0, W] x [0, H] without (torchvision).
func ClipBox(b [4]float64, imgH, imgW float64, plusOne bool) [4]float64 {
	one := pixelOne(plusOne)
	clip := func(v, hi float64) float64 { return math.Max(0, math.Min(v, hi)) }
	return [4]float64{clip(b[0], imgW-one), clip(b[1], imgH-one), clip(b[2], imgW-one), clip(b[3], imgH-one)}
}

// NMS is greedy non-maximum suppression: boxes in decreasing score order (ties by index), each
// kept unless its IoU with an already kept box exceeds thresh. It returns at most maxKeep
// indices (maxKeep <= 0: no limit). Boxes with NaN scores are dropped.
func NMS(boxes [][4]float64, scores []float64, thresh float64, maxKeep int, plusOne bool) ([]int, error) {
	if len(boxes) != len(scores) {
		return nil, fmt.Errorf("rpn: NMS: %d boxes but %d scores", len(boxes), len(scores))
	}
	if math.IsNaN(thresh) {
		return nil, fmt.Errorf("rpn: NMS: thresh is NaN")
	}
	order := make([]int, 0, len(boxes))
	for i, s := range scores {
		if !math.IsNaN(s) {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return scores[order[i]] > scores[order[j]] })
	var keep []int
	for _, i := range order {
		ok := true
		for _, k := range keep {
			if IoU(boxes[i], boxes[k], plusOne) > thresh {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, i)
			if maxKeep > 0 && len(keep) == maxKeep {
				break
			}
		}
	}
	return keep, nil
}
