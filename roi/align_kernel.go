package roi

import (
	"fmt"
	"math"
	"sync"
)

// maxAdaptiveGrid bounds the adaptive sampling grid per axis (about a million feature pixels per
// bin): beyond it a roi is an error rather than hours of sampling.
const maxAdaptiveGrid = 1 << 20

// axisSample is one sampling coordinate along one axis after torchvision's border rules: the
// two neighbouring pixels and their bilinear weights (1 - l, l).
type axisSample[T float] struct {
	low, high   int32
	wLow, wHigh T
}

// axisGrid holds the samples of every bin along one axis of one roi that fall inside
// [-1, size]; bin b's are samples[first[b]:first[b+1]]. Samples outside contribute 0 in
// torchvision, and a 2-D sample is inside exactly when both of its coordinates are, so the
// bin's samples are the product of the two axes' lists.
type axisGrid[T float] struct {
	samples []axisSample[T]
	first   []int32
	grid    int // sampling points per bin along this axis (<= 0: none)

	// The samples' pixels with their weights added up per bin (see alignPlane): bin b's are
	// taps[tapFirst[b]:tapFirst[b+1]], each pixel once, in ascending order. lines are the
	// distinct pixels of all bins, and a tap's slot its pixel's position in lines.
	taps     []tap[T]
	tapFirst []int32
	lines    []int32
	slot     []int32 // by pixel: position in lines, -1 if unused
	weight   []T     // scratch by pixel
	touched  []bool  // scratch by pixel
}

// tap is a pixel of a bin and the sum of its weights over the bin's samples.
type tap[T float] struct {
	pixel, slot int32
	weight      T
}

// alignParams are Align's parameters in the kernel's dtype.
type alignParams[T float] struct {
	scale, offset T
	ratio         int
	aligned       bool
}

func newAlignParams[T float](o alignOp) alignParams[T] {
	p := alignParams[T]{scale: T(o.geo.scale), ratio: o.samplingRatio, aligned: o.aligned}
	if o.aligned {
		p.offset = 0.5
	}
	return p
}

// build fills the grid for one axis of one roi with corners lo, hi (image coordinates), a
// feature axis of the given size and out bins:
//
//	start = lo*scale - offset,  length = hi*scale - offset - start  (>= 1 unless aligned)
//	bin = length / out,  grid = ratio if ratio > 0 else ceil(bin)
//	sample i of bin b:  start + b*bin + (i + 0.5) * bin / grid
//
// All arithmetic is in T, in torchvision's order (explicit conversions keep products from being
// fused into FMAs, which would round differently).
func (a *axisGrid[T]) build(lo, hi T, size, out int, p *alignParams[T]) error {
	start := T(lo*p.scale) - p.offset
	length := T(hi*p.scale) - p.offset - start
	if !p.aligned && length < 1 {
		length = 1 // torchvision forces malformed rois to 1x1
	}
	bin := length / T(out)
	if math.IsInf(float64(start), 0) || math.IsInf(float64(length), 0) || math.IsInf(float64(bin), 0) {
		return fmt.Errorf("corner %v or %v times the spatial scale overflows the dtype", lo, hi)
	}
	a.grid = p.ratio
	if p.ratio <= 0 {
		g := math.Ceil(float64(bin))
		if g > maxAdaptiveGrid {
			return fmt.Errorf("spans %v feature pixels per bin: adaptive sampling would take %v points per axis (limit %d); set a sampling ratio", bin, g, maxAdaptiveGrid)
		}
		a.grid = int(g)
	}
	a.samples = a.samples[:0]
	a.first = append(a.first[:0], 0)
	grid := T(a.grid)
	for b := 0; b < out; b++ {
		binStart := start + T(T(b)*bin)
		for i := 0; i < a.grid && size > 0; i++ {
			x := binStart + T(T(T(i)+0.5)*bin)/grid
			if !(x >= -1 && x <= T(size)) {
				continue // outside the map: contributes 0 (NaN included)
			}
			if x <= 0 {
				x = 0
			}
			low := int(x)
			high := low + 1
			if low >= size-1 {
				low, high = size-1, size-1
				x = T(low)
			}
			l := x - T(low)
			a.samples = append(a.samples, axisSample[T]{low: int32(low), high: int32(high), wLow: 1 - l, wHigh: l})
		}
		a.first = append(a.first, int32(len(a.samples)))
	}
	a.buildTaps(size)
	return nil
}

