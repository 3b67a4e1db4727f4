package op

import (
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Benchmarks, gonum style: one helper per measurement and sized wrappers. Sizes: 1k, 64k and the
// RPN workload 16x36x64x64 = 2,359,296 elements (batch 16, 9 anchors x 4 deltas, 64x64 map).
// Every measurement is sigma 3 with inside and outside weights.

var benchShapes = map[string][]int{
	"1k":    {1, 4, 16, 16},
	"64k":   {4, 16, 32, 32},
	"2.36M": {16, 36, 64, 64},
}

type benchData struct {
	shape                         []int
	pred, target, inside, outside []float64
	pred32, target32, in32, out32 []float32
}

func newBenchData(shape []int) *benchData {
	n := tensor.Shape(shape).TotalSize()
	rng := rand.New(rand.NewSource(7))
	d := &benchData{shape: shape}
	d.pred, d.target, d.inside, d.outside = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		d.pred[i] = rng.NormFloat64() * 0.3
		d.target[i] = rng.NormFloat64() * 0.3
		if rng.Intn(8) == 0 { // about 1 in 8 deltas belongs to a foreground anchor
			d.inside[i] = 1
		}
		d.outside[i] = 1.0 / 256
	}
	conv := func(x []float64) []float32 {
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = float32(v)
		}
		return out
	}
	d.pred32, d.target32, d.in32, d.out32 = conv(d.pred), conv(d.target), conv(d.inside), conv(d.outside)
	return d
}

func (d *benchData) tensors(dt tensor.Dtype) []*tensor.Dense {
	mk := func(x64 []float64, x32 []float32) *tensor.Dense {
		if dt == tensor.Float32 {
			return tensor.New(tensor.WithShape(d.shape...), tensor.WithBacking(x32))
		}
		return tensor.New(tensor.WithShape(d.shape...), tensor.WithBacking(x64))
	}
	return []*tensor.Dense{mk(d.pred, d.pred32), mk(d.target, d.target32), mk(d.inside, d.in32), mk(d.outside, d.out32)}
}

// composedLoss is the same loss from gorgonia primitives (MinBetween form).
func composedLoss(g *G.ExprGraph, p, q, wi, wo *G.Node, sigma float64) (*G.Node, error) {
	n := p.Shape().TotalSize()
	var betaT *tensor.Dense
	var half *G.Node
	if p.Dtype() == tensor.Float32 {
		b := make([]float32, n)
		for i := range b {
			b[i] = float32(1 / (sigma * sigma))
		}
		betaT = tensor.New(tensor.WithShape(p.Shape()...), tensor.WithBacking(b))
		half = G.NewConstant(float32(0.5*sigma*sigma), G.WithName("half32"))
	} else {
		b := make([]float64, n)
		for i := range b {
			b[i] = 1 / (sigma * sigma)
		}
		betaT = tensor.New(tensor.WithShape(p.Shape()...), tensor.WithBacking(b))
		half = G.NewConstant(0.5*sigma*sigma, G.WithName("half64"))
	}
	beta := G.NewConstant(betaT, G.WithName("beta"))
	x, err := G.HadamardProd(wi, G.Must(G.Sub(p, q)))
	if err != nil {
		return nil, err
	}
	ax := G.Must(G.Abs(x))
	m := G.Must(G.MinBetween(ax, beta))
	f := G.Must(G.Add(G.Must(G.Mul(G.Must(G.Square(m)), half)), G.Must(G.Sub(ax, m))))
	return G.Mean(G.Must(G.Sum(G.Must(G.HadamardProd(wo, f)), 1)))
}

type benchMode int

const (
	fusedForward benchMode = iota
	fusedForwardBackward
	composedForwardBackward
)

