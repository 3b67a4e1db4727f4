package op

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// sameSliceBits reports whether a and b hold the same float64 bits element for element (any NaN
// matches any NaN).
func sameSliceBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameBits(a[i], b[i]) {
			return false
		}
	}
	return true
}

// viewOf returns a view of shape (rows, cols) whose elements, read row-major, are data: kind
// "columns" is columns 1..cols of a wider tensor, "transposed" the .T() of a (cols, rows) tensor,
// "contiguous" a plain tensor (the reference).
func viewOf(t *testing.T, kind string, dt tensor.Dtype, rows, cols int, data []float64) *tensor.Dense {
	t.Helper()
	switch kind {
	case "columns":
		wide := make([]float64, rows*(cols+2))
		for i := 0; i < rows; i++ {
			for j := 0; j < cols+2; j++ {
				wide[i*(cols+2)+j] = 1e6 + float64(i*100+j) // garbage outside the view
			}
			for j := 0; j < cols; j++ {
				wide[i*(cols+2)+j+1] = data[i*cols+j]
			}
		}
		v, err := dense(dt, []int{rows, cols + 2}, wide).Slice(nil, tensor.S(1, cols+1))
		if err != nil {
			t.Fatal(err)
		}
		return v.(*tensor.Dense)
	case "transposed":
		tr := make([]float64, rows*cols)
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				tr[j*rows+i] = data[i*cols+j]
			}
		}
		d := dense(dt, []int{cols, rows}, tr)
		if err := d.T(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return dense(dt, []int{rows, cols}, data)
}

// lossRun is what one evaluation gives: the loss values and the gradients of pred and target.
type lossRun struct {
	loss, dpred, dtarget []float64
}

