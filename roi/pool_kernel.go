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

// poolScratch holds one roi's bins along both axes, the bins' columns relative to the roi's
// first (spans), and per column of a band of rows the maximum and where it is (see
// columnArgmaxGo), and the band's argmaxes and values (where they do not go straight into the
// save and the output). Scratch is kept in a pool between passes, so that a step allocates only
// its result.
type poolScratch[T float] struct {
	rows, cols   []span
	colMax, vals []T
	colAt, spans []int32
	at           []int32
	band         bandFunc[T] // poolBand32 or poolBandGo
}

// bandFunc is poolBandGo's signature, plus whether spans were checked (see poolBand32).
type bandFunc[T float] func(colMax []T, colAt []int32, plane []T, width int, rows span, start, end int, spans, at []int32, vals []T, spansOK bool)

var poolScratches [2]sync.Pool // by dtype: float32, float64

func getPoolScratch[T float](o poolOp) *poolScratch[T] {
	s, ok := poolScratches[dtypeIndex[T]()].Get().(*poolScratch[T])
	if !ok {
		s = new(poolScratch[T])
		switch s := any(s).(type) {
		case *poolScratch[float32]:
			s.band = poolBand32
		case *poolScratch[float64]:
			s.band = func(colMax []float64, colAt []int32, plane []float64, width int, rows span, start, end int, spans, at []int32, vals []float64, _ bool) {
				poolBandGo(colMax, colAt, plane, width, rows, start, end, spans, at, vals)
			}
		}
	}
	if cap(s.rows) < o.geo.outH {
		s.rows = make([]span, o.geo.outH)
	}
	if cap(s.cols) < o.geo.outW {
		s.cols = make([]span, o.geo.outW)
	}
	// poolBandF32 writes whole vectors of 8 columns
	if cols := o.geo.width + 7; cap(s.colMax) < cols {
		s.colMax, s.colAt = make([]T, cols), make([]int32, cols)
	}
	if cap(s.at) < o.geo.outW {
		s.spans, s.at, s.vals = make([]int32, 2*o.geo.outW), make([]int32, o.geo.outW), make([]T, o.geo.outW)
	}
	s.rows, s.cols = s.rows[:o.geo.outH], s.cols[:o.geo.outW]
	s.spans, s.at, s.vals = s.spans[:2*o.geo.outW], s.at[:o.geo.outW], s.vals[:o.geo.outW]
	s.colMax, s.colAt = s.colMax[:o.geo.width+7], s.colAt[:o.geo.width+7]
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

// noPixel is columnArgmaxGo's index for a column with no pixel above -FLT_MAX; it exceeds every
// pixel index (a plane has fewer than 2^31 - 1 pixels, newGeometry checks).
const noPixel = math.MaxInt32

// columnArgmaxGo runs torchvision's scan down each column w in [start, end) of plane over rows:
// from -FLT_MAX, a pixel is kept when it is > the value so far (strict: NaN never, and of equal
// values the first). It sets colMax[w - start] to the kept value (-FLT_MAX if none) and
// colAt[w - start] to its pixel index h*width + w (noPixel if none).
//
// A bin's scan, row by row over its columns, keeps the first pixel in row-major order among
// those equal (==, so -0 and +0 alike) to its maximum M; that pixel is the first of its own
// column equal to M, so the bin's argmax is the smallest colAt among its columns whose colMax
// equals M, and M is the largest colMax (see binArgmax). The columns are independent: in
// float32 the AVX2 kernel (poolBandF32) runs eight at a time, each a comparison and two
// blends per pixel, and gives the same bits.
func columnArgmaxGo[T float](colMax []T, colAt []int32, plane []T, width int, rows span, start, end int) {
	n := end - start
	colMax, colAt = colMax[:n], colAt[:n]
	for w := range colMax {
		colMax[w], colAt[w] = -math.MaxFloat32, noPixel
	}
	for h := rows.start; h < rows.end; h++ {
		base := h*width + start
		for w, v := range plane[base : base+n] {
			if v > colMax[w] {
				colMax[w], colAt[w] = v, int32(base+w)
			}
		}
	}
}

// binArgmax is a bin's argmax (a pixel index, noPixel if none) from its columns' colMax and
// colAt (columnArgmaxGo): the largest column maximum M (colMax holds no NaN), then the smallest
// index among the columns equal to M, both without a data-dependent branch.
func binArgmax[T float](colMax []T, colAt []int32) int32 {
	colAt = colAt[:len(colMax)]
	m := T(-math.MaxFloat32)
	for _, v := range colMax {
		m = max(m, v)
	}
	at := int32(noPixel)
	for w, v := range colMax {
		i := colAt[w]
		if v != m {
			i = noPixel
		}
		at = min(at, i)
	}
	return at
}

// poolBandGo writes into at[b] the argmax (noPixel if none) of every bin b of a band of rows
// whose columns are [start + spans[2b], start + spans[2b+1]), spans within [0, end - start],
// and into vals[b] its value, Pool's output: the argmax's pixel, -FLT_MAX for a bin with no
// pixel above it, 0 for an empty bin. It runs columnArgmaxGo over the band's columns
// [start, end), then binArgmax per bin. colMax and colAt are scratch of at least end - start
// elements. In float32 the AVX2 kernel poolBandF32 does the same (poolBand32).
func poolBandGo[T float](colMax []T, colAt []int32, plane []T, width int, rows span, start, end int, spans, at []int32, vals []T) {
	if rows.end > rows.start && end > start {
		columnArgmaxGo(colMax, colAt, plane, width, rows, start, end)
	}
	for b := range at {
		at[b], vals[b] = noPixel, 0
		if first, last := spans[2*b], spans[2*b+1]; last > first && rows.end > rows.start {
			at[b], vals[b] = binArgmax(colMax[first:last], colAt[first:last]), -math.MaxFloat32
			if at[b] != noPixel {
				vals[b] = plane[at[b]]
			}
		}
	}
}

// spansWithin reports whether every column in spans is in [0, n].
func spansWithin(spans []int32, n int) bool {
	for _, c := range spans {
		if c < 0 || int(c) > n {
			return false
		}
	}
	return true
}

// poolMode is what a pass over the bins does with each argmax.
type poolMode int

const (
	poolMax     poolMode = iota // out[bin] = max
	poolScatter                 // grad[plane, argmax] += up[bin]
	poolGather                  // out[bin] = v[plane, argmax]
)

// poolPass runs over every (roi, channel in [c0, c1), bin) of the features, finding each bin's
// argmax from the features (columnArgmaxGo per band of bin rows, then binArgmax per bin): with
// poolMax it writes the maxima into out (the pixel at the argmax; -FLT_MAX for a bin with no
// pixel above it, 0 for an empty bin); with poolScatter it adds every upstream element in (the
// output's shape) at its bin's argmax in out (the features' shape), skipping bins without one:
//
//	grad[n_k, c, argmax(k, c, ph, pw)] += up[k, c, ph, pw]
//
// in roi order, then bin order, whatever the number of workers; with poolGather it reads in
// (the features' shape) at every argmax into out (the output's shape), the scatter's transpose.
// The three passes find the same argmaxes, torchvision's. save, if not nil (poolMax only),
// receives every bin's argmax (noPixel for none), in the output's layout.
func poolPass[T float](o poolOp, mode poolMode, features, rois, in, out []T, save []int32, c0, c1 int) error {
	g := o.geo
	s := getPoolScratch[T](o)
	defer s.release()
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
		for pw, cols := range s.cols {
			s.spans[2*pw], s.spans[2*pw+1] = int32(cols.start-colStart), int32(max(cols.end, cols.start)-colStart)
		}
		spansOK := spansWithin(s.spans, colEnd-colStart)
		for c := c0; c < c1; c++ {
			p := n*g.channels + c
			plane := features[p*planeSize : (p+1)*planeSize]
			block := (k*g.channels + c) * bins
			for ph, rows := range s.rows {
				i0 := block + ph*g.outW
				ats := s.at
				if save != nil { // the band's argmaxes go straight into the save
					ats = save[i0 : i0+g.outW]
				}
				vals := s.vals
				if mode == poolMax { // the band's values go straight into the output
					vals = out[i0 : i0+g.outW]
				}
				s.band(s.colMax, s.colAt, plane, g.width, rows, colStart, colEnd, s.spans, ats, vals, spansOK)
				switch mode {
				case poolMax:
				case poolScatter:
					grad, up := out[p*planeSize:(p+1)*planeSize], in[i0:i0+len(ats)]
					for pw, at := range ats {
						if at != noPixel {
							grad[at] += up[pw]
						}
					}
				default:
					dst, v := out[i0:i0+len(ats)], in[p*planeSize:(p+1)*planeSize]
					for pw, at := range ats {
						if at != noPixel {
							dst[pw] = v[at]
						}
					}
				}
			}
		}
	}
	return nil
}