// buildTaps adds up, per bin, the weights the samples give each pixel.
func (a *axisGrid[T]) buildTaps(size int) {
	if len(a.slot) != size {
		a.slot, a.weight, a.touched = make([]int32, size), make([]T, size), make([]bool, size)
		for i := range a.slot {
			a.slot[i] = -1
		}
		a.lines = a.lines[:0]
	}
	for _, line := range a.lines {
		a.slot[line] = -1
	}
	a.lines, a.taps = a.lines[:0], a.taps[:0]
	a.tapFirst = append(a.tapFirst[:0], 0)
	for b := 0; b+1 < len(a.first); b++ {
		samples := a.samples[a.first[b]:a.first[b+1]]
		lo, hi := size, -1
		for _, s := range samples {
			for _, t := range [2]struct {
				pixel int32
				w     T
			}{{s.low, s.wLow}, {s.high, s.wHigh}} {
				p := int(t.pixel)
				if !a.touched[p] {
					a.touched[p], a.weight[p] = true, 0
					lo, hi = min(lo, p), max(hi, p)
				}
				a.weight[p] += t.w
			}
		}
		for p := lo; p <= hi; p++ {
			if !a.touched[p] {
				continue
			}
			a.touched[p] = false
			if a.slot[p] < 0 {
				a.slot[p] = int32(len(a.lines))
				a.lines = append(a.lines, int32(p))
			}
			a.taps = append(a.taps, tap[T]{pixel: int32(p), slot: a.slot[p], weight: a.weight[p]})
		}
		a.tapFirst = append(a.tapFirst, int32(len(a.taps)))
	}
}

// count is torchvision's divisor: the number of sampling points per bin, at least 1.
func count[T float](ys, xs *axisGrid[T]) T {
	if ys.grid <= 0 || xs.grid <= 0 {
		return 1 // no samples at all: the bins are 0
	}
	return T(ys.grid) * T(xs.grid)
}

// alignGrids builds both axes' grids of roi r = (batch, x1, y1, x2, y2).
func alignGrids[T float](ys, xs *axisGrid[T], r []T, o alignOp, p *alignParams[T]) error {
	if err := ys.build(r[2], r[4], o.geo.height, o.geo.outH, p); err != nil {
		return err
	}
	return xs.build(r[1], r[3], o.geo.width, o.geo.outW, p)
}

// alignWorker is one worker's scratch: both axes' grids, the row sums of alignPlane and
// alignScatter, and the x taps as a dense table for the AVX2 row sums (rowTable). Workers are
// kept in a pool between passes, so that a step allocates only its result.
type alignWorker[T float] struct {
	ys, xs      axisGrid[T]
	rows, share []T
	table       rowTable
	// rowSums is alignRows32 in float32 (nil in float64): the row sums of alignPlane through
	// the AVX2 kernel, reporting false when it cannot run them (no AVX2, or no table);
	// rowScatter is alignScatter32, the same for the row scatter of alignScatterGo
	rowSums    func(w *alignWorker[T], src []T, width int) bool
	rowScatter func(w *alignWorker[T], dst []T, width int) bool
	// cols and shares are alignCols32 and alignShares32: alignPlane and alignShares through
	// the AVX2 kernels, reporting false when they cannot run them
	cols, shares func(w *alignWorker[T], v []T, cnt T, outW int) bool
}

var alignWorkers [2]sync.Pool // by dtype: float32, float64

func getAlignWorker[T float]() *alignWorker[T] {
	if w, ok := alignWorkers[dtypeIndex[T]()].Get().(*alignWorker[T]); ok {
		return w
	}
	w := new(alignWorker[T])
	if w32, ok := any(w).(*alignWorker[float32]); ok {
		w32.rowSums, w32.rowScatter = alignRows32, alignScatter32
		w32.cols, w32.shares = alignCols32, alignShares32
	}
	return w
}