// runWithValues builds SmoothL1 (sigma 3, both weights, WithTargetGrad) over the four values, with
// the cost Σ upstream ⊙ loss for None, runs it on the machine and returns loss and gradients. It
// also checks that every gradient has its node's shape and is not a view.
func runWithValues(t *testing.T, vals []*tensor.Dense, up *tensor.Dense, opt Option, machine gradcheck.Machine) lossRun {
	t.Helper()
	g := G.NewGraph()
	var n []*G.Node
	for i, name := range []string{"pred", "target", "inside", "outside"} {
		n = append(n, G.NewTensor(g, vals[i].Dtype(), vals[i].Dims(), G.WithShape(vals[i].Shape().Clone()...), G.WithValue(vals[i]), G.WithName(name)))
	}
	l, err := SmoothL1(n[0], n[1], WithSigma(3), WithWeights(n[2], n[3]), opt, WithTargetGrad())
	if err != nil {
		t.Fatal(err)
	}
	cost := l
	if l.Shape().TotalSize() > 1 || len(l.Shape()) > 0 {
		u := G.NewTensor(g, up.Dtype(), up.Dims(), G.WithShape(up.Shape().Clone()...), G.WithValue(up), G.WithName("upstream"))
		cost = G.Must(G.Sum(G.Must(G.HadamardProd(l, u))))
	}
	var grads G.Nodes
	var m G.VM
	if machine == gradcheck.Tape {
		grads = mustGrad(t, cost, n[0], n[1])
		m = G.NewTapeMachine(g)
	} else {
		m = G.NewLispMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	var gv []G.Value
	if machine == gradcheck.Tape {
		gv = []G.Value{grads[0].Value(), grads[1].Value()}
	} else {
		for _, x := range n[:2] {
			v, err := x.Grad()
			if err != nil {
				t.Fatal(err)
			}
			gv = append(gv, v)
		}
	}
	for k, v := range gv {
		d, ok := v.(*tensor.Dense)
		// the LispMachine's buffers are gorgonia's, made like the node's value (a view's clone
		// keeps its strides); the TapeMachine's are the op's own
		if !ok || !d.Shape().Eq(vals[0].Shape()) || machine == gradcheck.Tape && (d.IsView() || d.RequiresIterator()) {
			t.Fatalf("gradient %d is %T of shape %v (view: %t), want a contiguous tensor of shape %v", k, v, v.Shape(), ok && d.IsView(), vals[0].Shape())
		}
	}
	return lossRun{append([]float64(nil), float64s(l.Value())...), float64s(gv[0]), float64s(gv[1])}
}

// TestViewsEveryArgument: a view (a column slice, or a transposed tensor) bound as pred, target
// or either weight gives exactly the bits of a contiguous copy of the same values: loss and both
// gradients, every reduction, both dtypes, both machines. Before values.Contiguous the op read a
// view's whole backing span (a crash inside RunAll's goroutine for a column slice, wrong values
// for a transpose), so the cases run in a child process.
func TestViewsEveryArgument(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	rng := rand.New(rand.NewSource(21))
	const rows, cols = 4, 3
	data := make([][]float64, 5) // pred, target, inside, outside, upstream
	for k := range data {
		data[k] = make([]float64, rows*cols)
		for i := range data[k] {
			data[k][i] = rng.NormFloat64()
		}
	}
	reductions := map[string]Option{"sum": WithReduction(Sum), "mean": WithReduction(Mean), "none": WithReduction(None), "dims1": WithSumDims(1)}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for rname, opt := range reductions {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				contiguous := func() []*tensor.Dense {
					var v []*tensor.Dense
					for k := 0; k < 4; k++ {
						v = append(v, viewOf(t, "contiguous", dt, rows, cols, data[k]))
					}
					return v
				}
				up := viewOf(t, "contiguous", dt, rows, cols, data[4])
				want := runWithValues(t, contiguous(), up, opt, machine)
				for pos, name := range []string{"pred", "target", "insideW", "outsideW"} {
					for _, kind := range []string{"columns", "transposed"} {
						vals := contiguous()
						vals[pos] = viewOf(t, kind, dt, rows, cols, data[pos])
						got := runWithValues(t, vals, up, opt, machine)
						what := fmt.Sprintf("%v/%s/%v: %s as a %s view", dt, rname, machine, name, kind)
						if !sameSliceBits(got.loss, want.loss) || !sameSliceBits(got.dpred, want.dpred) || !sameSliceBits(got.dtarget, want.dtarget) {
							t.Fatalf("%s: got %+v, want %+v (a contiguous copy)", what, got, want)
						}
					}
				}
			}
		}
	}
}

// TestViewUpstreams: the upstream gradient of a None loss, and the second-order upstream, given as
// views, give the bits of contiguous copies (the diff ops are called directly: a machine always
// hands them its own contiguous tensors).
func TestViewUpstreams(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	rng := rand.New(rand.NewSource(22))
	const rows, cols = 3, 4
	mk := func() []float64 {
		x := make([]float64, rows*cols)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		return x
	}
	pred, target, up, u := mk(), mk(), mk(), mk()
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g := G.NewGraph()
		p := node(g, "p", dense(dt, []int{rows, cols}, pred))
		q := node(g, "q", dense(dt, []int{rows, cols}, target))
		l := G.Must(SmoothL1(p, q, WithSigma(2), WithReduction(None)))
		o := l.Op().(smoothL1Op)
		out, err := o.Do(p.Value(), q.Value())
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"columns", "transposed"} {
			ref := viewOf(t, "contiguous", dt, rows, cols, up)
			view := viewOf(t, kind, dt, rows, cols, up)
			a, err1 := smoothL1DiffOp{o}.Do(p.Value(), q.Value(), out, ref)
			b, err2 := smoothL1DiffOp{o}.Do(p.Value(), q.Value(), out, view)
			if err1 != nil || err2 != nil || !sameSliceBits(float64s(a), float64s(b)) {
				t.Fatalf("%v %s upstream: %v (%v), contiguous %v (%v)", dt, kind, b, err2, a, err1)
			}
			for _, wrtGrad := range []bool{false, true} {
				d2 := smoothL1Diff2Op{fwd: o, wrtGrad: wrtGrad}
				uRef, uView := viewOf(t, "contiguous", dt, rows, cols, u), viewOf(t, kind, dt, rows, cols, u)
				a, err1 := d2.Do(p.Value(), q.Value(), out, view, uRef)
				b, err2 := d2.Do(p.Value(), q.Value(), out, ref, uView)
				if err1 != nil || err2 != nil || !sameSliceBits(float64s(a), float64s(b)) {
					t.Fatalf("%v %s second order (wrtGrad %t): %v (%v), contiguous %v (%v)", dt, kind, wrtGrad, b, err2, a, err1)
				}
			}
		}
	}
}

