package op

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSecondOrder: a Hessian-vector product through G.Grad twice. The checked scalar is
// s = <v, dL/dpred>; its gradient is H v, checked against finite differences of the first
// gradient (float64, 1e-6) for sigma 1 and 3, weights, mean/sum/dims/none reductions.
func TestSecondOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	shape := []int{2, 3, 2}
	n := 12
	for _, lp := range lossParams[1:3] {
		for _, rc := range reductionCases {
			t.Run(lp.name+"/"+rc.name, func(t *testing.T) {
				pred, target, inside := residualsAwayFromKinks(rng, n, lp.beta, 0.05, true)
				outside, v, up := make([]float64, n), make([]float64, n), make([]float64, n)
				for i := range v {
					outside[i], v[i], up[i] = rng.Float64(), rng.NormFloat64(), rng.NormFloat64()
				}
				none := rc.name == "none"
				inputs := []gradcheck.Input{
					{Name: "pred", Value: dense(tensor.Float64, shape, pred), Wrt: true},
					{Name: "target", Value: dense(tensor.Float64, shape, target), Wrt: true},
					{Name: "inside", Value: dense(tensor.Float64, shape, inside)},
					{Name: "outside", Value: dense(tensor.Float64, shape, outside)},
					{Name: "v", Value: dense(tensor.Float64, shape, v)},
					{Name: "upstream", Value: dense(tensor.Float64, shape, up)},
				}
				loss := buildLoss(append([]Option{lp.opt}, rc.opts(len(shape))...), true, none)
				hvp := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					l, err := loss(g, in)
					if err != nil {
						return nil, err
					}
					grads, err := G.Grad(l, in[0])
					if err != nil {
						return nil, err
					}
					return G.Sum(G.Must(G.HadamardProd(grads[0], in[4])))
				}
				if err := gradcheck.Graph(hvp, inputs, gradcheck.Options{Machine: gradcheck.Tape}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestSecondOrderHandDerived: for L = Σ f_sigma=1(pred - target) (Sum), H = diag(the second derivative), so
// H v = v where |x| < 1 and 0 elsewhere. Residuals 0.5 (inside) and 2 (outside), v = (3, 4):
// H v = (1*3, 0*4) = (3, 0).
func TestSecondOrderHandDerived(t *testing.T) {
	g := G.NewGraph()
	pred := node(g, "pred", dense(tensor.Float64, []int{2}, []float64{0.5, 2}))
	target := node(g, "target", dense(tensor.Float64, []int{2}, []float64{0, 0}))
	v := G.NewConstant(dense(tensor.Float64, []int{2}, []float64{3, 4}), G.WithName("v"))
	l := G.Must(SmoothL1(pred, target, WithSigma(1), WithReduction(Sum)))
	d := mustGrad(t, l, pred)
	s := G.Must(G.Sum(G.Must(G.HadamardProd(d[0], v))))
	h := mustGrad(t, s, pred)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	// first derivative: f'(0.5) = 0.5, f'(2) = sign(2) = 1
	assertClose(t, "grad", float64s(d[0].Value()), []float64{0.5, 1}, 0, 0)
	assertClose(t, "hvp", float64s(h[0].Value()), []float64{3, 0}, 0, 0)
}

// TestHashDistinguishesParameters: losses with sigma 1 and 3 over the same inputs in one graph
// are two nodes with two values; so are every other parameter change.
func TestHashDistinguishesParameters(t *testing.T) {
	g := G.NewGraph()
	// residual 0.2: sigma 1 → 0.5*0.04 = 0.02; sigma 3 → |0.2| > 1/9: 0.2 - 0.5/9 = 0.14444…
	pred := node(g, "pred", dense(tensor.Float64, []int{1, 1}, []float64{0.2}))
	target := node(g, "target", dense(tensor.Float64, []int{1, 1}, []float64{0}))
	w := node(g, "w", dense(tensor.Float64, []int{1, 1}, []float64{1}))
	l1 := G.Must(SmoothL1Loss(pred, target, nil, nil, 1))
	l3 := G.Must(SmoothL1Loss(pred, target, nil, nil, 3))
	if l1 == l3 {
		t.Fatal("sigma 1 and sigma 3 losses were merged into one node")
	}
	variants := []*G.Node{
		l1, l3,
		G.Must(SmoothL1(pred, target, WithBeta(1))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithReduction(Sum))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithReduction(None))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithSumDims(0))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithWeights(w, nil))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithWeights(nil, w))),
		G.Must(SmoothL1(pred, target, WithBeta(1), WithTargetGrad())),
	}
	seen := map[*G.Node]int{}
	for i, v := range variants {
		if j, ok := seen[v]; ok {
			t.Fatalf("variants %d (%v) and %d (%v) share a node", i, v.Op(), j, variants[j].Op())
		}
		seen[v] = i
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "sigma1", float64s(l1.Value()), []float64{0.02}, 1e-15, 0)
	assertClose(t, "sigma3", float64s(l3.Value()), []float64{0.2 - 0.5/9}, 1e-15, 0)
	if !strings.Contains(l3.Op().String(), "sigma=3") || !strings.Contains(l3.Op().String(), "dims=[1]") {
		t.Fatalf("String() misses parameters: %v", l3.Op())
	}
}

