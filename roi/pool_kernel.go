package roi

import (
	"fmt"
	"math"
	"sync"
)

// maxPoolCoordinate bounds |round(coordinate * scale)| so that every bin edge fits an int32.
const maxPoolCoordinate = 1 << 30

// span is a half-open range [start, end) of feature rows or columns.
type span struct{ start, end int }

// poolSpans fills one axis' bins of roi corners lo, hi (image coordinates), with torchvision's
// rounding:
//
//	start = round(lo*scale), end = round(hi*scale), length = max(end - start + 1, 1)
//	bin = length / out (in T)
//	bin b: [floor(b*bin), ceil((b+1)*bin)) + start, clamped to [0, size]
func poolSpans[T float](spans []span, lo, hi T, scale T, size int) error {
	start, end := math.Round(float64(T(lo*scale))), math.Round(float64(T(hi*scale)))
	if math.Abs(start) > maxPoolCoordinate || math.Abs(end) > maxPoolCoordinate {
		return fmt.Errorf("corner %v or %v times the spatial scale is beyond ±2^30 feature pixels", lo, hi)
	}
	length := int(end) - int(start) + 1
	if length < 1 {
		length = 1 // torchvision forces malformed rois to 1x1
	}
	bin := T(length) / T(len(spans))
	clamp := func(i int) int { return min(max(i, 0), size) }
	for b := range spans {
		spans[b] = span{
			start: clamp(int(math.Floor(float64(T(T(b)*bin)))) + int(start)),
			end:   clamp(int(math.Ceil(float64(T(T(b+1)*bin)))) + int(start)),
		}
	}
	return nil
}

// poolScratch holds one roi's bins along both axes, and the column maxima of a band of rows.
// Scratch is kept in a pool between passes, so that a step allocates only its result.
type poolScratch[T float] struct {
	rows, cols []span
	colMax     []T
}

var poolScratches [2]sync.Pool // by dtype: float32, float64

func getPoolScratch[T float](o poolOp) *poolScratch[T] {
	s, ok := poolScratches[dtypeIndex[T]()].Get().(*poolScratch[T])
	if !ok {
		s = new(poolScratch[T])
	}
	if cap(s.rows) < o.geo.outH {
		s.rows = make([]span, o.geo.outH)
	}
	if cap(s.cols) < o.geo.outW {
		s.cols = make([]span, o.geo.outW)
	}
	if cap(s.colMax) < o.geo.width {
		s.colMax = make([]T, o.geo.width)
	}
	s.rows, s.cols, s.colMax = s.rows[:o.geo.outH], s.cols[:o.geo.outW], s.colMax[:o.geo.width]
	return s
}

func (s *poolScratch[T]) release() { poolScratches[dtypeIndex[T]()].Put(s) }

// poolSpansOf fills the scratch for roi r = (batch, x1, y1, x2, y2).
func poolSpansOf[T float](s *poolScratch[T], r []T, o poolOp) error {
	scale := T(o.geo.scale)
	if err := poolSpans(s.rows, r[2], r[4], scale, o.geo.height); err != nil {
		return err
	}
	return poolSpans(s.cols, r[1], r[3], scale, o.geo.width)
}

// columnMax sets colMax[w - start] to the maximum of plane's column w over rows (Go's max), for
// w in [start, end): one pass over the rows, each a run of independent maxima. A bin's value
// (torchvision's scan: rows, then columns, from -FLT_MAX, keeping a pixel when it is > the value
// so far; 0 for an empty bin) is then the largest of its columns' maxima, found without a
// data-dependent branch per pixel, which a running maximum mispredicts; where that is NaN (Go's
// max propagates NaN, the scan passes over it) or 0 (the first zero's sign is the scan's), the
// scan decides.
func columnMax[T float](colMax, plane []T, width int, rows span, start, end int) {
	colMax = colMax[:end-start]
	copy(colMax, plane[rows.start*width+start:rows.start*width+end])
	for h := rows.start + 1; h < rows.end; h++ {
		for w, v := range plane[h*width+start : h*width+end] {
			colMax[w] = max(colMax[w], v)
		}
	}
}

