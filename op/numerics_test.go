package op

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/gradcheck"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestEmptyThroughGrad: on empty inputs every reduction gives PyTorch's value (Sum 0; Mean NaN;
// SumDims NaN when nothing remains, as 0/0; None an empty tensor), and G.Grad followed by RunAll
// (TapeMachine), or the LispMachine, gives empty gradients for pred and, with WithTargetGrad,
// target: in float32 and float64, shapes (0) and (0, 3). gorgonia's Neg and Dense.Data panic on
// empty tensors, inside the goroutine RunAll starts, so the cases run in a child process.
func TestEmptyThroughGrad(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	type reduction struct {
		name string
		opt  Option
		want float64 // the loss on empty inputs (NaN matches NaN)
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, shape := range [][]int{{0}, {0, 3}} {
			reductions := []reduction{{"sum", WithReduction(Sum), 0}, {"mean", WithReduction(Mean), math.NaN()}, {"none", WithReduction(None), 0}}
			if len(shape) == 2 {
				// sum over axis 1 leaves 0 elements: 0 * (1/0) = NaN; over both axes: the sum, 0
				reductions = append(reductions, reduction{"dims1", WithSumDims(1), math.NaN()}, reduction{"dimsAll", WithSumDims(0, 1), 0})
			}
			for _, r := range reductions {
				for _, targetGrad := range []bool{false, true} {
					for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
						name := fmt.Sprintf("%v/%v/%s/targetGrad=%t/%v", dt, shape, r.name, targetGrad, machine)
						g := G.NewGraph()
						mk := func(name string) *G.Node {
							v := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
							return G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithValue(v), G.WithName(name))
						}
						p, q := mk("p"), mk("q")
						opts := []Option{r.opt, WithSigma(3)}
						if targetGrad {
							opts = append(opts, WithTargetGrad())
						}
						l, err := SmoothL1(p, q, opts...)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						if r.name == "none" {
							// a None loss is not a cost; its gradient is exercised by the diff op
							// directly below
							m := G.NewTapeMachine(g)
							if err := m.RunAll(); err != nil {
								t.Fatalf("%s: %v", name, err)
							}
							m.Close()
							if l.Value().Shape().TotalSize() != 0 {
								t.Fatalf("%s: loss %v, want an empty tensor", name, l.Value())
							}
							o := l.Op().(smoothL1Op)
							up := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
							d, err := smoothL1DiffOp{o}.Do(p.Value(), q.Value(), l.Value(), up)
							if err != nil || d.Shape().TotalSize() != 0 {
								t.Fatalf("%s: gradient %v, %v", name, d, err)
							}
							continue
						}
						var grads G.Nodes
						var m G.VM
						if machine == gradcheck.Tape {
							wrt := G.Nodes{p}
							if targetGrad {
								wrt = append(wrt, q)
							}
							if grads, err = G.Grad(l, wrt...); err != nil {
								t.Fatalf("%s: %v", name, err)
							}
							m = G.NewTapeMachine(g)
						} else {
							m = G.NewLispMachine(g)
						}
						if err := m.RunAll(); err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						m.Close()
						if got := float64s(l.Value())[0]; !closeTo(got, r.want, 0, 0) {
							t.Fatalf("%s: loss %v, want %v", name, got, r.want)
						}
						var vals []G.Value
						for _, gn := range grads {
							vals = append(vals, gn.Value())
						}
						if machine == gradcheck.Lisp {
							dp, err := p.Grad()
							if err != nil {
								t.Fatalf("%s: %v", name, err)
							}
							vals = append(vals, dp)
						}
						for k, v := range vals {
							if v == nil || !v.Shape().Eq(tensor.Shape(shape)) {
								t.Fatalf("%s: gradient %d is %v of shape %v, want shape %v", name, k, v, values.ShapeOf(v), shape)
							}
						}
					}
				}
			}
		}
	}
}

// TestNaNInfPropagation: NaN and Inf in pred or target propagate as in PyTorch: a NaN residual
// gives a NaN loss term and a NaN gradient; an infinite residual gives an infinite loss term and
// a gradient of ±1 (sign). Residuals (NaN, +Inf, -Inf, 0.5), sigma 1, Sum, elementwise check on
// None: loss (NaN, +Inf, +Inf, 0.125), dpred (NaN, 1, -1, 0.5).
func TestNaNInfPropagation(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
			inputs := []gradcheck.Input{
				{Name: "pred", Value: dense(dt, []int{4}, []float64{math.NaN(), math.Inf(1), 0, 0.5}), Wrt: true},
				{Name: "target", Value: dense(dt, []int{4}, []float64{0, 0, math.Inf(1), 0}), Wrt: true},
			}
			up := dense(dt, []int{4}, []float64{1, 1, 1, 1})
			inputs = append(inputs, gradcheck.Input{Name: "upstream", Value: up})
			build := buildLoss([]Option{WithSigma(1), WithReduction(None)}, false, true)
			grads, err := gradcheck.Analytic(build, inputs, machine)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "dpred", grads[0], []float64{math.NaN(), 1, -1, 0.5}, 0, 0)
			assertClose(t, "dtarget", grads[1], []float64{math.NaN(), -1, 1, -0.5}, 0, 0)
			g := G.NewGraph()
			p := node(g, "p", inputs[0].Value)
			q := node(g, "q", inputs[1].Value)
			l := G.Must(SmoothL1(p, q, WithSigma(1), WithReduction(None)))
			m := G.NewTapeMachine(g)
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			assertClose(t, "loss", float64s(l.Value()), []float64{math.NaN(), math.Inf(1), math.Inf(1), 0.125}, 0, 0)
		}
	}
}

