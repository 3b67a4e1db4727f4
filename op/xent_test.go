package op

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/gradcheck"
	"github.com/detlab/smoothl1/internal/testkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// jsonFloats reads numbers, and "NaN", "Inf", "-Inf" strings, as float64s.
type jsonFloats []float64

func (f *jsonFloats) UnmarshalJSON(b []byte) error {
	var raw []any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = make([]float64, len(raw))
	for i, r := range raw {
		switch v := r.(type) {
		case float64:
			(*f)[i] = v
		case string:
			switch v {
			case "NaN":
				(*f)[i] = math.NaN()
			case "Inf":
				(*f)[i] = math.Inf(1)
			case "-Inf":
				(*f)[i] = math.Inf(-1)
			default:
				return fmt.Errorf("number %q", v)
			}
		default:
			return fmt.Errorf("number %v", r)
		}
	}
	return nil
}

type xentCase struct {
	Name      string     `json:"name"`
	N         int        `json:"n"`
	K         int        `json:"k"`
	Reduction string     `json:"reduction"`
	Ignore    int        `json:"ignore"`
	Logits    jsonFloats `json:"logits"`
	Labels    []int      `json:"labels"`
	Upstream  jsonFloats `json:"upstream"`
	V         jsonFloats `json:"v"`
	Loss      jsonFloats `json:"loss"`
	DLogits   jsonFloats `json:"dlogits"`
	HVP       jsonFloats `json:"hvp"`
}

func loadXent(t *testing.T) []xentCase {
	t.Helper()
	var f struct {
		Cases []xentCase `json:"cases"`
	}
	testkit.ReadJSON(t, "testdata/xent_golden.json", &f)
	if len(f.Cases) < 17 {
		t.Fatalf("%d cross-entropy cases, want 17", len(f.Cases))
	}
	return f.Cases
}

var reductionByName = map[string]Reduction{"none": None, "sum": Sum, "mean": Mean}

// TestXentGolden compares loss, dL/dlogits and a Hessian-vector product with PyTorch 1.13's
// F.cross_entropy (fixture from testdata/gen_xent_fixtures.py), to 1e-12 in float64, on the
// TapeMachine; the gradient also on the LispMachine. Cases: K = 1, 2, 3, 4, 5, ignored rows with
// ignore index -100 and -1, logits scaled by 30, every row ignored (Mean NaN, gradient 0).
func TestXentGolden(t *testing.T) {
	for _, c := range loadXent(t) {
		t.Run(c.Name, func(t *testing.T) {
			labels := make([]float64, c.N)
			for i, y := range c.Labels {
				labels[i] = float64(y)
			}
			build := func(g *G.ExprGraph) (*G.Node, *G.Node, *G.Node) {
				z := node(g, "logits", dense(tensor.Float64, []int{c.N, c.K}, c.Logits))
				y := node(g, "labels", dense(tensor.Float64, []int{c.N}, labels))
				l, err := SoftmaxCrossEntropy(z, y, XentReduction(reductionByName[c.Reduction]), XentIgnoreIndex(c.Ignore))
				if err != nil {
					t.Fatal(err)
				}
				cost := l
				if c.Reduction == "none" {
					up := G.NewConstant(dense(tensor.Float64, []int{c.N}, c.Upstream), G.WithName("upstream"))
					cost = G.Must(G.Sum(G.Must(G.HadamardProd(l, up))))
				}
				return z, l, cost
			}
			g := G.NewGraph()
			z, l, cost := build(g)
			d := mustGrad(t, cost, z)
			v := G.NewConstant(dense(tensor.Float64, []int{c.N, c.K}, c.V), G.WithName("v"))
			h := mustGrad(t, G.Must(G.Sum(G.Must(G.HadamardProd(d[0], v)))), z)
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			assertClose(t, "loss", float64s(l.Value()), c.Loss, 1e-12, 1e-12)
			assertClose(t, "dlogits", float64s(d[0].Value()), c.DLogits, 1e-12, 1e-12)
			assertClose(t, "hvp", float64s(h[0].Value()), c.HVP, 1e-12, 1e-12)

			lg := G.NewGraph()
			lz, _, _ := build(lg)
			lm := G.NewLispMachine(lg)
			defer lm.Close()
			if err := lm.RunAll(); err != nil {
				t.Fatal(err)
			}
			dz, err := lz.Grad()
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "dlogits (LispMachine)", float64s(dz), c.DLogits, 1e-12, 1e-12)
		})
	}
}