// TestConstantsAccepted: G.NewConstant targets and weights (which belong to no graph) give the
// results of the same values bound to variables, on both machines; a constant pred with a variable
// target works too; all-constant inputs are a clear error (gorgonia has no graph to build in).
func TestConstantsAccepted(t *testing.T) {
	rng := rand.New(rand.NewSource(23))
	pred, target, inside := residualsAwayFromKinks(rng, 6, 1.0/9, 0.01, true)
	outside := []float64{0.5, 1, 2, 0.25, 1, 3}
	shape := []int{2, 3}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
			run := func(constant bool) []float64 {
				g := G.NewGraph()
				p := node(g, "pred", dense(dt, shape, pred))
				var q, wi, wo *G.Node
				if constant {
					// constants are named per dtype (gorgonia-notes: NewConstant names collide)
					q = G.NewConstant(dense(dt, shape, target), G.WithName("target-"+dt.String()))
					wi = G.NewConstant(dense(dt, shape, inside), G.WithName("inside-"+dt.String()))
					wo = G.NewConstant(dense(dt, shape, outside), G.WithName("outside-"+dt.String()))
				} else {
					q, wi, wo = node(g, "target", dense(dt, shape, target)), node(g, "inside", dense(dt, shape, inside)), node(g, "outside", dense(dt, shape, outside))
				}
				l, err := SmoothL1Loss(p, q, wi, wo, 3)
				if err != nil {
					t.Fatalf("%v constant=%t: %v", dt, constant, err)
				}
				var grads G.Nodes
				var m G.VM
				if machine == gradcheck.Tape {
					grads = mustGrad(t, l, p)
					m = G.NewTapeMachine(g)
				} else {
					m = G.NewLispMachine(g)
				}
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatalf("%v constant=%t: %v", dt, constant, err)
				}
				var dp G.Value
				if machine == gradcheck.Tape {
					dp = grads[0].Value()
				} else {
					dp, _ = p.Grad()
				}
				return append(float64s(l.Value()), float64s(dp)...)
			}
			if got, want := run(true), run(false); !sameSliceBits(got, want) {
				t.Fatalf("%v %v: constants give %v, variables %v", dt, machine, got, want)
			}
		}
	}
	// a constant pred, a variable target with its gradient: residuals (0.5, -2), sigma 1, Sum →
	// dtarget = -f'(x) = (-0.5, 1)
	g := G.NewGraph()
	p := G.NewConstant(dense(tensor.Float64, []int{2}, []float64{0.5, -2}), G.WithName("constpred"))
	q := node(g, "target", dense(tensor.Float64, []int{2}, []float64{0, 0}))
	l, err := SmoothL1(p, q, WithSigma(1), WithReduction(Sum), WithTargetGrad())
	if err != nil {
		t.Fatal(err)
	}
	d := mustGrad(t, l, q)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "dtarget", float64s(d[0].Value()), []float64{-0.5, 1}, 0, 0)
	c1 := G.NewConstant(dense(tensor.Float64, []int{2}, []float64{1, 2}), G.WithName("c1"))
	c2 := G.NewConstant(dense(tensor.Float64, []int{2}, []float64{0, 0}), G.WithName("c2"))
	if _, err := SmoothL1(c1, c2); err == nil || !strings.Contains(err.Error(), "all constants") {
		t.Fatalf("all-constant inputs: %v, want an error saying they are all constants", err)
	}
}

