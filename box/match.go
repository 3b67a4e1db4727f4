package box

import (
	"math"
	"slices"
)

// Run is the reference boxes First, First+Step, ..., First+(Count-1)*Step. With SameY every box
// of the run has the y coordinates of the first (a row of an anchor grid), and Match computes
// their height overlap with a gt once. Sizes, when not nil, holds the widths and heights of every
// box of the run (a Matcher with Prune uses it).
type Run struct {
	First, Count, Step int
	SameY              bool
	Sizes              *SizeRange
}

// SizeRange bounds the sizes of some boxes: every box's x2 - x1 lies in [MinW, MaxW] and y2 - y1
// in [MinH, MaxH] (as computed in float64, without PlusOne's +1).
type SizeRange struct{ MinW, MaxW, MinH, MaxH float64 }

// IoUBound is a bound on the IoU that Match computes between g and any box of the range (with
// areas from Area): no such IoU exceeds it. +Inf when the range gives no bound (a NaN size, or a
// minimum width or height, +1 with plusOne, that is not positive); 0 when no box of the range
// can overlap g (an empty range, MinW > MaxW, among them).
//
// With I = min(MaxW + o, gw) * min(MaxH + o, gh) (o = 1 with plusOne) and A = (MinW + o) * (MinH
// + o), the bound is I / (A + area(g) - I): each of Match's operations (a difference, +o, a
// product, a sum, a quotient) is no larger here than there on every box of the range, and
// rounding to nearest is monotone, so the computed bound is no smaller than any computed IoU.
// The same operations in the same order, with products rounded (no FMA), keep that true.
func (s *SizeRange) IoUBound(g [4]float64, plusOne bool) float64 {
	return s.iouBound(g, area(g, one(plusOne)), one(plusOne))
}

func (s *SizeRange) iouBound(g [4]float64, areaG, o float64) float64 {
	if s.MinW != s.MinW || s.MaxW != s.MaxW || s.MinH != s.MinH || s.MaxH != s.MaxH {
		return math.Inf(1) // NaN: no bound (min(NaN, x) below would give one of 0)
	}
	minW, minH := s.MinW+o, s.MinH+o
	if !(minW > 0 && minH > 0) {
		return math.Inf(1)
	}
	iw, ih := min(s.MaxW+o, g[2]-g[0]+o), min(s.MaxH+o, g[3]-g[1]+o)
	if !(iw > 0 && ih > 0) {
		return 0 // Match computes no IoU: every width or height overlap is <= 0
	}
	inter := float64(iw * ih)
	union := float64(minW*minH) + areaG - inter
	if !(union > 0) {
		return math.Inf(1)
	}
	return inter / union
}

// Matcher labels reference boxes (anchors, proposals) against ground-truth boxes, as
// torchvision's Matcher (with allow_low_quality_matches) and py-faster-rcnn's
// anchor_target_layer / proposal_target_layer:
//
//  1. label 0 where a box's best IoU < Low;
//  2. with AllowLowQuality, label 1 for each gt's best boxes (ties included), skipping a gt whose
//     best IoU is 0 (py-faster-rcnn would make every zero-overlap box positive,
//     rbgirshick/py-faster-rcnn#940);
//  3. label 1 where the best IoU >= High;
//  4. with ClobberPositives the negative rule is applied last instead (py-faster-rcnn's
//     RPN_CLOBBER_POSITIVES);
//  5. boxes not kept, and boxes between the thresholds, are -1; with no gt every kept box is 0.
//
// A box's match is its best gt, the first on ties (numpy's argmax); 0 when it overlaps none.
type Matcher struct {
	High, Low                         float64
	AllowLowQuality, ClobberPositives bool
	// PlusOne is the pixel convention of the IoUs.
	PlusOne bool
	// Prune skips the candidate runs (with Sizes) whose IoUs with a gt are bounded (IoUBound)
	// below Low, below High and below the gt's best IoU so far: such an IoU decides no label (it
	// is below both thresholds, so neither makes a box positive nor keeps it from being negative,
	// and it is no gt's best). The labels are those without Prune, and so are Matched and MaxIoU
	// of every box whose best IoU is >= min(Low, High) and, with AllowLowQuality, of every gt's
	// best box (its IoUs with the gts that skipped a run of its size are computed again): every
	// positive's match. The other boxes' MaxIoU may be lower and their Matched another gt's (some
	// of their IoUs are not computed). It needs areas from Area.
	Prune bool
}