func (w *alignWorker[T]) release() { alignWorkers[dtypeIndex[T]()].Put(w) }

// rowStride is the length of one line's row sums in rows: outW rounded up to whole vectors of 8.
func rowStride(outW int) int { return (outW + 7) &^ 7 }

// scratch returns rows of len(ys.lines)*rowStride(outW) and share of outW.
func (w *alignWorker[T]) scratch(outW int) (rows, share []T) {
	if need := len(w.ys.lines) * rowStride(outW); cap(w.rows) < need {
		w.rows = make([]T, need)
	}
	if cap(w.share) < outW {
		w.share = make([]T, outW)
	}
	return w.rows[:len(w.ys.lines)*rowStride(outW)], w.share[:outW]
}

// rowTable is the x taps of a roi, dense, for the AVX2 kernels. For the row sums (tab): columns
// [lo, lo+n) of the features; for every group of 8 bins and every column, 8 weights (the tap's
// weight in the bin's lane, 0 elsewhere) then 8 masks (all ones where the column is a tap of
// the bin). For the row scatter (scatter): columns [slo, slo+8*vecs), whole vectors of 8 inside
// the row; for every vector and every bin, 8 weights (the tap's weight in the column's lane)
// then 8 masks. ok says the tables are built and every line and column they will read is inside
// the plane; scatterOK that the row is wide enough for the scatter's vectors.
type rowTable struct {
	lo, n, groups int
	slo, vecs     int
	rowsEnd       int // one past the last pixel of the last line read
	tab, scatter  []float32
	ok, scatterOK bool
	yOK           bool // every y tap's slot is a line of the row sums (the y kernels' reads)
}

// build fills the table from the grids of one roi (float32 weights: the kernel's dtype) and
// checks its bounds against a plane of height x width.
func (t *rowTable) build(ys, xs *axisGrid[float32], height, width int) {
	t.ok, t.scatterOK, t.yOK = false, false, true
	for _, tp := range ys.taps {
		t.yOK = t.yOK && tp.slot >= 0 && int(tp.slot) < len(ys.lines)
	}
	if len(xs.taps) == 0 || len(ys.lines) == 0 {
		return
	}
	lo, hi := xs.taps[0].pixel, xs.taps[0].pixel
	for _, tp := range xs.taps {
		lo, hi = min(lo, tp.pixel), max(hi, tp.pixel)
	}
	last := int32(0)
	for _, line := range ys.lines {
		if line < 0 || int(line) >= height {
			return
		}
		last = max(last, line)
	}
	t.rowsEnd = (int(last) + 1) * width
	if lo < 0 || int(hi) >= width {
		return
	}
	outW := len(xs.tapFirst) - 1
	t.lo, t.n, t.groups = int(lo), int(hi-lo)+1, (outW+7)/8
	// The tables hold groups*n and vecs*outW entries, which the kernels visit whole, against the
	// Go loops' work of one step per tap: past a few times that (a wide roi with many bins) the
	// Go loops are faster, and the tables would grow as roi width x bins (found by review: 135
	// MB for a row of 4096 pixels in 2048 bins).
	budget := 4*len(xs.taps) + 64
	if t.groups*t.n > budget {
		return
	}
	t.tab = denseTaps(t.tab, t.groups*t.n*16, xs, func(pw, x int) int { return ((pw/8)*t.n+x-t.lo)*16 + pw%8 })
	t.ok = true
	// the scatter's window: n rounded up to whole vectors, moved left if it passes the row's end
	t.vecs = (t.n + 7) / 8
	t.slo = min(t.lo, width-8*t.vecs)
	if t.slo < 0 || t.vecs*outW > budget {
		return // a row narrower than the vectors, or a table too large: the Go loop scatters
	}
	t.scatter = denseTaps(t.scatter, t.vecs*outW*16, xs, func(pw, x int) int {
		x -= t.slo
		return ((x/8)*outW+pw)*16 + x%8
	})
	t.scatterOK = true
}

