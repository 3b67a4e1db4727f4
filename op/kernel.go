package op

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// float is the element type of every kernel: one generic kernel per computation, dispatched on
// the dtype once, at the edge (Do).
type float interface{ float32 | float64 }

// df is f'(x) = slope*x inside the quadratic zone, sign(x) outside. NaN takes the quadratic
// branch and propagates (slope*NaN), as in PyTorch; ±Inf gives ±1. For beta = 0 the threshold is
// the smallest denormal and slope is 0, so f'(0) = 0 exactly (PyTorch 1.13 returns -1 there:
// pytorch/pytorch#96813) and every other x gives sign(x).
func (p *params) df(x float64) float64 { return dfAt(x, p.beta, p.slope) }

// The hot loops choose between the two branches with selectIf, a bit mask built with a
// conditional move, not a jump: on random residuals a branch mispredicts often enough to make
// the loops about 1.8x slower (measured on the 2.36M-element benchmark).

// selectIf returns a if c, else b, without a branch.
func selectIf(c bool, a, b float64) float64 {
	var m uint64
	if c {
		m = ^uint64(0)
	}
	return math.Float64frombits(math.Float64bits(a)&m | math.Float64bits(b)&^m)
}

// fAt is f with the constants in registers: |x| - offset if |x| >= beta, else quad*x^2 (NaN
// takes the second form and stays NaN).
func fAt(x, beta, quad, offset float64) float64 {
	ax := math.Abs(x)
	return selectIf(ax >= beta, ax-offset, quad*x*x)
}

// dfAt is f' with the constants in registers: sign(x) if |x| >= beta, else slope*x.
func dfAt(x, beta, slope float64) float64 {
	return selectIf(math.Abs(x) >= beta, math.Copysign(1, x), slope*x)
}

// d2f is the second derivative: slope inside the quadratic zone, 0 outside. NaN propagates.
func (p *params) d2f(x float64) float64 {
	if x != x {
		return x
	}
	if math.Abs(x) >= p.beta {
		return 0
	}
	return p.slope
}

// onesOf returns n ones of type T (n <= chunkSize), read from a shared read-only table: absent
// weights are read as ones, so the hot loops have no branches on them.
func onesOf[T float](n int) []T {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return any(ones32[:n]).([]T)
	}
	return any(ones64[:n]).([]T)
}

var ones32, ones64 = func() (a [chunkSize]float32, b [chunkSize]float64) {
	for i := range a {
		a[i], b[i] = 1, 1
	}
	return a, b
}()

// chunkOf slices [lo, hi) out of s, or ones when s is absent.
func chunkOf[T float](s []T, lo, hi int) []T {
	if s == nil {
		return onesOf[T](hi - lo)
	}
	return s[lo:hi]
}

// chunkSize is the fixed work unit of the kernels. Sums are formed per chunk and the chunk sums
// added in chunk order, so results do not depend on GOMAXPROCS or scheduling.
const chunkSize = 1 << 14

// parallelMin is the element count from which the kernels use several goroutines.
const parallelMin = 1 << 16

// forChunks calls fn(c, lo, hi) for every chunk c = [lo, hi) of [0, n), on up to GOMAXPROCS
// goroutines when n >= parallelMin.
func forChunks(n int, fn func(c, lo, hi int)) {
	chunks := (n + chunkSize - 1) / chunkSize
	workers := runtime.GOMAXPROCS(0)
	if workers > chunks {
		workers = chunks
	}
	if n < parallelMin || workers <= 1 {
		for c := 0; c < chunks; c++ {
			lo := c * chunkSize
			fn(c, lo, min(lo+chunkSize, n))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				lo := c * chunkSize
				fn(c, lo, min(lo+chunkSize, n))
			}
		}()
	}
	wg.Wait()
}

// inputs groups the slices of one evaluation; absent weights are nil.
type inputs[T float] struct {
	pred, target, insideW, outsideW []T
}

// sumLoss returns Σ_i w_out_i * f(w_in_i * (pred_i - target_i)), accumulated in float64,
// chunk by chunk in a fixed order.
func sumLoss[T float](p *params, in inputs[T]) float64 {
	n := len(in.pred)
	chunks := (n + chunkSize - 1) / chunkSize
	partial := make([]float64, chunks) // escapes to the goroutines anyway
	forChunks(n, func(c, lo, hi int) { partial[c] = sumLossChunk(p, in, lo, hi) })
	total := 0.0
	for _, s := range partial {
		total += s
	}
	return total
}

func sumLossChunk[T float](p *params, in inputs[T], lo, hi int) float64 {
	pred := in.pred[lo:hi]
	n := len(pred)
	target := in.target[lo:hi][:n]
	win := chunkOf(in.insideW, lo, hi)[:n]
	wout := chunkOf(in.outsideW, lo, hi)[:n]
	// Four accumulators break the dependency chain of the additions; accumulator k takes the
	// elements k, k+4, k+8, ... and the tail goes to the first. The AVX2 kernel, where there is
	// one, does the same operations in the same order in four vector lanes (bit-identical).
	var s [4]float64
	done := sumLanes(p, pred, target, win, wout, &s)
	return sumLossGo(p, pred[done:], target[done:], win[done:], wout[done:], s)
}

