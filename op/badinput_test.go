package op

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestBadInputs: every bad input gets an error naming the argument and the values, never a
// panic (the recover is here in the test, not in the library).
func TestBadInputs(t *testing.T) {
	g := G.NewGraph()
	other := G.NewGraph()
	mat := func(g *G.ExprGraph, name string, dt tensor.Dtype, r, c int) *G.Node {
		return G.NewMatrix(g, dt, G.WithShape(r, c), G.WithName(name))
	}
	p := mat(g, "p", tensor.Float64, 2, 3)
	q := mat(g, "q", tensor.Float64, 2, 3)
	q32 := mat(g, "q32", tensor.Float32, 2, 3)
	p32 := mat(g, "p32", tensor.Float32, 2, 3)
	qShape := mat(g, "qShape", tensor.Float64, 3, 2)
	pInt := mat(g, "pInt", tensor.Int, 2, 3)
	qInt := mat(g, "qInt", tensor.Int, 2, 3)
	pOther := mat(other, "pOther", tensor.Float64, 2, 3)
	scalar := G.NewScalar(g, tensor.Float64, G.WithName("s"))
	vec := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithName("v"))
	vec2 := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithName("v2"))

	cases := []struct {
		name string
		call func() (*G.Node, error)
		want []string // substrings of the error
	}{
		{"nil pred", func() (*G.Node, error) { return SmoothL1(nil, q) }, []string{"pred is nil"}},
		{"nil target", func() (*G.Node, error) { return SmoothL1(p, nil) }, []string{"target is nil"}},
		{"nil pred (Loss)", func() (*G.Node, error) { return SmoothL1Loss(nil, q, nil, nil, 3) }, []string{"pred is nil"}},
		{"other graph target", func() (*G.Node, error) { return SmoothL1(p, pOther) }, []string{"target", "different graph"}},
		{"other graph insideW", func() (*G.Node, error) { return SmoothL1Loss(p, q, pOther, nil, 3) }, []string{"insideW", "different graph"}},
		{"mixed dtypes", func() (*G.Node, error) { return SmoothL1(p, q32) }, []string{"target", "float32", "float64"}},
		{"mixed dtype outsideW", func() (*G.Node, error) { return SmoothL1Loss(p32, q32, nil, p, 1) }, []string{"outsideW", "float64", "float32"}},
		{"int dtype", func() (*G.Node, error) { return SmoothL1(pInt, qInt) }, []string{"pred", "int"}},
		{"shape mismatch", func() (*G.Node, error) { return SmoothL1(p, qShape) }, []string{"target", "(3, 2)", "(2, 3)"}},
		{"weight shape mismatch", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, qShape, 3) }, []string{"outsideW", "(3, 2)", "(2, 3)"}},
		{"scalar pred", func() (*G.Node, error) { return SmoothL1(scalar, scalar) }, []string{"pred is a scalar"}},
		{"scalar target", func() (*G.Node, error) { return SmoothL1(vec, scalar) }, []string{"target", "shape"}},
		{"sigma 0", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 0) }, []string{"sigma", "got 0"}},
		{"sigma -1", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, -1) }, []string{"sigma", "got -1"}},
		{"sigma NaN", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, math.NaN()) }, []string{"sigma", "NaN"}},
		{"sigma Inf", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, math.Inf(1)) }, []string{"sigma", "+Inf"}},
		{"sigma tiny", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 1e-200) }, []string{"sigma", "1e-200"}},
		{"beta -1", func() (*G.Node, error) { return SmoothL1(p, q, WithBeta(-1)) }, []string{"beta", "got -1"}},
		{"beta NaN", func() (*G.Node, error) { return SmoothL1(p, q, WithBeta(math.NaN())) }, []string{"beta", "NaN"}},
		{"beta Inf", func() (*G.Node, error) { return SmoothL1(p, q, WithBeta(math.Inf(1))) }, []string{"beta", "+Inf"}},
		{"beta and sigma", func() (*G.Node, error) { return SmoothL1(p, q, WithBeta(1), WithSigma(3)) }, []string{"beta (1)", "sigma (3)"}},
		{"dims out of range", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 3, 2) }, []string{"dims [2]", "axis 2", "(2, 3)"}},
		{"dims negative out of range", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 3, -3) }, []string{"axis -3"}},
		{"dims repeated", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 3, 1, 1) }, []string{"dims [1 1]", "repeated"}},
		{"dims repeated via negative", func() (*G.Node, error) { return SmoothL1Loss(p, q, nil, nil, 3, 1, -1) }, []string{"dims [1 -1]", "repeated"}},
		{"default dims on rank 1", func() (*G.Node, error) { return SmoothL1Loss(vec, vec2, nil, nil, 3) }, []string{"axis 1", "rank 1"}},
		{"dims and reduction", func() (*G.Node, error) { return SmoothL1(p, q, WithSumDims(1), WithReduction(Sum)) }, []string{"WithSumDims", "WithReduction"}},
		{"unknown reduction", func() (*G.Node, error) { return SmoothL1(p, q, WithReduction(Reduction(7))) }, []string{"Reduction(7)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n *G.Node
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panicked: %v", r)
					}
				}()
				n, err = c.call()
			}()
			if err == nil {
				t.Fatalf("no error, got node %v", n)
			}
			if n != nil {
				t.Errorf("error %q came with a non-nil node", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestDoRejectsBadValues: run-time values that do not match the op (wrong shape or dtype) are
// errors from Do, not panics.
func TestDoRejectsBadValues(t *testing.T) {
	g := G.NewGraph()
	p := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("p"))
	q := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("q"))
	l := G.Must(SmoothL1(p, q))
	o := l.Op()
	good := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float64, 6)))
	for _, c := range []struct {
		name string
		vals []G.Value
	}{
		{"too few", []G.Value{good}},
		{"wrong shape", []G.Value{good, tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(make([]float64, 6)))}},
		{"wrong dtype", []G.Value{good, tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float32, 6)))}},
		{"scalar value", []G.Value{good, G.NewF64(1)}},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s: panicked: %v", c.name, r)
				}
			}()
			if _, err := o.Do(c.vals...); err == nil {
				t.Fatalf("%s: no error", c.name)
			} else if !strings.Contains(err.Error(), "SmoothL1") {
				t.Fatalf("%s: error %q does not name the op", c.name, err)
			}
		}()
	}
}
