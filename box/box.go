package box

import (
	"fmt"
	"math"
)

// one is what the pixel convention adds to a width or height: 1 with plusOne, else 0.
func one(plusOne bool) float64 {
	if plusOne {
		return 1
	}
	return 0
}

// Area is (x2 - x1 (+1)) * (y2 - y1 (+1)). It does not validate: an inverted box has a negative
// or zero area.
func Area(b [4]float64, plusOne bool) float64 { return area(b, one(plusOne)) }

// area rounds the product (float64(...)): without it a following add may be fused into an FMA on
// GOAMD64=v3, and results would differ in the last bit between builds.
func area(b [4]float64, one float64) float64 {
	return float64((b[2] - b[0] + one) * (b[3] - b[1] + one))
}

// IoU returns the intersection over union of a and b. Disjoint boxes give 0, as do two empty
// boxes. It does not validate: a NaN coordinate gives NaN or 0.
func IoU(a, b [4]float64, plusOne bool) float64 {
	o := one(plusOne)
	return iou(a, b, area(a, o), area(b, o), o)
}

// IoUWithAreas is IoU with the two areas (Area) given, so that loops over many boxes compute
// each area once; every bit of the result is IoU's.
func IoUWithAreas(a, b [4]float64, areaA, areaB float64, plusOne bool) float64 {
	return iou(a, b, areaA, areaB, one(plusOne))
}

// iou is written out again in Matcher.Match's first pass (too large for the inliner there); keep
// the two the same operations, or the matcher's ties stop being IoU's.
func iou(a, b [4]float64, areaA, areaB, one float64) float64 {
	// builtin min/max compile to single instructions (math.Min/Max do not)
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

// IoUMatrix returns the len(a) x len(b) IoU matrix, row-major. It holds len(a)*len(b) float64s:
// for callers and tests, not for anchors x gt at detection scale.
func IoUMatrix(a, b [][4]float64, plusOne bool) []float64 {
	out := make([]float64, len(a)*len(b))
	for i := range a {
		for j := range b {
			out[i*len(b)+j] = IoU(a[i], b[j], plusOne)
		}
	}
	return out
}

// Clip clips b to an image of the given size: to [0, W-1] x [0, H-1] with plusOne
// (py-faster-rcnn's clip_boxes), [0, W] x [0, H] without (torchvision's clip_boxes_to_image).
// A NaN coordinate stays NaN.
func Clip(b [4]float64, height, width float64, plusOne bool) [4]float64 {
	o := one(plusOne)
	clip := func(v, hi float64) float64 {
		if v != v {
			return v
		}
		return max(0, min(v, hi))
	}
	return [4]float64{clip(b[0], width-o), clip(b[1], height-o), clip(b[2], width-o), clip(b[3], height-o)}
}

// Large reports whether b's width and height (with +1 when plusOne) are both >= minSize:
// torchvision's remove_small_boxes keeps such boxes, py-faster-rcnn's _filter_boxes too (with
// +1). A box with a NaN coordinate is not large.
func Large(b [4]float64, minSize float64, plusOne bool) bool {
	o := one(plusOne)
	return b[2]-b[0]+o >= minSize && b[3]-b[1]+o >= minSize
}

// RemoveSmall returns the indices of the boxes that are Large, in order.
func RemoveSmall(boxes [][4]float64, minSize float64, plusOne bool) []int {
	keep := make([]int, 0, len(boxes))
	for i, b := range boxes {
		if Large(b, minSize, plusOne) {
			keep = append(keep, i)
		}
	}
	return keep
}

// Check accepts finite boxes with x2 >= x1 and y2 >= y1.
func Check(b [4]float64) error {
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("box %v has a non-finite coordinate", b)
		}
	}
	if b[2] < b[0] || b[3] < b[1] {
		return fmt.Errorf("box %v has x2 < x1 or y2 < y1", b)
	}
	return nil
}

func finite(b [4]float64) bool {
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}
