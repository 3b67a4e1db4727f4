package roi

import (
	"fmt"
	"math"
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
	return nil
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

// alignPass builds each roi's grids and calls visit for every channel in [c0, c1) with the
// (image, channel) plane index n*C + c and the output block index k*C + c.
func alignPass[T float](o alignOp, rois []T, c0, c1 int, visit func(plane, block int, ys, xs *axisGrid[T], cnt T)) error {
	g := o.geo
	p := newAlignParams[T](o)
	var ys, xs axisGrid[T]
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		if err := alignGrids(&ys, &xs, r, o, &p); err != nil {
			return fmt.Errorf("roi: %v: roi %d %v: %w", o, k, r, err)
		}
		n := int(r[0])
		cnt := count(&ys, &xs)
		for c := c0; c < c1; c++ {
			visit(n*g.channels+c, k*g.channels+c, &ys, &xs, cnt)
		}
	}
	return nil
}

// alignForward computes every output of Align for the channels [c0, c1):
//
//	out[k, c, ph, pw] = (1/count) Σ_{y in ys(ph)} Σ_{x in xs(pw)} bilinear(features[n_k, c], y, x)
func alignForward[T float](o alignOp, features, rois, out []T, c0, c1 int) error {
	plane, bins := o.geo.height*o.geo.width, o.geo.binCount()
	return alignPass(o, rois, c0, c1, func(p, b int, ys, xs *axisGrid[T], cnt T) {
		alignPlane(out[b*bins:(b+1)*bins], features[p*plane:(p+1)*plane], o.geo.width, ys, xs, cnt)
	})
}

// alignPlane pools one (roi, channel): dst holds the outH*outW bins, src the feature plane.
func alignPlane[T float](dst, src []T, width int, ys, xs *axisGrid[T], cnt T) {
	outW := len(xs.first) - 1
	for ph := 0; ph+1 < len(ys.first); ph++ {
		ySamples := ys.samples[ys.first[ph]:ys.first[ph+1]]
		row := dst[ph*outW : (ph+1)*outW]
		for pw := range row {
			xSamples := xs.samples[xs.first[pw]:xs.first[pw+1]]
			var sum T
			for _, sy := range ySamples {
				rowLow := src[int(sy.low)*width : int(sy.low)*width+width]
				rowHigh := src[int(sy.high)*width : int(sy.high)*width+width]
				for _, sx := range xSamples {
					// w1 v1 + w2 v2 + w3 v3 + w4 v4 with w = (1-ly or ly) * (1-lx or lx)
					top := sx.wLow*rowLow[sx.low] + sx.wHigh*rowLow[sx.high]
					bottom := sx.wLow*rowHigh[sx.low] + sx.wHigh*rowHigh[sx.high]
					sum += T(sy.wLow*top) + T(sy.wHigh*bottom)
				}
			}
			row[pw] = sum / cnt
		}
	}
}

// alignBackward adds the gradient of Align into grad (features' shape) for the channels
// [c0, c1): every upstream element, divided by count, is scattered through the same bilinear
// weights as the forward pass,
//
//	grad[n_k, c, y_i, x_j] += up[k, c, ph, pw] / count * w_y(i) * w_x(j)
//
// for each sample and each of its four pixels. A plane receives its additions in roi order, then
// bin order, then sample order: the same order whatever the number of workers.
func alignBackward[T float](o alignOp, rois, up, grad []T, c0, c1 int) error {
	plane, bins := o.geo.height*o.geo.width, o.geo.binCount()
	return alignPass(o, rois, c0, c1, func(p, b int, ys, xs *axisGrid[T], cnt T) {
		alignScatter(grad[p*plane:(p+1)*plane], up[b*bins:(b+1)*bins], o.geo.width, ys, xs, cnt)
	})
}

// alignScatter is alignPlane's adjoint for one (roi, channel).
func alignScatter[T float](dst, src []T, width int, ys, xs *axisGrid[T], cnt T) {
	outW := len(xs.first) - 1
	for ph := 0; ph+1 < len(ys.first); ph++ {
		ySamples := ys.samples[ys.first[ph]:ys.first[ph+1]]
		row := src[ph*outW : (ph+1)*outW]
		for pw, u := range row {
			xSamples := xs.samples[xs.first[pw]:xs.first[pw+1]]
			share := u / cnt
			for _, sy := range ySamples {
				rowLow := dst[int(sy.low)*width : int(sy.low)*width+width]
				rowHigh := dst[int(sy.high)*width : int(sy.high)*width+width]
				top, bottom := T(share*sy.wLow), T(share*sy.wHigh)
				for _, sx := range xSamples {
					rowLow[sx.low] += T(top * sx.wLow)
					rowLow[sx.high] += T(top * sx.wHigh)
					rowHigh[sx.low] += T(bottom * sx.wLow)
					rowHigh[sx.high] += T(bottom * sx.wHigh)
				}
			}
		}
	}
}
