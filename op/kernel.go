package op

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// float is the element type of every kernel: one generic kernel per computation, dispatched on
// the dtype once, at the edge (Do).
type float interface{ ~float32 | ~float64 }

// f is the smooth L1 function, evaluated in float64.
//
//	f(x) = quad*x^2 if |x| < beta, |x| - offset otherwise
func (p *params) f(x float64) float64 {
	ax := math.Abs(x)
	if ax < p.beta {
		return p.quad * x * x
	}
	return ax - p.offset
}

// df is f'(x) = slope*x inside the quadratic zone, sign(x) outside, 0 at x = 0 (also for beta = 0,
// where PyTorch 1.13 returns -1: pytorch/pytorch#96813). NaN propagates.
func (p *params) df(x float64) float64 {
	switch {
	case math.Abs(x) < p.beta:
		return p.slope * x
	case x > 0:
		return 1
	case x < 0:
		return -1
	case x == 0:
		return 0
	}
	return x // NaN
}

// d2f is f”(x) = slope inside the quadratic zone, 0 outside. NaN propagates.
func (p *params) d2f(x float64) float64 {
	if math.Abs(x) < p.beta {
		return p.slope
	}
	if x != x {
		return x
	}
	return 0
}

// weight reads w[i], or 1 when the weight is absent (nil).
func weight[T float](w []T, i int) float64 {
	if w == nil {
		return 1
	}
	return float64(w[i])
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
	var stack [64]float64
	partial := stack[:0]
	if chunks <= len(stack) {
		partial = stack[:chunks]
	} else {
		partial = make([]float64, chunks)
	}
	forChunks(n, func(c, lo, hi int) { partial[c] = sumLossChunk(p, in, lo, hi) })
	total := 0.0
	for _, s := range partial {
		total += s
	}
	return total
}

func sumLossChunk[T float](p *params, in inputs[T], lo, hi int) float64 {
	pred, target := in.pred[lo:hi], in.target[lo:hi]
	target = target[:len(pred)]
	var win, wout []T
	if in.insideW != nil {
		win = in.insideW[lo:hi][:len(pred)]
	}
	if in.outsideW != nil {
		wout = in.outsideW[lo:hi][:len(pred)]
	}
	// Two accumulators break the dependency chain of the additions.
	var s0, s1 float64
	i := 0
	for ; i+1 < len(pred); i += 2 {
		x0 := weight(win, i) * (float64(pred[i]) - float64(target[i]))
		x1 := weight(win, i+1) * (float64(pred[i+1]) - float64(target[i+1]))
		s0 += weight(wout, i) * p.f(x0)
		s1 += weight(wout, i+1) * p.f(x1)
	}
	if i < len(pred) {
		x := weight(win, i) * (float64(pred[i]) - float64(target[i]))
		s0 += weight(wout, i) * p.f(x)
	}
	return s0 + s1
}

// elementLoss writes dst_i = w_out_i * f(w_in_i * (pred_i - target_i)).
func elementLoss[T float](p *params, in inputs[T], dst []T) {
	forChunks(len(in.pred), func(_, lo, hi int) {
		pred, target, out := in.pred[lo:hi], in.target[lo:hi], dst[lo:hi]
		target, out = target[:len(pred)], out[:len(pred)]
		var win, wout []T
		if in.insideW != nil {
			win = in.insideW[lo:hi][:len(pred)]
		}
		if in.outsideW != nil {
			wout = in.outsideW[lo:hi][:len(pred)]
		}
		for i := range pred {
			x := weight(win, i) * (float64(pred[i]) - float64(target[i]))
			out[i] = T(weight(wout, i) * p.f(x))
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
		pred, target, out := in.pred[lo:hi], in.target[lo:hi], dst[lo:hi]
		target, out = target[:len(pred)], out[:len(pred)]
		var win, wout, up []T
		if in.insideW != nil {
			win = in.insideW[lo:hi][:len(pred)]
		}
		if in.outsideW != nil {
			wout = in.outsideW[lo:hi][:len(pred)]
		}
		if g != nil {
			up = g[lo:hi][:len(pred)]
		}
		for i := range pred {
			wi := weight(win, i)
			x := wi * (float64(pred[i]) - float64(target[i]))
			// d/dpred [w_out f(w_in (pred - target))] = w_out * w_in * f'(x)
			out[i] = T(scale * weight(up, i) * weight(wout, i) * wi * p.df(x))
		}
	})
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