// TestMachinesAgreeBitwise: TapeMachine (SymDiff) and LispMachine (DoDiff) run the same kernel,
// so their gradients are identical to the last bit, in float32 and float64, up to the sign of
// zero (compared with ==): where an inside weight is 0 the tape's gradient is -0 for a negative
// slope, and the LispMachine adds it into a zeroed buffer, 0 + -0 = +0.
func TestMachinesAgreeBitwise(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	shape := []int{4, 36, 5, 6}
	n := tensor.Shape(shape).TotalSize()
	pred, target, inside := residualsAwayFromKinks(rng, n, 1.0/9, 0, true)
	outside := make([]float64, n)
	for i := range outside {
		outside[i] = 1.0 / 256
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		inputs := []gradcheck.Input{
			{Name: "pred", Value: dense(dt, shape, pred), Wrt: true},
			{Name: "target", Value: dense(dt, shape, target), Wrt: true},
			{Name: "inside", Value: dense(dt, shape, inside)},
			{Name: "outside", Value: dense(dt, shape, outside)},
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return SmoothL1(in[0], in[1], WithSigma(3), WithWeights(in[2], in[3]), WithSumDims(1, 2, 3), WithTargetGrad())
		}
		tape, err := gradcheck.Analytic(build, inputs, gradcheck.Tape)
		if err != nil {
			t.Fatal(err)
		}
		lisp, err := gradcheck.Analytic(build, inputs, gradcheck.Lisp)
		if err != nil {
			t.Fatal(err)
		}
		for k := range tape {
			for i := range tape[k] {
				if tape[k][i] != lisp[k][i] {
					t.Fatalf("%v input %d [%d]: tape %v, lisp %v", dt, k, i, tape[k][i], lisp[k][i])
				}
			}
		}
	}
}

// TestLispMachineAccumulates: pred feeds two losses; DoDiff must add into pred's gradient
// buffer, not overwrite it. Expected: the TapeMachine's gradient of the same sum.
func TestLispMachineAccumulates(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	pred, target, _ := residualsAwayFromKinks(rng, 10, 1.0/9, 0.05, false)
	inputs := []gradcheck.Input{
		{Name: "pred", Value: dense(tensor.Float64, []int{2, 5}, pred), Wrt: true},
		{Name: "target", Value: dense(tensor.Float64, []int{2, 5}, target), Wrt: true},
	}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		a, err := SmoothL1(in[0], in[1], WithSigma(3), WithReduction(Sum), WithTargetGrad())
		if err != nil {
			return nil, err
		}
		b, err := SmoothL1(in[0], in[1], WithSigma(1), WithReduction(Mean), WithTargetGrad())
		if err != nil {
			return nil, err
		}
		return G.Add(a, b)
	}
	tape, err := gradcheck.Analytic(build, inputs, gradcheck.Tape)
	if err != nil {
		t.Fatal(err)
	}
	lisp, err := gradcheck.Analytic(build, inputs, gradcheck.Lisp)
	if err != nil {
		t.Fatal(err)
	}
	for k := range tape {
		assertClose(t, inputs[k].Name, lisp[k], tape[k], 1e-15, 1e-15)
	}
}

