package box

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// NMS is greedy non-maximum suppression (torchvision's nms; py-faster-rcnn's py_cpu_nms with
// plusOne): boxes by decreasing score, ties by lower index, each kept unless its IoU with an
// already kept box exceeds thresh. It returns the kept indices, best first, at most maxKeep of
// them (maxKeep <= 0: no limit). Boxes with a NaN score are dropped. A box with a non-finite
// coordinate suppresses nothing and is suppressed by nothing (its IoUs are NaN). Errors: boxes
// and scores of different lengths, a NaN thresh.
func NMS(boxes [][4]float64, scores []float64, thresh float64, maxKeep int, plusOne bool) ([]int, error) {
	if len(boxes) != len(scores) {
		return nil, fmt.Errorf("box: NMS: %d boxes but %d scores", len(boxes), len(scores))
	}
	if math.IsNaN(thresh) {
		return nil, fmt.Errorf("box: NMS: thresh is NaN")
	}
	return suppress(boxes, byScore(scores, nil), thresh, maxKeep, plusOne), nil
}

// BatchedNMS is NMS run independently within each group (torchvision's batched_nms with groups as
// the idxs: the proposals' levels, or the box head's classes): boxes of different groups never
// suppress each other. It returns the kept indices of all groups merged best first (ties by
// lower index), at most maxKeep (<= 0: no limit). Errors: lengths that differ, a NaN thresh.
func BatchedNMS(boxes [][4]float64, scores []float64, groups []int, thresh float64, maxKeep int, plusOne bool) ([]int, error) {
	if len(boxes) != len(scores) || len(groups) != len(scores) {
		return nil, fmt.Errorf("box: BatchedNMS: %d boxes, %d scores and %d groups; want equal lengths", len(boxes), len(scores), len(groups))
	}
	if math.IsNaN(thresh) {
		return nil, fmt.Errorf("box: BatchedNMS: thresh is NaN")
	}
	order := byScore(scores, nil) // sorted once; each group's sublist keeps the order
	perGroup := map[int][]int{}
	var names []int
	for _, i := range order {
		g := groups[i]
		if _, ok := perGroup[g]; !ok {
			names = append(names, g)
		}
		perGroup[g] = append(perGroup[g], i)
	}
	if len(names) == 1 {
		return suppress(boxes, order, thresh, maxKeep, plusOne), nil
	}
	var keep []int
	for _, g := range names {
		// a group's first maxKeep survivors are all it can contribute to the merged first maxKeep
		keep = append(keep, suppress(boxes, perGroup[g], thresh, maxKeep, plusOne)...)
	}
	slices.SortFunc(keep, func(a, b int) int { return higherFirst(scores, a, b) })
	if maxKeep > 0 && len(keep) > maxKeep {
		keep = keep[:maxKeep]
	}
	return keep, nil
}

// higherFirst orders indices by decreasing score, ties by increasing index.
func higherFirst(scores []float64, a, b int) int {
	if c := cmp.Compare(scores[b], scores[a]); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// byScore returns the indices of the non-NaN scores, best first, ties by lower index. order is
// reused when it has the capacity.
func byScore(scores []float64, order []int) []int {
	order = order[:0]
	for i, s := range scores {
		if !math.IsNaN(s) {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return higherFirst(scores, a, b) })
	return order
}

// suppress runs greedy NMS over boxes visited in the given order and returns the kept indices
// in that order. Finite boxes take the windowed path; any other input the quadratic reference.
func suppress(boxes [][4]float64, order []int, thresh float64, maxKeep int, plusOne bool) []int {
	if len(order) == 0 {
		return nil
	}
	o := one(plusOne)
	maxW, maxH := 0.0, 0.0
	for _, i := range order {
		b := boxes[i]
		if !finite(b) {
			return suppressAll(boxes, order, thresh, maxKeep, plusOne)
		}
		maxW, maxH = max(maxW, b[2]-b[0]+o), max(maxH, b[3]-b[1]+o)
	}
	if thresh < 0 || math.IsInf(maxW, 0) || math.IsInf(maxH, 0) {
		// every pair's IoU (>= 0) exceeds a negative thresh: no window applies
		return suppressAll(boxes, order, thresh, maxKeep, plusOne)
	}
	n := len(order)
	// the boxes and areas in score order, and (struct of arrays, scanned sequentially) the
	// positions sorted by x1 with their x1 and y1
	sorted := make([][4]float64, n)
	areas := make([]float64, n)
	byX := make([]int32, n)
	for p, i := range order {
		sorted[p] = boxes[i]
		areas[p] = area(boxes[i], o)
		byX[p] = int32(p)
	}
	slices.SortFunc(byX, func(a, b int32) int {
		if c := cmp.Compare(sorted[a][0], sorted[b][0]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	xs, ys := make([]float64, n), make([]float64, n)
	for k, p := range byX {
		xs[k], ys[k] = sorted[p][0], sorted[p][1]
	}
	// IoU > t needs |x1a - x1b| < (1 - t) max(wa, wb) <= (1 - t) maxW (doc.go), y alike; the
	// margin absorbs rounding so the window never misses a pair the exact IoU test would take.
	slack := max(0, 1-thresh) + 1e-9
	dx, dy := slack*maxW+1e-9, slack*maxH+1e-9
	suppressed := make([]bool, n)
	var keep []int
	for p, b := range sorted {
		if suppressed[p] {
			continue
		}
		keep = append(keep, order[p])
		if maxKeep > 0 && len(keep) == maxKeep {
			break
		}
		hi := b[0] + dx
		for k := sort.SearchFloat64s(xs, b[0]-dx); k < n && xs[k] <= hi; k++ {
			if math.Abs(ys[k]-b[1]) > dy {
				continue
			}
			q := int(byX[k])
			if q <= p || suppressed[q] {
				continue
			}
			if iou(b, sorted[q], areas[p], areas[q], o) > thresh {
				suppressed[q] = true
			}
		}
	}
	return keep
}

// suppressAll is the quadratic reference: each box in order against every kept box.
func suppressAll(boxes [][4]float64, order []int, thresh float64, maxKeep int, plusOne bool) []int {
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
	return keep
}
