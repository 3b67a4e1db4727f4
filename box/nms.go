package box

import (
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

// higherFirst orders indices by decreasing score, ties by increasing index. Scores are not NaN
// (byScore drops them), so plain comparisons suffice (cmp.Compare's NaN handling costs).
func higherFirst(scores []float64, a, b int) int {
	sa, sb := scores[a], scores[b]
	switch {
	case sa > sb:
		return -1
	case sa < sb:
		return 1
	}
	return a - b
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
// in that order. Finite boxes take the bucketed path; any other input the quadratic reference.
func suppress(boxes [][4]float64, order []int, thresh float64, maxKeep int, plusOne bool) []int {
	if len(order) == 0 {
		return nil
	}
	for _, i := range order {
		if !finite(boxes[i]) {
			return suppressAll(boxes, order, thresh, maxKeep, plusOne)
		}
	}
	if thresh < 0 {
		// every pair's IoU (>= 0) exceeds a negative thresh: no window applies
		return suppressAll(boxes, order, thresh, maxKeep, plusOne)
	}
	o := one(plusOne)
	n := len(order)
	sorted := make([][4]float64, n) // the boxes in score order
	areas := make([]float64, n)
	for p, i := range order {
		sorted[p] = boxes[i]
		areas[p] = area(boxes[i], o)
	}
	buckets := newWidthBuckets(sorted, o)
	// IoU(a, b) > t implies (doc.go), with w = width and h = height (+1 under plusOne):
	//   min(wa, wb) >= t max(wa, wb)        (iw <= min(w) and iw >= IoU max(w))
	//   |x1a - x1b| <  (1 - t) max(wa, wb)  (iw <= w_a - |x1a - x1b| for the box on the left)
	// and alike in y. A box only looks in the width buckets within a factor t of its width and,
	// in each, at the x1-window its widest box allows. The slack absorbs rounding: the windows
	// never miss a pair that the exact IoU test takes.
	ratio := thresh - 1e-9
	slack := max(0, 1-thresh) + 1e-9
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
		w, h := b[2]-b[0]+o, b[3]-b[1]+o
		if !(w > 0) || !(h > 0) {
			continue // no intersection with anything: IoU 0
		}
		lo, hi := 0.0, math.Inf(1)
		if ratio > 0 {
			lo, hi = ratio*w, w/ratio
		}
		for _, bk := range buckets {
			if bk.maxW < lo || bk.minW > hi {
				continue
			}
			// products rounded on their own (no FMA): the same windows on GOAMD64=v1 and v3
			dx, dy := float64(slack*max(w, bk.maxW))+1e-9, float64(slack*max(h, bk.maxH))+1e-9
			xs, ys, pos := bk.x1, bk.y1, bk.pos
			end := b[0] + dx
			dead, start := 0, sort.SearchFloat64s(xs, b[0]-dx)
			k := start
			for ; k < len(xs) && xs[k] <= end; k++ {
				q := int(pos[k])
				if q <= p || suppressed[q] {
					dead++
					continue
				}
				if math.Abs(ys[k]-b[1]) > dy {
					continue
				}
				if iou(b, sorted[q], areas[p], areas[q], o) > thresh {
					suppressed[q] = true
				}
			}
			if dead > 32 && 2*dead > k-start {
				bk.compact(p, suppressed) // drop visited and suppressed boxes: later scans are shorter
			}
		}
	}
	return keep
}

// widthBucket holds the boxes whose width lies in [2^e, 2^(e+1)): their positions in score
// order sorted by x1, with their x1 and y1 (struct of arrays, scanned sequentially), and the
// bucket's extreme widths and largest height.
type widthBucket struct {
	x1, y1     []float64
	pos        []int32
	minW, maxW float64
	maxH       float64
}

// compact removes the entries already visited (position <= p) or suppressed, keeping x1 order.
func (bk *widthBucket) compact(p int, suppressed []bool) {
	k := 0
	for i, q := range bk.pos {
		if int(q) > p && !suppressed[q] {
			bk.x1[k], bk.y1[k], bk.pos[k] = bk.x1[i], bk.y1[i], q
			k++
		}
	}
	bk.x1, bk.y1, bk.pos = bk.x1[:k], bk.y1[:k], bk.pos[:k]
}

// newWidthBuckets sorts the boxes of positive width and height into buckets by binary exponent
// of the width. Boxes of zero or negative width or height intersect nothing and are left out.
func newWidthBuckets(sorted [][4]float64, o float64) []*widthBucket {
	byExp := map[int]*widthBucket{}
	var list []*widthBucket
	for p, b := range sorted {
		w, h := b[2]-b[0]+o, b[3]-b[1]+o
		if !(w > 0) || !(h > 0) {
			continue
		}
		_, e := math.Frexp(w)
		bk := byExp[e]
		if bk == nil {
			bk = &widthBucket{minW: w, maxW: w, maxH: h}
			byExp[e] = bk
			list = append(list, bk)
		}
		bk.pos = append(bk.pos, int32(p))
		bk.minW, bk.maxW, bk.maxH = min(bk.minW, w), max(bk.maxW, w), max(bk.maxH, h)
	}
	for _, bk := range list {
		slices.SortFunc(bk.pos, func(a, b int32) int { // by x1 (finite here), ties by position
			xa, xb := sorted[a][0], sorted[b][0]
			switch {
			case xa < xb:
				return -1
			case xa > xb:
				return 1
			}
			return int(a - b)
		})
		bk.x1, bk.y1 = make([]float64, len(bk.pos)), make([]float64, len(bk.pos))
		for k, p := range bk.pos {
			bk.x1[k], bk.y1[k] = sorted[p][0], sorted[p][1]
		}
	}
	return list
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