// denseTaps returns tab (reused if large enough) holding size zeros, then for every tap (pixel
// x of bin pw) of xs its weight at at(pw, x) and a mask of all ones 8 elements further.
func denseTaps(tab []float32, size int, xs *axisGrid[float32], at func(pw, x int) int) []float32 {
	if cap(tab) < size {
		tab = make([]float32, size)
	}
	tab = tab[:size]
	clear(tab)
	for pw := 0; pw+1 < len(xs.tapFirst); pw++ {
		for _, tp := range xs.taps[xs.tapFirst[pw]:xs.tapFirst[pw+1]] {
			e := at(pw, int(tp.pixel))
			tab[e], tab[e+8] = tp.weight, math.Float32frombits(^uint32(0))
		}
	}
	return tab
}

// alignPass builds each roi's grids and calls visit for every channel in [c0, c1) with the
// (image, channel) plane index n*C + c and the output block index k*C + c.
func alignPass[T float](o alignOp, rois []T, c0, c1 int, visit func(w *alignWorker[T], plane, block int, cnt T)) error {
	g := o.geo
	p := newAlignParams[T](o)
	w := getAlignWorker[T]()
	defer w.release()
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		if err := alignGrids(&w.ys, &w.xs, r, o, &p); err != nil {
			return fmt.Errorf("roi: %v: roi %d %v: %w", o, k, r, err)
		}
		n := int(r[0])
		cnt := count(&w.ys, &w.xs)
		if w32, ok := any(w).(*alignWorker[float32]); ok && asmKernels() {
			w32.table.build(&w32.ys, &w32.xs, g.height, g.width)
		}
		for c := c0; c < c1; c++ {
			visit(w, n*g.channels+c, k*g.channels+c, cnt)
		}
	}
	return nil
}

// alignForward computes every output of Align for the channels [c0, c1):
//
//	out[k, c, ph, pw] = (1/count) Σ_{y in ys(ph)} Σ_{x in xs(pw)} bilinear(features[n_k, c], y, x)
func alignForward[T float](o alignOp, features, rois, out []T, c0, c1 int) error {
	plane, bins := o.geo.height*o.geo.width, o.geo.binCount()
	return alignPass(o, rois, c0, c1, func(w *alignWorker[T], p, b int, cnt T) {
		rows, _ := w.scratch(o.geo.outW)
		src := features[p*plane : (p+1)*plane]
		if w.rowSums == nil || !w.rowSums(w, src, o.geo.width) {
			alignRowsGo(rows, src, o.geo.width, &w.ys, &w.xs)
		}
		dst := out[b*bins : (b+1)*bins]
		if w.cols == nil || !w.cols(w, dst, cnt, o.geo.outW) {
			alignPlane(dst, &w.ys, cnt, rows, o.geo.outW)
		}
	})
}

// alignRowsGo writes the row sums of alignPlane into rows (len(ys.lines) lines of rowStride
// elements), for the plane src:
//
//	rows[r, pw] = Σ_{x in taps(pw)} Wx(x) v(ys.lines[r], x)
//
// in tap order, from 0, each product rounded before it is added (the conversion keeps it from
// being fused into a multiply-add). In float32 the AVX2 kernel (alignRows32) gives the same bits.
func alignRowsGo[T float](rows, src []T, width int, ys, xs *axisGrid[T]) {
	outW := len(xs.tapFirst) - 1
	stride := rowStride(outW)
	for r, line := range ys.lines {
		row := src[int(line)*width : int(line)*width+width]
		h := rows[r*stride : r*stride+outW]
		for pw := range h {
			var sum T
			for _, t := range xs.taps[xs.tapFirst[pw]:xs.tapFirst[pw+1]] {
				sum += T(t.weight * row[t.pixel])
			}
			h[pw] = sum
		}
	}
}

