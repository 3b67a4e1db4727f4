package roi

import (
	"fmt"
	"math"
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

// poolScratch holds one roi's bins along both axes.
type poolScratch struct{ rows, cols []span }

func newPoolScratch(o poolOp) *poolScratch {
	return &poolScratch{rows: make([]span, o.geo.outH), cols: make([]span, o.geo.outW)}
}

// poolSpansOf fills the scratch for roi r = (batch, x1, y1, x2, y2).
func poolSpansOf[T float](s *poolScratch, r []T, o poolOp) error {
	scale := T(o.geo.scale)
	if err := poolSpans(s.rows, r[2], r[4], scale, o.geo.height); err != nil {
		return err
	}
	return poolSpans(s.cols, r[1], r[3], scale, o.geo.width)
}

// argmax is the index into plane of the bin's maximum with torchvision's scan: rows, then
// columns, a strict > so the first maximum wins, starting from -FLT_MAX (float32's largest
// magnitude, for float64 too). It returns -1 and the start value when nothing exceeds it: an
// empty bin (value 0) or a bin of values <= -FLT_MAX or NaN (value -FLT_MAX).
func argmax[T float](plane []T, width int, rows, cols span) (int, T) {
	if rows.end <= rows.start || cols.end <= cols.start {
		return -1, 0
	}
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

// poolPass runs over every (roi, channel in [c0, c1), bin) with its argmax. visit gets the
// image plane index (n*C + c), the output index and the argmax.
func poolPass[T float](o poolOp, features, rois []T, c0, c1 int, visit func(plane, out, at int, best T)) error {
	g := o.geo
	s := newPoolScratch(o)
	planeSize := g.height * g.width
	bins := g.binCount()
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		if err := poolSpansOf(s, r, o); err != nil {
			return fmt.Errorf("roi: %v: roi %d %v: %w", o, k, r, err)
		}
		n := int(r[0])
		for c := c0; c < c1; c++ {
			p := n*g.channels + c
			plane := features[p*planeSize : (p+1)*planeSize]
			out := (k*g.channels + c) * bins
			for ph, rows := range s.rows {
				for pw, cols := range s.cols {
					at, best := argmax(plane, g.width, rows, cols)
					visit(p, out+ph*g.outW+pw, at, best)
				}
			}
		}
	}
	return nil
}

// poolForward writes the bins' maxima into out for the channels [c0, c1).
func poolForward[T float](o poolOp, features, rois, _, out []T, c0, c1 int) error {
	return poolPass(o, features, rois, c0, c1, func(_, i, _ int, best T) { out[i] = best })
}

// poolBackward adds every upstream element at its bin's argmax (none for argmax -1):
//
//	grad[n_k, c, argmax(k, c, ph, pw)] += up[k, c, ph, pw]
//
// A plane receives its additions in roi order, then bin order, whatever the number of workers.
func poolBackward[T float](o poolOp, features, rois, up, grad []T, c0, c1 int) error {
	planeSize := o.geo.height * o.geo.width
	return poolPass(o, features, rois, c0, c1, func(p, i, at int, _ T) {
		if at >= 0 {
			grad[p*planeSize+at] += up[i]
		}
	})
}

// poolGather reads v (features' shape) at every bin's argmax into out (0 for argmax -1): the
// derivative of poolBackward with respect to its upstream.
func poolGather[T float](o poolOp, features, rois, v, out []T, c0, c1 int) error {
	planeSize := o.geo.height * o.geo.width
	return poolPass(o, features, rois, c0, c1, func(p, i, at int, _ T) {
		if at >= 0 {
			out[i] = v[p*planeSize+at]
		}
	})
}