// savedCase is one graph of TestSavedFactorSameBits.
type savedCase struct {
	name string
	none bool // the case reads the upstream input (a None loss)
	// build returns the cost and the gradient nodes to read, for inputs pred, target, inside,
	// outside and a None upstream.
	build func(g *G.ExprGraph, in []*G.Node) (cost *G.Node, read G.Nodes, err error)
}

// TestSavedFactorSameBits: the saved-factor path of the diff op gives the same bits as the
// recomputation (neverSave), on the TapeMachine and the LispMachine, both dtypes, in the cases
// where a save could go stale: two losses on the same inputs, a gradient asked twice (two diff
// nodes on one forward), values changed in place between runs, None with a tensor upstream, an
// upstream other than 1. The save must really be taken (the test is not vacuous).
func TestSavedFactorSameBits(t *testing.T) {
	rng := rand.New(rand.NewSource(24))
	shape := []int{3, 4, 5}
	n := tensor.Shape(shape).TotalSize()
	cases := []savedCase{
		{"seed loss", false, func(g *G.ExprGraph, in []*G.Node) (*G.Node, G.Nodes, error) {
			l, err := SmoothL1Loss(in[0], in[1], in[2], in[3], 3, 1, 2)
			if err != nil {
				return nil, nil, err
			}
			return l, nil, nil
		}},
		{"upstream 2.5", false, func(g *G.ExprGraph, in []*G.Node) (*G.Node, G.Nodes, error) {
			l, err := SmoothL1(in[0], in[1], WithBeta(1.0/9), WithWeights(in[2], in[3]), WithReduction(Mean))
			if err != nil {
				return nil, nil, err
			}
			c, err := G.Mul(l, scalarConst(in[0].Dtype(), 2.5))
			return c, nil, err
		}},
		{"none with a tensor upstream", true, func(g *G.ExprGraph, in []*G.Node) (*G.Node, G.Nodes, error) {
			l, err := SmoothL1(in[0], in[1], WithSigma(1), WithWeights(in[2], in[3]), WithReduction(None))
			if err != nil {
				return nil, nil, err
			}
			c, err := G.Sum(G.Must(G.HadamardProd(l, in[4])))
			return c, nil, err
		}},
		{"two losses on the same inputs", false, func(g *G.ExprGraph, in []*G.Node) (*G.Node, G.Nodes, error) {
			a, err := SmoothL1(in[0], in[1], WithSigma(3), WithWeights(in[2], in[3]), WithReduction(Sum), WithTargetGrad())
			if err != nil {
				return nil, nil, err
			}
			b, err := SmoothL1(in[0], in[1], WithSigma(1), WithReduction(Mean))
			if err != nil {
				return nil, nil, err
			}
			c, err := G.Add(a, b)
			return c, nil, err
		}},
		{"gradient asked twice", false, func(g *G.ExprGraph, in []*G.Node) (*G.Node, G.Nodes, error) {
			l, err := SmoothL1(in[0], in[1], WithSigma(3), WithWeights(in[2], in[3]), WithSumDims(1))
			if err != nil {
				return nil, nil, err
			}
			// a second diff node on the same forward, with upstream 3: only one can take the save
			first, err := G.Grad(l, in[0])
			if err != nil {
				return nil, nil, err
			}
			thrice := G.Must(G.Mul(l, scalarConst(in[0].Dtype(), 3)))
			return thrice, first, nil
		}},
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, c := range cases {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				if c.name == "gradient asked twice" && machine == gradcheck.Lisp {
					continue // G.Grad is not for the LispMachine
				}
				name := fmt.Sprintf("%v/%s/%v", dt, c.name, machine)
				steps := make([][][]float64, 3) // three steps of input values
				for s := range steps {
					pred, target, inside := residualsAwayFromKinks(rng, n, 1.0/9, 0, true)
					outside, up := make([]float64, n), make([]float64, n)
					for i := range outside {
						outside[i], up[i] = rng.Float64(), rng.NormFloat64()
					}
					steps[s] = [][]float64{pred, target, inside, outside, up}
				}
				saved := runSteps(t, name, c, dt, shape, steps, machine, false)
				neverSave = true
				recomputed := runSteps(t, name, c, dt, shape, steps, machine, true)
				neverSave = false
				for s := range saved {
					for k := range saved[s] {
						if !sameSliceBits(saved[s][k], recomputed[s][k]) {
							t.Fatalf("%s step %d gradient %d: saved path %v, recomputation %v", name, s, k, saved[s][k][:4], recomputed[s][k][:4])
						}
					}
				}
			}
		}
	}
}