// sumLossGo is the Go loop of sumLossChunk, continuing from the accumulators s.
func sumLossGo[T float](p *params, pred, target, win, wout []T, s [4]float64) float64 {
	n := len(pred)
	target, win, wout = target[:n], win[:n], wout[:n]
	beta, quad, offset := p.beta, p.quad, p.offset
	s0, s1, s2, s3 := s[0], s[1], s[2], s[3]
	// The loop walks four-element sub-slices so that the compiler drops the bounds checks. The
	// float64(...) around each product is a rounding the Go spec guarantees: it keeps the
	// compiler from fusing multiply and add (it may with GOAMD64=v3), so results do not depend
	// on the build.
	for len(pred) >= 4 {
		p4, t4, i4, o4 := pred[:4], target[:4], win[:4], wout[:4]
		s0 += float64(float64(o4[0]) * fAt(float64(i4[0])*(float64(p4[0])-float64(t4[0])), beta, quad, offset))
		s1 += float64(float64(o4[1]) * fAt(float64(i4[1])*(float64(p4[1])-float64(t4[1])), beta, quad, offset))
		s2 += float64(float64(o4[2]) * fAt(float64(i4[2])*(float64(p4[2])-float64(t4[2])), beta, quad, offset))
		s3 += float64(float64(o4[3]) * fAt(float64(i4[3])*(float64(p4[3])-float64(t4[3])), beta, quad, offset))
		pred, target, win, wout = pred[4:], target[4:], win[4:], wout[4:]
	}
	for i := range pred {
		s0 += float64(float64(wout[i]) * fAt(float64(win[i])*(float64(pred[i])-float64(target[i])), beta, quad, offset))
	}
	return (s0 + s1) + (s2 + s3)
}

// sumLossSave is sumLoss that also writes, in the same sweep, the factor of saved.go:
//
//	factor_i = T( norm * w_out_i * w_in_i * f'(x_i) )
//
// with exactly gradPred's arithmetic for scale = norm and no upstream, so the saved factor and
// its recomputation have the same bits.
func sumLossSave[T float](p *params, in inputs[T], norm float64, factor []T) float64 {
	n := len(in.pred)
	chunks := (n + chunkSize - 1) / chunkSize
	partial := make([]float64, chunks)
	forChunks(n, func(c, lo, hi int) {
		pred := in.pred[lo:hi]
		m := len(pred)
		target, dst := in.target[lo:hi][:m], factor[lo:hi][:m]
		win := chunkOf(in.insideW, lo, hi)[:m]
		wout := chunkOf(in.outsideW, lo, hi)[:m]
		var s [4]float64
		done := sumSaveLanes(p, pred, target, win, wout, dst, norm, &s)
		partial[c] = sumLossSaveGo(p, pred[done:], target[done:], win[done:], wout[done:], dst[done:], norm, s)
	})
	total := 0.0
	for _, s := range partial {
		total += s
	}
	return total
}

