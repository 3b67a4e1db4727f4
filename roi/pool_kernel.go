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

// binArgmax is the index into plane of the bin's maximum with torchvision's scan: rows, then
// columns, a strict > so the first maximum wins, starting from -FLT_MAX (float32's largest
// magnitude, for float64 too); NaN is never > anything, so it is passed over. It returns -1 and
// the start value when nothing exceeds it: an empty bin (value 0) or a bin of values <= -FLT_MAX
// or NaN (value -FLT_MAX).
//
// cm holds the column maxima of the bin's rows (see columnMax); with it the result is the
// one-pass scan's (argmaxScan) without a data-dependent branch per pixel, which a running
// maximum mispredicts. The first maximum in row-major order is, among the bin's columns whose
// maximum is the bin's, the one whose first maximal row comes first (then the leftmost). A NaN
// maximum (Go's max propagates NaN) falls back to the scan. With wantIndex false the index is
// found only where the value needs it (a zero maximum takes the sign of the first zero), and cm
// need not hold the rows.
func binArgmax[T float](plane []T, width int, rows, cols span, cm *colMaxima[T], wantIndex bool) (int, T) {
	if rows.end <= rows.start || cols.end <= cols.start {
		return -1, 0
	}
	maxima := cm.value[cols.start-cm.start : cols.end-cm.start]
	best := T(-math.MaxFloat32)
	for _, v := range maxima {
		best = max(best, v)
	}
	switch {
	case best != best:
		return argmaxScan(plane, width, rows, cols)
	case best == -math.MaxFloat32:
		return -1, best // nothing is > -FLT_MAX
	case !wantIndex && best != 0:
		return 0, best
	case !wantIndex: // a zero maximum: the first zero's sign, without cm.row
		for h := rows.start; h < rows.end; h++ {
			for w, v := range plane[h*width+cols.start : h*width+cols.end] {
				if v == 0 {
					return h*width + cols.start + w, v
				}
			}
		}
	}
	at := -1
	for w, v := range maxima {
		if v == best {
			h := int(cm.row[cols.start-cm.start+w])
			if i := h*width + cols.start + w; at < 0 || h < at/width {
				at = i
			}
		}
	}
	return at, plane[at]
}

// colMaxima are, for the columns [start, start+len(value)) of a band of rows, the maxima over
// the rows (Go's max: NaN-propagating) and the first row where each is reached (-0 and +0
// equal, as torchvision's > has them).
type colMaxima[T float] struct {
	start int
	value []T
	row   []int32
}

// columnMax fills cm for plane's columns [start, end) over rows: one pass over the rows, each a
// run of independent maxima. With withRows false, cm.row is left alone.
func columnMax[T float](cm *colMaxima[T], plane []T, width int, rows span, start, end int, withRows bool) {
	cm.start = start
	value, row := cm.value[:end-start], cm.row[:end-start]
	copy(value, plane[rows.start*width+start:rows.start*width+end])
	if !withRows {
		for h := rows.start + 1; h < rows.end; h++ {
			for w, v := range plane[h*width+start : h*width+end] {
				value[w] = max(value[w], v)
			}
		}
		return
	}
	for w := range row {
		row[w] = int32(rows.start)
	}
	for h := rows.start + 1; h < rows.end; h++ {
		for w, v := range plane[h*width+start : h*width+end] {
			m := value[w]
			r := row[w]
			if v > m { // an integer select, not a loop-carried one: compiled without a branch
				r = int32(h)
			}
			value[w], row[w] = max(m, v), r
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
// writes the maxima into out (in unused); with poolScatter it adds every upstream element in
// (the output's shape) at its bin's argmax in out (the features' shape), skipping argmax -1:
//
//	grad[n_k, c, argmax(k, c, ph, pw)] += up[k, c, ph, pw]
//
// in roi order, then bin order, whatever the number of workers; with poolGather it reads in
// (the features' shape) at every argmax into out (the output's shape), the scatter's transpose.
func poolPass[T float](o poolOp, mode poolMode, features, rois, in, out []T, c0, c1 int) error {
	g := o.geo
	s := newPoolScratch(o)
	cm := &colMaxima[T]{value: make([]T, g.width), row: make([]int32, g.width)}
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
			for ph, rows := range s.rows {
				if rows.end > rows.start && colEnd > colStart {
					columnMax(cm, plane, g.width, rows, colStart, colEnd, mode != poolMax)
				}
				for pw, cols := range s.cols {
					i := block + ph*g.outW + pw
					if mode == poolMax && rows.end > rows.start && cols.end > cols.start {
						// the common case of binArgmax, inline: a number other than 0
						best := T(-math.MaxFloat32)
						for _, v := range cm.value[cols.start-cm.start : cols.end-cm.start] {
							best = max(best, v)
						}
						if best == best && best != 0 {
							out[i] = best
							continue
						}
					}
					at, best := binArgmax(plane, g.width, rows, cols, cm, mode != poolMax)
					switch {
					case mode == poolMax:
						out[i] = best
					case at < 0:
					case mode == poolScatter:
						out[p*planeSize+at] += in[i]
					default:
						out[i] = in[p*planeSize+at]
					}
				}
			}
		}
	}
	return nil
}