// runSteps runs case c for each step's values, bound in place into the same input tensors, and
// returns every step's gradients of pred (and of the extra gradient nodes the case makes), copied.
// It checks that the save was taken when saving is on.
func runSteps(t *testing.T, name string, c savedCase, dt tensor.Dtype, shape []int, steps [][][]float64, machine gradcheck.Machine, never bool) [][][]float64 {
	t.Helper()
	g := G.NewGraph()
	var in []*G.Node
	var backing []*tensor.Dense
	names := []string{"pred", "target", "inside", "outside", "upstream"}
	if !c.none {
		names = names[:4] // the LispMachine takes an unused input for a second cost
	}
	for k, nm := range names {
		backing = append(backing, dense(dt, shape, steps[0][k]))
		in = append(in, node(g, nm, backing[k]))
	}
	cost, extra, err := c.build(g, in)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var read G.Nodes
	if machine == gradcheck.Tape {
		grads, err := G.Grad(cost, in[0])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		read = append(grads, extra...)
	}
	var ops []smoothL1Op
	for _, nd := range g.AllNodes() {
		if o, ok := nd.Op().(smoothL1Op); ok {
			ops = append(ops, o)
		}
	}
	taken := func() int64 {
		s := int64(0)
		for _, o := range ops {
			s += o.save.taken.Load()
		}
		return s
	}
	var out [][][]float64
	tape := G.NewTapeMachine(g)
	defer tape.Close()
	for _, vals := range steps {
		for k := range backing {
			// new values bound in place: the same tensors, as a training loop refills its inputs
			refill(backing[k], vals[k])
		}
		var got [][]float64
		if machine == gradcheck.Tape {
			if err := tape.RunAll(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range read {
				got = append(got, float64s(r.Value()))
			}
			tape.Reset()
		} else {
			m := G.NewLispMachine(g) // a new machine per step (the LispMachine does not rerun)
			if err := m.RunAll(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			dp, err := in[0].Grad()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, float64s(dp))
			m.Close()
		}
		out = append(out, got)
	}
	// the first step saves nothing on the LispMachine (no gradient was asked before its DoDiff)
	if !never && taken() == 0 {
		t.Fatalf("%s: the saved factor was never taken", name)
	}
	if never && taken() != 0 {
		t.Fatalf("%s: a save was taken with saving off", name)
	}
	return out
}

// refill writes vals into d's existing backing (float32 or float64), as a training loop refills
// its input tensors between steps.
func refill(d *tensor.Dense, vals []float64) {
	switch b := d.Data().(type) {
	case []float64:
		copy(b, vals)
	case []float32:
		for i := range b {
			b[i] = float32(vals[i])
		}
	}
}

// scalarConst is a constant scalar of dtype dt, named by dtype and value (gorgonia merges
// constants by name).
func scalarConst(dt tensor.Dtype, v float64) *G.Node {
	name := fmt.Sprintf("const-%v-%v", dt, v)
	if dt == tensor.Float32 {
		return G.NewConstant(float32(v), G.WithName(name))
	}
	return G.NewConstant(v, G.WithName(name))
}

// TestOpValueReusedElsewhere: a loss node's op value applied again (Node.Op with G.ApplyOp) to
// the same pred and another target must not disturb the first node's save: the second forward
// runs after the first node's gradient was handed out (its target depends on that gradient),
// and the first gradient is read after it. Hand-derived, sigma 3 (beta 1/9), Sum, pred 0:
// target 0.05 gives x = -0.05, f' = 9x = -0.45; target -0.07 gives 0.63; the second loss is
// 4 * 4.5 * 0.07^2 = 0.0882, so sink = Σ dL1/dp * L2 = 4 * -0.45 * 0.0882.
func TestOpValueReusedElsewhere(t *testing.T) {
	g := G.NewGraph()
	mk := func(name string, v float64) *G.Node {
		return node(g, name, dense(tensor.Float64, []int{4}, []float64{v, v, v, v}))
	}
	p, t1, t2 := mk("p", 0), mk("t1", 0.05), mk("t2", -0.07)
	l1 := G.Must(SmoothL1(p, t1, WithSigma(3), WithReduction(Sum)))
	g1 := mustGrad(t, l1, p)
	zero := G.NewConstant(0.0, G.WithName("zero64"))
	t2dep := G.Must(G.Add(t2, G.Must(G.Mul(zero, G.Must(G.Sum(g1[0]))))))
	l2, err := G.ApplyOp(l1.Op(), p, t2dep)
	if err != nil {
		t.Fatal(err)
	}
	sink := G.Must(G.Sum(G.Must(G.Mul(g1[0], l2))))
	g2 := mustGrad(t, l2, p)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "dL1/dp", float64s(g1[0].Value()), []float64{-0.45, -0.45, -0.45, -0.45}, 1e-15, 1e-14)
	assertClose(t, "dL2/dp", float64s(g2[0].Value()), []float64{0.63, 0.63, 0.63, 0.63}, 1e-15, 1e-14)
	assertClose(t, "sink", float64s(sink.Value()), []float64{4 * -0.45 * 0.0882}, 1e-15, 1e-13)
}