// TestXentHandDerived: two classes, logits (0, ln 3): softmax (1/4, 3/4); label 1: loss
// -ln(3/4) = ln(4/3), gradient (1/4, -1/4); a second row ignored (-100) adds nothing and Mean
// divides by 1.
func TestXentHandDerived(t *testing.T) {
	g := G.NewGraph()
	z := node(g, "z", dense(tensor.Float64, []int{2, 2}, []float64{0, math.Log(3), 5, -5}))
	y := node(g, "y", dense(tensor.Float64, []int{2}, []float64{1, -100}))
	l := G.Must(SoftmaxCrossEntropy(z, y))
	d := mustGrad(t, l, z)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "loss", float64s(l.Value()), []float64{math.Log(4.0 / 3)}, 1e-15, 1e-15)
	assertClose(t, "grad", float64s(d[0].Value()), []float64{0.25, -0.25, 0, 0}, 1e-15, 1e-15)
}

// TestXentGradcheck: finite differences of the loss (first order) and of <v, dL/dz> (second
// order), float64 and float32, every reduction, both machines for the first order, logits away
// from nothing in particular (the loss is smooth everywhere).
func TestXentGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(31))
	const n, k = 5, 4
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for name, r := range reductionByName {
			z, v, up := make([]float64, n*k), make([]float64, n*k), make([]float64, n)
			for i := range z {
				z[i], v[i] = rng.NormFloat64()*2, rng.NormFloat64()
			}
			labels := make([]float64, n)
			for i := range labels {
				labels[i] = float64(rng.Intn(k))
				up[i] = rng.NormFloat64()
			}
			labels[3] = DefaultIgnoreIndex
			inputs := []gradcheck.Input{
				{Name: "logits", Value: dense(dt, []int{n, k}, z), Wrt: true},
				{Name: "labels", Value: dense(dt, []int{n}, labels)},
			}
			if r == None {
				inputs = append(inputs, gradcheck.Input{Name: "upstream", Value: dense(dt, []int{n}, up)})
			}
			loss := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				l, err := SoftmaxCrossEntropy(in[0], in[1], XentReduction(r))
				if err != nil || r != None {
					return l, err
				}
				return G.Sum(G.Must(G.HadamardProd(l, in[2])))
			}
			opt := gradcheck.Options{} // defaults by dtype: float32 step 1e-2, tolerance 2e-3
			for _, m := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				opt.Machine = m
				if err := gradcheck.Graph(loss, inputs, opt); err != nil {
					t.Fatalf("%v/%s/%v: %v", dt, name, m, err)
				}
			}
			if dt == tensor.Float32 {
				continue
			}
			hvp := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				l, err := loss(g, in)
				if err != nil {
					return nil, err
				}
				d, err := G.Grad(l, in[0])
				if err != nil {
					return nil, err
				}
				return G.Sum(G.Must(G.HadamardProd(d[0], in[len(in)-1])))
			}
			inputs = append(inputs, gradcheck.Input{Name: "v", Value: dense(dt, []int{n, k}, v)})
			if err := gradcheck.Graph(hvp, inputs, gradcheck.Options{Machine: gradcheck.Tape}); err != nil {
				t.Fatalf("%v/%s second order: %v", dt, name, err)
			}
		}
	}
}