// TestFusedEqualsComposed: the op equals the same loss composed from gorgonia primitives in the
// MinBetween form, f(x) = 0.5 sigma^2 m^2 + |x| - m with m = min(|x|, 1/sigma^2), on the
// TapeMachine: values and both gradients to 1e-12.
func TestFusedEqualsComposed(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	shape := []int{2, 8, 3, 3}
	n := tensor.Shape(shape).TotalSize()
	const sigma = 3.0
	pred, target, inside := residualsAwayFromKinks(rng, n, 1/(sigma*sigma), 1e-3, true)
	outside := make([]float64, n)
	for i := range outside {
		outside[i] = rng.Float64()
	}
	run := func(composed bool) [][]float64 {
		g := G.NewGraph()
		p := node(g, "pred", dense(tensor.Float64, shape, pred))
		q := node(g, "target", dense(tensor.Float64, shape, target))
		wi := node(g, "inside", dense(tensor.Float64, shape, inside))
		wo := node(g, "outside", dense(tensor.Float64, shape, outside))
		var l *G.Node
		if composed {
			betaT := make([]float64, n)
			for i := range betaT {
				betaT[i] = 1 / (sigma * sigma)
			}
			beta := G.NewConstant(dense(tensor.Float64, shape, betaT), G.WithName("beta"))
			x := G.Must(G.HadamardProd(wi, G.Must(G.Sub(p, q))))
			ax := G.Must(G.Abs(x))
			m := G.Must(G.MinBetween(ax, beta))
			quad := G.Must(G.Mul(G.Must(G.Square(m)), G.NewConstant(0.5*sigma*sigma)))
			f := G.Must(G.Add(quad, G.Must(G.Sub(ax, m))))
			per := G.Must(G.HadamardProd(wo, f))
			l = G.Must(G.Mean(G.Must(G.Sum(per, 1))))
		} else {
			l = G.Must(SmoothL1(p, q, WithSigma(sigma), WithWeights(wi, wo), WithSumDims(1), WithTargetGrad()))
		}
		grads := mustGrad(t, l, p, q)
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return [][]float64{append([]float64(nil), float64s(l.Value())...),
			append([]float64(nil), float64s(grads[0].Value())...),
			append([]float64(nil), float64s(grads[1].Value())...)}
	}
	fused, composed := run(false), run(true)
	for k, what := range []string{"loss", "dpred", "dtarget"} {
		assertClose(t, what, fused[k], composed[k], 1e-12, 1e-12)
	}
}

// TestBetaZeroIsL1: beta 0 is plain L1: f(x) = |x|, gradient sign(x) and exactly 0 at a zero
// residual (PyTorch 1.13 CPU gives -1 there: pytorch/pytorch#96813). Residuals (-2, 0, 3):
// loss sum = 2 + 0 + 3 = 5, gradient (-1, 0, 1).
func TestBetaZeroIsL1(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
			inputs := []gradcheck.Input{
				{Name: "pred", Value: dense(dt, []int{3}, []float64{-2, 1, 3}), Wrt: true},
				{Name: "target", Value: dense(dt, []int{3}, []float64{0, 1, 0}), Wrt: true},
			}
			build := buildLoss([]Option{WithBeta(0), WithReduction(Sum)}, false, false)
			v, err := gradcheck.Forward(build, []string{"pred", "target"}, []*tensor.Dense{inputs[0].Value, inputs[1].Value})
			if err != nil {
				t.Fatal(err)
			}
			if v != 5 {
				t.Fatalf("%v: loss %v, want 5", dt, v)
			}
			grads, err := gradcheck.Analytic(build, inputs, machine)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, fmt.Sprintf("%v/%v dpred", dt, machine), grads[0], []float64{-1, 0, 1}, 0, 0)
			assertClose(t, fmt.Sprintf("%v/%v dtarget", dt, machine), grads[1], []float64{1, 0, -1}, 0, 0)
		}
	}
}