// TestSaveReusedWhenPredIsComputed: in a network pred is an op's output, a new tensor every run
// after Reset. The save must still be taken every step, into one buffer allocated once (no
// gradient-sized allocation per step), and must not keep the last run's values alive once taken.
func TestSaveReusedWhenPredIsComputed(t *testing.T) {
	const n = 1 << 16
	g := G.NewGraph()
	x := node(g, "x", dense(tensor.Float64, []int{n}, make([]float64, n)))
	q := node(g, "q", dense(tensor.Float64, []int{n}, make([]float64, n)))
	pred := G.Must(G.Mul(x, G.NewConstant(2.0, G.WithName("two64"))))
	l := G.Must(SmoothL1(pred, q, WithSigma(3)))
	mustGrad(t, l, x)
	o := l.Op().(smoothL1Op)
	m := G.NewTapeMachine(g)
	defer m.Close()
	buffers := map[*tensor.Dense]bool{}
	const steps = 10
	for s := 0; s < steps; s++ {
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		o.save.mu.Lock()
		buffers[o.save.buf] = true
		if o.save.read != nil || o.save.out != nil {
			t.Fatalf("step %d: the taken save still references the values it was made from", s)
		}
		o.save.mu.Unlock()
		m.Reset()
	}
	if got := o.save.taken.Load(); got != steps {
		t.Fatalf("the save was taken %d times in %d steps (recomputed %d)", got, steps, o.save.recomputed.Load())
	}
	if len(buffers) != 1 {
		t.Fatalf("%d distinct save buffers over %d steps, want 1", len(buffers), steps)
	}
}