// TestXentBadInput: constructor errors name the argument and the values; run-time label errors
// name the row and the value; empty N works (Sum 0, Mean NaN, None empty, empty gradients); views
// give the bits of contiguous copies; logits of ±1e4 stay finite. Crash-prone, so in a child.
func TestXentBadInput(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	g := G.NewGraph()
	z := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 4), G.WithName("z"))
	y := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithName("y"))
	y32 := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("y32"))
	y4 := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithName("y4"))
	z3 := G.NewTensor(g, tensor.Float64, 3, G.WithShape(3, 4, 1), G.WithName("z3"))
	zi := G.NewMatrix(g, tensor.Int, G.WithShape(3, 4), G.WithName("zi"))
	other := G.NewVector(G.NewGraph(), tensor.Float64, G.WithShape(3), G.WithName("other"))
	for _, c := range []struct {
		name string
		call func() (*G.Node, error)
		want string
	}{
		{"nil logits", func() (*G.Node, error) { return SoftmaxCrossEntropy(nil, y) }, "logits is nil"},
		{"nil labels", func() (*G.Node, error) { return SoftmaxCrossEntropy(z, nil) }, "labels is nil"},
		{"mixed dtypes", func() (*G.Node, error) { return SoftmaxCrossEntropy(z, y32) }, "labels have dtype float32 but logits have float64"},
		{"int logits", func() (*G.Node, error) { return SoftmaxCrossEntropy(zi, y) }, "logits have dtype int"},
		{"rank 3", func() (*G.Node, error) { return SoftmaxCrossEntropy(z3, y) }, "logits have shape (3, 4, 1); want (N, K)"},
		{"label count", func() (*G.Node, error) { return SoftmaxCrossEntropy(z, y4) }, "labels have shape (4); logits of shape (3, 4) need (3)"},
		{"other graph", func() (*G.Node, error) { return SoftmaxCrossEntropy(z, other) }, "different graph"},
		{"bad reduction", func() (*G.Node, error) { return SoftmaxCrossEntropy(z, y, XentReduction(Reduction(9))) }, "Reduction(9)"},
	} {
		if _, err := c.call(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// run-time labels: not whole, out of range, NaN
	for _, bad := range []float64{1.5, 4, -1, math.NaN(), math.Inf(1)} {
		g := G.NewGraph()
		z := node(g, "z", dense(tensor.Float64, []int{3, 4}, make([]float64, 12)))
		y := node(g, "y", dense(tensor.Float64, []int{3}, []float64{0, bad, 2}))
		l := G.Must(SoftmaxCrossEntropy(z, y))
		mustGrad(t, l, z)
		m := G.NewTapeMachine(g)
		err := m.RunAll()
		m.Close()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("label %v of row 1", bad)) {
			t.Errorf("label %v: %v, want an error naming row 1 and the label", bad, err)
		}
	}
	// empty N, every reduction, both machines
	for name, r := range reductionByName {
		for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
			g := G.NewGraph()
			z := node(g, "z", tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(0, 3)))
			y := node(g, "y", tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(0)))
			l := G.Must(SoftmaxCrossEntropy(z, y, XentReduction(r)))
			var d G.Nodes
			var m G.VM = G.NewLispMachine(g)
			if machine == gradcheck.Tape {
				if r != None {
					d = mustGrad(t, l, z)
				}
				m = G.NewTapeMachine(g)
			} else if r == None {
				continue // the LispMachine wants a scalar cost
			}
			if err := m.RunAll(); err != nil {
				t.Fatalf("empty %s %v: %v", name, machine, err)
			}
			m.Close()
			want := map[Reduction]float64{Sum: 0, Mean: math.NaN()}[r]
			if r != None && !closeTo(float64s(l.Value())[0], want, 0, 0) {
				t.Fatalf("empty %s: loss %v, want %v", name, l.Value(), want)
			}
			if len(d) > 0 && d[0].Value().Shape().TotalSize() != 0 {
				t.Fatalf("empty %s: gradient %v", name, d[0].Value())
			}
		}
	}
	// views: a transposed logits tensor and a stepped label slice
	zData := []float64{1, -2, 0.5, 3, 0, 1, -1, 2, 0.25, 4, -3, 1}
	run := func(zv, yv *tensor.Dense) []float64 {
		g := G.NewGraph()
		z := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 4), G.WithValue(zv), G.WithName("z"))
		y := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithValue(yv), G.WithName("y"))
		l := G.Must(SoftmaxCrossEntropy(z, y, XentReduction(Sum)))
		d := mustGrad(t, l, z)
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append(float64s(l.Value()), float64s(d[0].Value())...)
	}
	want := run(dense(tensor.Float64, []int{3, 4}, zData), dense(tensor.Float64, []int{3}, []float64{1, 3, 0}))
	long, _ := dense(tensor.Float64, []int{6}, []float64{1, 9, 3, 9, 0, 9}).Slice(tensor.S(0, 6, 2))
	got := run(viewOf(t, "transposed", tensor.Float64, 3, 4, zData), long.(*tensor.Dense))
	if !sameSliceBits(got, want) {
		t.Fatalf("views: %v, want %v", got, want)
	}
	// extreme logits: loss 2e4 (the margin), gradient (1, -1)
	g2 := G.NewGraph()
	ze := node(g2, "z", dense(tensor.Float32, []int{1, 2}, []float64{1e4, -1e4}))
	ye := node(g2, "y", dense(tensor.Float32, []int{1}, []float64{1}))
	le := G.Must(SoftmaxCrossEntropy(ze, ye))
	de := mustGrad(t, le, ze)
	m := G.NewTapeMachine(g2)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "extreme loss", float64s(le.Value()), []float64{2e4}, 0, 1e-7)
	assertClose(t, "extreme grad", float64s(de[0].Value()), []float64{1, -1}, 0, 0)
}