// TestHuber: Huber(delta) = delta * SmoothL1(beta = delta). Residuals (0.5, 3), delta 2:
// Huber = 0.5*0.25 + 2*(3 - 1) = 0.125 + 4 = 4.125; SmoothL1(beta 2) = 0.25/4 + (3 - 1) = 2.0625.
func TestHuber(t *testing.T) {
	g := G.NewGraph()
	pred := node(g, "pred", dense(tensor.Float64, []int{2}, []float64{0.5, 3}))
	target := node(g, "target", dense(tensor.Float64, []int{2}, []float64{0, 0}))
	l := G.Must(SmoothL1(pred, target, WithBeta(2), WithReduction(Sum)))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := float64s(l.Value())[0]
	if got != 2.0625 || 2*got != 4.125 {
		t.Fatalf("SmoothL1(beta 2) = %v, want 2.0625 (Huber(2) = 4.125)", got)
	}
}

// TestFloat32AccumulatesInFloat64: 2^19 residuals of 1 (f = 0.5, sigma 1) interleaved with 2^19
// residuals of 0.01 (f = 5e-5). A float32 running sum reaches 2^18, where its spacing is 1/32,
// and drops every 5e-5 term (a relative error near 1e-4); the op sums in float64. Expected: the
// same sum done in float64 from the float32 inputs, to 1e-6 relative.
func TestFloat32AccumulatesInFloat64(t *testing.T) {
	n := 1 << 20
	pred := make([]float64, n)
	want := 0.0
	for i := range pred {
		pred[i] = 1
		if i%2 == 1 {
			pred[i] = 0.01 // f = 0.5 * float64(float32(0.01))^2
		}
	}
	for i := range pred {
		x := float64(float32(pred[i]))
		if x < 1 {
			want += 0.5 * x * x
		} else {
			want += x - 0.5
		}
	}
	g := G.NewGraph()
	p := node(g, "pred", dense(tensor.Float32, []int{n}, pred))
	q := node(g, "target", dense(tensor.Float32, []int{n}, make([]float64, n)))
	l := G.Must(SmoothL1(p, q, WithSigma(1), WithReduction(Sum)))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := float64s(l.Value())[0]
	if math.Abs(got-want) > 1e-6*want {
		t.Fatalf("float32 sum %v, float64 reference %v (rel %.3g)", got, want, math.Abs(got-want)/want)
	}
}