func benchGraph(b *testing.B, d *benchData, dt tensor.Dtype, mode benchMode) {
	step, closeFn, err := graphStep(d, dt, mode)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	b.SetBytes(int64(tensor.Shape(d.shape).TotalSize()) * int64(dt.Size()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
}

// graphStep builds the graph of one measurement on a TapeMachine and returns one training step
// (run, then Reset) and the machine's Close.
func graphStep(d *benchData, dt tensor.Dtype, mode benchMode) (step func() error, closeFn func(), err error) {
	ts := d.tensors(dt)
	g := G.NewGraph()
	nodes := make([]*G.Node, 4)
	for i, name := range []string{"pred", "target", "inside", "outside"} {
		nodes[i] = G.NewTensor(g, dt, len(d.shape), G.WithShape(d.shape...), G.WithValue(ts[i]), G.WithName(name))
	}
	var l *G.Node
	if mode == composedForwardBackward {
		l, err = composedLoss(g, nodes[0], nodes[1], nodes[2], nodes[3], 3)
	} else {
		// the user's default call, as rpn.Loss makes it: no options, targets are data
		l, err = SmoothL1Loss(nodes[0], nodes[1], nodes[2], nodes[3], 3, 1, 2, 3)
	}
	if err != nil {
		return nil, nil, err
	}
	if mode != fusedForward {
		if _, err := G.Grad(l, nodes[0]); err != nil {
			return nil, nil, err
		}
	}
	m := G.NewTapeMachine(g)
	step = func() error {
		defer m.Reset()
		return m.RunAll()
	}
	return step, func() { m.Close() }, nil
}

// memoryFloor is the least a training step of this loss can cost: one pass, on GOMAXPROCS
// goroutines over equal contiguous ranges, that reads the four inputs once and writes one tensor,
// with trivial arithmetic (no branch, no threshold). No gorgonia, no allocation.
func memoryFloor[T float](pred, target, inside, outside, dst []T) {
	n := len(dst)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		go func() {
			defer wg.Done()
			d := dst[lo:hi]
			p, q, i, o := pred[lo:hi][:len(d)], target[lo:hi][:len(d)], inside[lo:hi][:len(d)], outside[lo:hi][:len(d)]
			for k := range d {
				d[k] = (p[k] - q[k]) * i[k] * o[k]
			}
		}()
	}
	wg.Wait()
}

func benchFloor(b *testing.B, d *benchData, dt tensor.Dtype) {
	b.SetBytes(int64(len(d.pred)) * int64(dt.Size()))
	b.ReportAllocs()
	if dt == tensor.Float32 {
		dst := make([]float32, len(d.pred))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			memoryFloor(d.pred32, d.target32, d.in32, d.out32, dst)
		}
		return
	}
	dst := make([]float64, len(d.pred))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		memoryFloor(d.pred, d.target, d.inside, d.outside, dst)
	}
}

var benchCache = map[string]*benchData{}

func data(size string) *benchData {
	if d, ok := benchCache[size]; ok {
		return d
	}
	d := newBenchData(benchShapes[size])
	benchCache[size] = d
	return d
}

func benchAll(b *testing.B, size string) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		d := data(size)
		b.Run(fmt.Sprintf("%v/forward", dt), func(b *testing.B) { benchGraph(b, d, dt, fusedForward) })
		b.Run(fmt.Sprintf("%v/fwdbwd", dt), func(b *testing.B) { benchGraph(b, d, dt, fusedForwardBackward) })
		b.Run(fmt.Sprintf("%v/composed", dt), func(b *testing.B) { benchGraph(b, d, dt, composedForwardBackward) })
		b.Run(fmt.Sprintf("%v/floor", dt), func(b *testing.B) { benchFloor(b, d, dt) })
	}
}

func BenchmarkSmoothL1_1k(b *testing.B)    { benchAll(b, "1k") }
func BenchmarkSmoothL1_64k(b *testing.B)   { benchAll(b, "64k") }
func BenchmarkSmoothL1_2_36M(b *testing.B) { benchAll(b, "2.36M") }

// BenchmarkKernels times the kernels alone on the 2.36M float32 workload, without gorgonia or
// allocation: the forward's sum, the forward's sum that also saves the gradient factor (a
// training step's forward), the recomputed gradient (the fallback), the in-place scaling by an
// upstream other than 1, and the memory floor. What the graph adds is the difference with
// BenchmarkSmoothL1_2_36M.
func BenchmarkKernels(b *testing.B) {
	d := data("2.36M")
	p, _ := paramsFromSigma(3)
	in := inputs[float32]{d.pred32, d.target32, d.in32, d.out32}
	b.Run("sum", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sumLoss(&p, in)
		}
	})
	out := make([]float32, len(d.pred32))
	b.Run("sumsave", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sumLossSave(&p, in, 1e-3, out)
		}
	})
	b.Run("scale", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			scaleInPlace(out, 0.5)
		}
	})
	b.Run("floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			memoryFloor(d.pred32, d.target32, d.in32, d.out32, out)
		}
	})
	b.Run("grad", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			gradPred(&p, in, nil, 1e-3, out)
		}
	})
}