// alignPlane pools one (roi, channel) from its row sums (alignRowsGo): dst holds the
// outH*outW bins (zero). The weight of pixel (y, x) in a bin is a sum over the bin's samples
// of products w_y * w_x, so it is Wy(y) * Wx(x), with Wy and Wx the weights each axis' samples
// give that row and that column (the taps): the bin is
//
//	out[ph, pw] = Σ_{y in taps(ph)} Wy(y) Σ_{x in taps(pw)} Wx(x) v(y, x) / count
//
// and the inner sums, one per (row, pw), are shared by every bin row that reads the row. The
// pixels and weights are torchvision's; the products are grouped differently, which rounds
// differently (within 1e-12 in float64) and, where a pixel is ±Inf and one of its sample
// weights is 0 but another is not, gives ±Inf where torchvision's 0 * Inf gives NaN.
func alignPlane[T float](dst []T, ys *axisGrid[T], cnt T, rows []T, outW int) {
	stride := rowStride(outW)
	for ph := 0; ph+1 < len(ys.tapFirst); ph++ {
		out := dst[ph*outW : (ph+1)*outW]
		for _, t := range ys.taps[ys.tapFirst[ph]:ys.tapFirst[ph+1]] {
			h := rows[int(t.slot)*stride:][:len(out)]
			for pw, x := range h {
				out[pw] += T(t.weight * x)
			}
		}
		for pw := range out {
			out[pw] /= cnt
		}
	}
}

// alignBackward adds the gradient of Align into grad (features' shape) for the channels
// [c0, c1): every upstream element, divided by count, is scattered through the same weights as
// the forward pass,
//
//	grad[n_k, c, y, x] += up[k, c, ph, pw] / count * Wy(y) * Wx(x)   (y in taps(ph), x in taps(pw))
//
// A plane receives its additions in roi order, then row order, then bin order: the same order
// whatever the number of workers.
func alignBackward[T float](o alignOp, rois, up, grad []T, c0, c1 int) error {
	plane, bins := o.geo.height*o.geo.width, o.geo.binCount()
	return alignPass(o, rois, c0, c1, func(w *alignWorker[T], p, b int, cnt T) {
		rows, share := w.scratch(o.geo.outW)
		dst := grad[p*plane : (p+1)*plane]
		src := up[b*bins : (b+1)*bins]
		if w.shares == nil || !w.shares(w, src, cnt, o.geo.outW) {
			alignShares(src, &w.ys, cnt, rows, share)
		}
		if w.rowScatter == nil || !w.rowScatter(w, dst, o.geo.width) {
			alignScatterGo(dst, rows, o.geo.width, &w.ys, &w.xs)
		}
	})
}

// alignShares is the first step of alignPlane's adjoint for one (roi, channel), its y step
// transposed: each bin row's shares up/count go to the rows it reads, weighted by Wy,
//
//	g[y, pw] = Σ_{ph: y in taps(ph)} Wy(y) up[ph, pw] / count
//
// into rows (len(ys.lines) lines of rowStride elements).
func alignShares[T float](src []T, ys *axisGrid[T], cnt T, rows, share []T) {
	outW := len(share)
	stride := rowStride(outW)
	g := rows[:len(ys.lines)*stride]
	clear(g)
	for ph := 0; ph+1 < len(ys.tapFirst); ph++ {
		for pw, u := range src[ph*outW : (ph+1)*outW] {
			share[pw] = u / cnt
		}
		for _, t := range ys.taps[ys.tapFirst[ph]:ys.tapFirst[ph+1]] {
			gr := g[int(t.slot)*stride:][:len(share)]
			for pw, s := range share {
				gr[pw] += T(t.weight * s)
			}
		}
	}
}

// alignScatterGo is the second step: each row's shares g (alignShares) are scattered through
// the x weights,
//
//	grad[y, x] += Σ_{pw: x in taps(pw)} Wx(x) g[y, pw]
//
// a pixel's additions in bin order, each product rounded before it is added (the conversion
// keeps it from being fused into a multiply-add). In float32 the AVX2 kernel
// (alignScatter32) gives the same bits.
func alignScatterGo[T float](dst, rows []T, width int, ys, xs *axisGrid[T]) {
	outW := len(xs.tapFirst) - 1
	stride := rowStride(outW)
	for r, line := range ys.lines {
		row := dst[int(line)*width : int(line)*width+width]
		for pw, x := range rows[r*stride : r*stride+outW] {
			for _, t := range xs.taps[xs.tapFirst[pw]:xs.tapFirst[pw+1]] {
				row[t.pixel] += T(t.weight * x)
			}
		}
	}
}