// TestTargetGradOptIn: by default the target is data: it gets no gradient node (the graph is one
// node smaller than with WithTargetGrad, whose extra node is the negation), asking for it is
// gorgonia's "Non Differentiable WRTs" error, not a silent zero, and pred's gradient is the same.
// WithoutTargetGrad (deprecated) is the default and overrides an earlier WithTargetGrad.
func TestTargetGradOptIn(t *testing.T) {
	build := func(opts ...Option) (*G.ExprGraph, *G.Node, *G.Node, *G.Node) {
		g := G.NewGraph()
		p := node(g, "p", dense(tensor.Float64, []int{2}, []float64{0.5, 2}))
		q := node(g, "q", dense(tensor.Float64, []int{2}, []float64{0, 0}))
		return g, p, q, G.Must(SmoothL1(p, q, append(opts, WithReduction(Sum))...))
	}
	g1, p1, q1, l1 := build(WithTargetGrad())
	both := mustGrad(t, l1, p1, q1)
	for _, opts := range [][]Option{nil, {WithoutTargetGrad()}, {WithTargetGrad(), WithoutTargetGrad()}} {
		g2, p2, q2, l2 := build(opts...)
		grads := mustGrad(t, l2, p2)
		// the graph with the target's gradient has one node more: its negation
		if n1, n2 := len(g1.AllNodes()), len(g2.AllNodes()); n2 != n1-1 {
			t.Fatalf("%d options: graph sizes %d (target gradient) and %d (default): want one node fewer", len(opts), n1, n2)
		}
		if _, err := G.Grad(l2, q2); err == nil || !strings.Contains(err.Error(), "Non Differentiable") {
			t.Fatalf("gradient with respect to a target that is data: %v", err)
		}
		m := G.NewTapeMachine(g2)
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		// beta 1: f'(0.5) = 0.5, f'(2) = 1
		assertClose(t, "dpred", float64s(grads[0].Value()), []float64{0.5, 1}, 0, 0)
		m.Close()
	}
	m := G.NewTapeMachine(g1)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "dpred (WithTargetGrad)", float64s(both[0].Value()), []float64{0.5, 1}, 0, 0)
	assertClose(t, "dtarget (WithTargetGrad)", float64s(both[1].Value()), []float64{-0.5, -1}, 0, 0)
}

// TestUsePreallocDo: a usable buffer (right dtype and shape) is written in place and returned,
// with the values of Do; an unusable one (wrong shape) is ignored. Scalars reuse a *G.F64.
func TestUsePreallocDo(t *testing.T) {
	g := G.NewGraph()
	p := node(g, "p", dense(tensor.Float64, []int{3}, []float64{0.5, -2, 0}))
	q := node(g, "q", dense(tensor.Float64, []int{3}, []float64{0, 0, 0}))
	none := G.Must(SmoothL1(p, q, WithReduction(None))).Op().(smoothL1Op)
	want, err := none.Do(p.Value(), q.Value())
	if err != nil {
		t.Fatal(err)
	}
	buf := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(3))
	got, err := none.UsePreallocDo(buf, p.Value(), q.Value())
	if err != nil || got != G.Value(buf) {
		t.Fatalf("buffer not used: %v %v", got, err)
	}
	// beta 1: f(0.5) = 0.125, f(-2) = 1.5, f(0) = 0
	assertClose(t, "in place", float64s(got), []float64{0.125, 1.5, 0}, 0, 0)
	assertClose(t, "Do", float64s(want), []float64{0.125, 1.5, 0}, 0, 0)
	wrong := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(4))
	if got, err := none.UsePreallocDo(wrong, p.Value(), q.Value()); err != nil || got == G.Value(wrong) {
		t.Fatalf("a buffer of the wrong shape was used: %v %v", got, err)
	}
	sum := G.Must(SmoothL1(p, q, WithReduction(Sum))).Op().(smoothL1Op)
	scalar := G.NewF64(-1)
	if got, err := sum.UsePreallocDo(scalar, p.Value(), q.Value()); err != nil || got != G.Value(scalar) || float64(*scalar) != 1.625 {
		t.Fatalf("scalar buffer: %v %v (value %v, want 1.625)", got, err, *scalar)
	}
	// the diff op, with no fresh save (the forward above was not asked to save), recomputes into
	// a usable buffer
	d := smoothL1DiffOp{sum}
	gbuf := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(3))
	got, err = d.UsePreallocDo(gbuf, p.Value(), q.Value(), scalar, G.NewF64(1))
	if err != nil || got != G.Value(gbuf) {
		t.Fatalf("gradient buffer not used: %v %v", got, err)
	}
	assertClose(t, "gradient in place", float64s(got), []float64{0.5, -1, 0}, 0, 0)
}