// Matches is Match's result, one entry per reference box; reused across calls.
type Matches struct {
	Labels  []int8    // 1, 0 or -1
	Matched []int32   // the best gt's index
	MaxIoU  []float64 // the best IoU
	gtMax   []float64
	runs    []Run
	// ties[tieEnd[j-1]:tieEnd[j]] are the boxes whose IoU with gt j equals gtMax[j] (> 0),
	// collected in pass 1 so that no IoU is computed twice.
	ties   []int32
	tieEnd []int
	all    []bool // every box kept, for a nil kept
	// with Prune: the gts that skipped a run, grouped by the run's Sizes
	skipped []skipGroup
	skipAt  map[*SizeRange]int
}

// skipGroup is the gts that skipped a run with these Sizes (a gt may appear more than once).
type skipGroup struct {
	sizes *SizeRange
	gts   []int32
}

// skip records that gt j skipped a run with sizes s.
func (m *Matches) skip(s *SizeRange, j int32) {
	if m.skipAt == nil {
		m.skipAt = make(map[*SizeRange]int)
	}
	k, ok := m.skipAt[s]
	if !ok {
		k = len(m.skipped)
		m.skipAt[s] = k
		if k < cap(m.skipped) {
			m.skipped = m.skipped[:k+1]
			m.skipped[k].sizes, m.skipped[k].gts = s, m.skipped[k].gts[:0]
		} else {
			m.skipped = append(m.skipped, skipGroup{sizes: s})
		}
	}
	m.skipped[k].gts = append(m.skipped[k].gts, j)
}

// visit is pass 1 of Match for gt j (box g, area areaG) over the boxes of run r: each kept box's
// best IoU and gt, and the gt's best IoU best with its boxes in out.ties[start:]. It returns the
// ties and best. A function of its own, so that its loop keeps its values in registers.
//
// The IoU is iou(boxes[i], g, areas[i], areaG, o) inlined: the same operations, the same bits.
func (out *Matches) visit(r Run, boxes [][4]float64, areas []float64, kept []bool, g [4]float64, areaG, o float64, j int32, start int, best float64) ([]int32, float64) {
	ties := out.ties
	maxIoU, matched := out.MaxIoU, out.Matched
	gx0, gy0, gx1, gy1 := g[0], g[1], g[2], g[3]
	ih := 0.0 // with r.SameY, the run's height overlap
	if r.SameY && r.Count > 0 {
		b := &boxes[r.First]
		if ih = min(b[3], gy1) - max(b[1], gy0) + o; ih <= 0 {
			return ties, best // no box of the run overlaps g
		}
	}
	for k, i := 0, r.First; k < r.Count; k, i = k+1, i+r.Step {
		if !kept[i] {
			continue
		}
		b := &boxes[i]
		iw := min(b[2], gx1) - max(b[0], gx0) + o
		if iw <= 0 {
			continue // IoU 0: changes no maximum and is no gt's best (> 0)
		}
		if !r.SameY {
			if ih = min(b[3], gy1) - max(b[1], gy0) + o; ih <= 0 {
				continue
			}
		}
		inter := float64(iw * ih)
		union := areas[i] + areaG - inter
		if union <= 0 {
			continue
		}
		v := inter / union
		if v > maxIoU[i] {
			maxIoU[i], matched[i] = v, j
		}
		if v >= best && v > 0 {
			if v > best {
				best, ties = v, ties[:start]
			}
			ties = append(ties, int32(i))
		}
	}
	return ties, best
}

func (m *Matches) reset(n, gts int) {
	if cap(m.Labels) < n {
		m.Labels, m.Matched, m.MaxIoU = make([]int8, n), make([]int32, n), make([]float64, n)
	}
	m.Labels, m.Matched, m.MaxIoU = m.Labels[:n], m.Matched[:n], m.MaxIoU[:n]
	for i := range m.Labels {
		m.Labels[i], m.Matched[i], m.MaxIoU[i] = -1, 0, 0
	}
	m.gtMax = append(m.gtMax[:0], make([]float64, gts)...)
	m.ties, m.tieEnd = m.ties[:0], m.tieEnd[:0]
	m.skipped = m.skipped[:0]
	clear(m.skipAt)
}