// sumLossSaveGo is the Go loop of sumLossSave, continuing from the accumulators s: the sum is
// sumLossGo's, element for element, and factor_i is gradPredGo's out_i for scale = norm, up = 1.
func sumLossSaveGo[T float](p *params, pred, target, win, wout, factor []T, norm float64, s [4]float64) float64 {
	n := len(pred)
	target, win, wout, factor = target[:n], win[:n], wout[:n], factor[:n]
	beta, quad, offset, slope := p.beta, p.quad, p.offset, p.slope
	for i := range pred {
		wi := float64(win[i])
		wo := float64(wout[i])
		x := wi * (float64(pred[i]) - float64(target[i]))
		// accumulator k takes elements k, k+4, ... of the sub-slice handed to sumLossGo; the
		// tail past the last group of four goes to the first (as sumLossGo does)
		k := i & 3
		if i >= n&^3 {
			k = 0
		}
		s[k] += float64(wo * fAt(x, beta, quad, offset))
		d := selectIf(math.Abs(x) >= beta, math.Copysign(1, x), slope*x)
		factor[i] = T(norm * float64(1) * wo * wi * d)
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

// elementLoss writes dst_i = w_out_i * f(w_in_i * (pred_i - target_i)) and, when factor is not
// nil, factor_i as sumLossSave does with norm = 1.
func elementLoss[T float](p *params, in inputs[T], dst, factor []T) {
	beta, quad, offset, slope := p.beta, p.quad, p.offset, p.slope
	forChunks(len(in.pred), func(_, lo, hi int) {
		out := dst[lo:hi]
		n := len(out)
		pred, target := in.pred[lo:hi][:n], in.target[lo:hi][:n]
		win, wout := chunkOf(in.insideW, lo, hi)[:n], chunkOf(in.outsideW, lo, hi)[:n]
		if factor == nil {
			for i := range out {
				x := float64(win[i]) * (float64(pred[i]) - float64(target[i]))
				out[i] = T(float64(wout[i]) * fAt(x, beta, quad, offset))
			}
			return
		}
		fac := factor[lo:hi][:n]
		for i := range out {
			wi, wo := float64(win[i]), float64(wout[i])
			x := wi * (float64(pred[i]) - float64(target[i]))
			out[i] = T(wo * fAt(x, beta, quad, offset))
			d := selectIf(math.Abs(x) >= beta, math.Copysign(1, x), slope*x)
			fac[i] = T(1 * float64(1) * wo * wi * d)
		}
	})
}

// scaleInPlace multiplies a saved or recomputed factor by a scalar upstream gradient g:
// dst_i = T(g * dst_i). g = 1 changes no bit and is skipped.
func scaleInPlace[T float](dst []T, g float64) {
	if g == 1 {
		return
	}
	forChunks(len(dst), func(_, lo, hi int) {
		d := dst[lo:hi]
		for i, v := range d {
			d[i] = T(g * float64(v))
		}
	})
}

// mulInPlace multiplies a factor by the upstream gradient of a None reduction:
// dst_i = T(up_i * dst_i).
func mulInPlace[T float](dst, up []T) {
	forChunks(len(dst), func(_, lo, hi int) {
		d := dst[lo:hi]
		u := up[lo:hi][:len(d)]
		for i, v := range d {
			d[i] = T(float64(u[i]) * float64(v))
		}
	})
}

// gradPred writes the gradient with respect to pred:
//
//	dst_i = scale * g_i * w_out_i * w_in_i * f'(w_in_i * (pred_i - target_i))
//
// where g is the upstream gradient of a None reduction (nil for scalar reductions, whose upstream
// value and normaliser are folded into scale). The gradient with respect to target is -dst.
func gradPred[T float](p *params, in inputs[T], g []T, scale float64, dst []T) {
	forChunks(len(in.pred), func(_, lo, hi int) {
		out := dst[lo:hi]
		n := len(out)
		pred, target := in.pred[lo:hi][:n], in.target[lo:hi][:n]
		win, wout := chunkOf(in.insideW, lo, hi)[:n], chunkOf(in.outsideW, lo, hi)[:n]
		// a scalar reduction's upstream value is in scale and g is read as ones, which changes
		// no bit (scale*1 == scale): one loop, and one AVX2 kernel, serve both cases
		up := chunkOf(g, lo, hi)[:n]
		done := gradLanes(p, pred, target, win, wout, up, out, scale)
		gradPredGo(p, pred[done:], target[done:], win[done:], wout[done:], up[done:], out[done:], scale)
	})
}

// gradPredGo is the Go loop of gradPred over one chunk, with up the upstream gradient (ones for
// a scalar reduction).
func gradPredGo[T float](p *params, pred, target, win, wout, up, out []T, scale float64) {
	beta, slope := p.beta, p.slope
	n := len(out)
	pred, target, win, wout, up = pred[:n], target[:n], win[:n], wout[:n], up[:n]
	for i := range out {
		wi := float64(win[i])
		x := wi * (float64(pred[i]) - float64(target[i]))
		// d/dpred [w_out f(w_in (pred - target))] = w_out * w_in * f'(x), with
		// f'(x) = slope*x if |x| < beta, sign(x) otherwise (params.df written out: the call
		// is over the inlining budget)
		d := selectIf(math.Abs(x) >= beta, math.Copysign(1, x), slope*x)
		out[i] = T(scale * float64(up[i]) * float64(wout[i]) * wi * d)
	}
}

// hessPred writes the second-order term for a Hessian-vector product: with u the upstream
// gradient of the first derivative,
//
//	dst_i = u_i * scale * g_i * w_out_i * w_in_i^2 * f''(w_in_i * (pred_i - target_i))
func hessPred[T float](p *params, in inputs[T], g []T, scale float64, u, dst []T) {
	for i := range in.pred {
		wi := weight(in.insideW, i)
		x := wi * (float64(in.pred[i]) - float64(in.target[i]))
		dst[i] = T(float64(u[i]) * scale * weight(g, i) * weight(in.outsideW, i) * wi * wi * p.d2f(x))
	}
}

// dotGrad returns Σ_i u_i * w_out_i * w_in_i * f'(x_i): the derivative of <u, dpred> with respect
// to a scalar upstream gradient, before the normaliser.
func dotGrad[T float](p *params, in inputs[T], u []T) float64 {
	s := 0.0
	for i := range in.pred {
		wi := weight(in.insideW, i)
		x := wi * (float64(in.pred[i]) - float64(in.target[i]))
		s += float64(u[i]) * weight(in.outsideW, i) * wi * p.df(x)
	}
	return s
}

// weight reads w[i], or 1 when w is absent (nil). For the small second-order kernels only.
func weight[T float](w []T, i int) float64 {
	if w == nil {
		return 1
	}
	return float64(w[i])
}