// argmaxScan is torchvision's scan as written: one pass, strict >.
func argmaxScan[T float](plane []T, width int, rows, cols span) (int, T) {
	best, at := T(-math.MaxFloat32), -1
	for h := rows.start; h < rows.end; h++ {
		row := plane[h*width+cols.start : h*width+cols.end]
		for w, v := range row {
			if v > best {
				best, at = v, h*width+cols.start+w
			}
		}
	}
	return at, best
}

// poolMode is what a pass over the bins does with each argmax.
type poolMode int

const (
	poolMax     poolMode = iota // out[bin] = max
	poolScatter                 // grad[plane, argmax] += up[bin]
	poolGather                  // out[bin] = v[plane, argmax]
)

// poolPass runs over every (roi, channel in [c0, c1), bin) of the features: with poolMax it
// writes the maxima into out; with poolScatter it adds every upstream element in (the output's
// shape) at its bin's argmax in out (the features' shape), skipping bins without one:
//
//	grad[n_k, c, argmax(k, c, ph, pw)] += up[k, c, ph, pw]
//
// in roi order, then bin order, whatever the number of workers; with poolGather it reads in
// (the features' shape) at every argmax into out (the output's shape), the scatter's transpose.
// The two take the argmax as the first pixel equal to the bin's output (maxima, Pool's output;
// see locate).
func poolPass[T float](o poolOp, mode poolMode, features, rois, maxima, in, out []T, c0, c1 int) error {
	g := o.geo
	s := getPoolScratch[T](o)
	defer s.release()
	colMax := s.colMax
	planeSize := g.height * g.width
	bins := g.binCount()
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		if err := poolSpansOf(s, r, o); err != nil {
			return fmt.Errorf("roi: %v: roi %d %v: %w", o, k, r, err)
		}
		n := int(r[0])
		// the roi's columns: the bins' spans are ordered, so the first starts and the last ends them
		colStart, colEnd := s.cols[0].start, s.cols[len(s.cols)-1].end
		for c := c0; c < c1; c++ {
			p := n*g.channels + c
			plane := features[p*planeSize : (p+1)*planeSize]
			block := (k*g.channels + c) * bins
			if mode != poolMax {
				for ph, rows := range s.rows {
					for pw, cols := range s.cols {
						i := block + ph*g.outW + pw
						at := locate(plane, g.width, rows, cols, maxima[i])
						switch {
						case at < 0:
						case mode == poolScatter:
							out[p*planeSize+at] += in[i]
						default:
							out[i] = in[p*planeSize+at]
						}
					}
				}
				continue
			}
			for ph, rows := range s.rows {
				if rows.end > rows.start && colEnd > colStart {
					columnMax(colMax, plane, g.width, rows, colStart, colEnd)
				}
				for pw, cols := range s.cols {
					var best T // 0 for an empty bin
					if rows.end > rows.start && cols.end > cols.start {
						best = -math.MaxFloat32
						for _, v := range colMax[cols.start-colStart : cols.end-colStart] {
							best = max(best, v)
						}
						if best != best || best == 0 {
							_, best = argmaxScan(plane, g.width, rows, cols)
						}
					}
					out[block+ph*g.outW+pw] = best
				}
			}
		}
	}
	return nil
}

// locate is the bin's argmax given its maximum m (Pool's output for the bin): the first pixel
// in torchvision's scan order equal to m (-0 == +0), -1 for an empty bin or m = -FLT_MAX (no
// pixel exceeded torchvision's start). If no pixel equals m (m was not computed from these
// features), the argmax is recomputed from the pixels.
//
// The bin is scanned whole, last pixel first, keeping every match, so that the first match is
// what remains, without a data-dependent branch (an early exit at a random pixel mispredicts
// once a bin): the comparison becomes a flag and the index an arithmetic select.
func locate[T float](plane []T, width int, rows, cols span, m T) int {
	if rows.end <= rows.start || cols.end <= cols.start || m == -math.MaxFloat32 {
		return -1
	}
	at := -1
	for h := rows.end - 1; h >= rows.start; h-- {
		base := h*width + cols.start
		row := plane[base : h*width+cols.end]
		for w := len(row) - 1; w >= 0; w-- {
			var match int
			if row[w] == m {
				match = -1
			}
			at += (base + w - at) & match
		}
	}
	if at < 0 {
		at, _ = argmaxScan(plane, width, rows, cols)
	}
	return at
}