// Match labels boxes against gts into out. areas are the boxes' areas (Area; nil: computed);
// kept marks the boxes to label (nil: all; the others stay -1). candidates, when not nil,
// appends to runs the boxes that can overlap a gt (a superset of those with a positive
// intersection: rpn's anchor grid visits only nearby cells); nil visits every box.
// No boxes x gts matrix is held: each IoU is computed once, and each gt's tied best boxes are
// kept as they are found. The inputs are not validated (callers check gt boxes with Check).
func (m Matcher) Match(boxes [][4]float64, areas []float64, kept []bool, gts [][4]float64, candidates func(g [4]float64, runs []Run) []Run, out *Matches) {
	n := len(boxes)
	out.reset(n, len(gts))
	if kept == nil { // every box kept
		out.all = slices.Grow(out.all[:0], n)[:n]
		for i := range out.all {
			out.all[i] = true
		}
		kept = out.all
	}
	if len(gts) == 0 {
		for i := 0; i < n; i++ {
			if kept[i] {
				out.Labels[i] = 0
			}
		}
		return
	}
	if areas == nil {
		areas = make([]float64, n)
		for i, b := range boxes {
			areas[i] = Area(b, m.PlusOne)
		}
	}
	o := one(m.PlusOne)
	visit := func(g [4]float64) []Run {
		out.runs = out.runs[:0]
		if candidates == nil {
			return append(out.runs, Run{First: 0, Count: n, Step: 1})
		}
		out.runs = candidates(g, out.runs)
		return out.runs
	}
	// pass 1, gt by gt: each kept box's best IoU and gt (only a strictly larger IoU replaces, so
	// the first gt wins ties), each gt's best IoU over the kept boxes and the boxes that reach it
	floor := min(m.Low, m.High) // an IoU below it and below a gt's best decides nothing
	for j, g := range gts {
		start := len(out.ties)
		best := out.gtMax[j]
		areaG := area(g, o)
		var sizes, recorded *SizeRange // the last run's and its bound; the last skipped
		var bound float64
		for _, r := range visit(g) {
			if m.Prune && r.Sizes != nil {
				if r.Sizes != sizes {
					sizes, bound = r.Sizes, r.Sizes.iouBound(g, areaG, o)
				}
				if bound < floor && bound < best {
					if r.Sizes != recorded {
						out.skip(r.Sizes, int32(j))
						recorded = r.Sizes
					}
					continue
				}
			}
			out.ties, best = out.visit(r, boxes, areas, kept, g, areaG, o, int32(j), start, best)
		}
		out.gtMax[j] = best
		out.tieEnd = append(out.tieEnd, len(out.ties))
	}
	if m.Prune && m.AllowLowQuality && len(out.skipped) > 0 {
		// a gt's best box is positive even below the floor, and its match is its own best gt
		// over all gts (torchvision's all_matches), but its IoUs below the floor may have been
		// skipped. A gt skipped box i only in a run whose Sizes hold box i's size: add the IoUs
		// with those gts to the best of the others (pass 1's), keeping the largest IoU and, on
		// equal IoUs, the first gt, as pass 1 does.
		for _, i := range out.ties {
			if out.MaxIoU[i] >= floor {
				continue // every skipped IoU is below the floor, so below this box's best
			}
			b := &boxes[i]
			w, h := b[2]-b[0], b[3]-b[1]
			for _, sg := range out.skipped {
				if s := sg.sizes; !(s.MinW <= w && w <= s.MaxW && s.MinH <= h && h <= s.MaxH) {
					continue // box i is in no run with these Sizes
				}
				for _, j := range sg.gts {
					v := iou(*b, gts[j], areas[i], area(gts[j], o), o)
					if cur := out.MaxIoU[i]; v > cur || (v == cur && v > 0 && j < out.Matched[i]) {
						out.MaxIoU[i], out.Matched[i] = v, j
					}
				}
			}
		}
	}
	negatives := func() {
		for i := 0; i < n; i++ {
			if kept[i] && out.MaxIoU[i] < m.Low {
				out.Labels[i] = 0
			}
		}
	}
	if !m.ClobberPositives {
		negatives()
	}
	if m.AllowLowQuality {
		// each gt's best boxes, ties included (bit-equal IoUs, found in pass 1); a gt whose best
		// IoU is 0 has none
		start := 0
		for _, end := range out.tieEnd {
			for _, i := range out.ties[start:end] {
				out.Labels[i] = 1
			}
			start = end
		}
	}
	for i := 0; i < n; i++ {
		if kept[i] && out.MaxIoU[i] >= m.High {
			out.Labels[i] = 1
		}
	}
	if m.ClobberPositives {
		negatives()
	}
}