// TestHugeResidualFloat32: a residual of 1e30 - (-1e30) = 2e30 in float32 takes the linear branch
// and stays finite: f = 2e30 - 0.5/9 (≈ 2e30, representable in float32, max 3.4e38); gradient
// sign = 1. The quadratic form would overflow (4e60).
func TestHugeResidualFloat32(t *testing.T) {
	g := G.NewGraph()
	p := node(g, "p", dense(tensor.Float32, []int{2}, []float64{1e30, 0}))
	q := node(g, "q", dense(tensor.Float32, []int{2}, []float64{-1e30, 0}))
	l := G.Must(SmoothL1(p, q, WithSigma(3), WithReduction(Sum)))
	grads := mustGrad(t, l, p)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := float64s(l.Value())[0]
	want := float64(float32(1e30)) * 2
	if math.IsInf(got, 0) || math.IsNaN(got) || math.Abs(got-want) > 1e-6*want {
		t.Fatalf("loss %v, want about %v and finite", got, want)
	}
	assertClose(t, "grad", float64s(grads[0].Value()), []float64{1, 0}, 0, 0)
}

// TestFloat32Sum10M: a float32 sum over 10M elements is within 1e-6 relative of a float64
// reference computed from the same float32 values (sigma 1, random residuals).
func TestFloat32Sum10M(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 10_000_000
	rng := rand.New(rand.NewSource(8))
	pred := make([]float32, n)
	target := make([]float32, n)
	ref := 0.0
	for i := range pred {
		pred[i] = float32(rng.NormFloat64())
		target[i] = float32(rng.NormFloat64())
		x := float64(pred[i]) - float64(target[i])
		if math.Abs(x) < 1 {
			ref += 0.5 * x * x
		} else {
			ref += math.Abs(x) - 0.5
		}
	}
	g := G.NewGraph()
	p := G.NewTensor(g, tensor.Float32, 1, G.WithShape(n), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(pred))), G.WithName("p"))
	q := G.NewTensor(g, tensor.Float32, 1, G.WithShape(n), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(target))), G.WithName("q"))
	l := G.Must(SmoothL1(p, q, WithSigma(1), WithReduction(Sum)))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := float64s(l.Value())[0]
	if rel := math.Abs(got-ref) / ref; rel > 1e-6 {
		t.Fatalf("float32 sum %v, float64 reference %v: relative error %.3g", got, ref, rel)
	}
}

// TestDeterministicParallel: 300,000 elements (above the parallel threshold, 19 chunks) give
// bit-identical losses and gradients run to run and with GOMAXPROCS 1 and 2: sums are formed per
// fixed chunk and added in chunk order.
func TestDeterministicParallel(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	n := 300_000
	pred, target, inside := residualsAwayFromKinks(rng, n, 1.0/9, 0, true)
	outside := make([]float64, n)
	for i := range outside {
		outside[i] = rng.Float64()
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		inputs := []gradcheck.Input{
			{Name: "pred", Value: dense(dt, []int{n}, pred), Wrt: true},
			{Name: "target", Value: dense(dt, []int{n}, target), Wrt: true},
			{Name: "inside", Value: dense(dt, []int{n}, inside)},
			{Name: "outside", Value: dense(dt, []int{n}, outside)},
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return SmoothL1(in[0], in[1], WithSigma(3), WithWeights(in[2], in[3]), WithReduction(Mean), WithTargetGrad())
		}
		run := func(procs int) (float64, [][]float64) {
			prev := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(prev)
			v, err := gradcheck.Forward(build, []string{"pred", "target", "inside", "outside"},
				[]*tensor.Dense{inputs[0].Value, inputs[1].Value, inputs[2].Value, inputs[3].Value})
			if err != nil {
				t.Fatal(err)
			}
			grads, err := gradcheck.Analytic(build, inputs, gradcheck.Tape)
			if err != nil {
				t.Fatal(err)
			}
			return v, grads
		}
		v0, g0 := run(2)
		for _, procs := range []int{2, 1} {
			v, gr := run(procs)
			if math.Float64bits(v) != math.Float64bits(v0) {
				t.Fatalf("%v GOMAXPROCS=%d: loss %v, first run %v", dt, procs, v, v0)
			}
			for k := range gr {
				for i := range gr[k] {
					if math.Float64bits(gr[k][i]) != math.Float64bits(g0[k][i]) {
						t.Fatalf("%v GOMAXPROCS=%d: gradient %d[%d] differs", dt, procs, k, i)
					}
				}
			}
		}
	}
}
