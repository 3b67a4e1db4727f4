package gradcheck

import (
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// f(x) = Σ x_i^3 has gradient 3 x_i^2 (hand-derived); at x = (1, -2, 0.5): (3, 12, 0.75).
func TestSlices(t *testing.T) {
	f := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v * v * v
		}
		return s
	}
	x := []float64{1, -2, 0.5}
	tol := Tolerance{Abs: 1e-6, Rel: 1e-6}
	if m := Slices(f, x, []float64{3, 12, 0.75}, 1e-5, tol); m != nil {
		t.Fatalf("right gradient rejected: %v", m)
	}
	m := Slices(f, x, []float64{3, 12.1, 0.75}, 1e-5, tol)
	if m == nil || m.Index != 1 || m.Got != 12.1 {
		t.Fatalf("wrong gradient at index 1 not reported: %v", m)
	}
	if !strings.Contains(m.Error(), "x[1]") {
		t.Fatalf("message %q does not name the index", m.Error())
	}
}

// Graph on gorgonia's own Square: d/dx Σ x^2 = 2x passes on both machines (TestSlices and the
// op package's TestGradcheckDetectsWrongGradient cover failure).
func TestGraphBothMachines(t *testing.T) {
	x := tensor.New(tensor.WithShape(3), tensor.WithBacking([]float64{1, -2, 0.5}))
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		sq, err := G.Square(in[0])
		if err != nil {
			return nil, err
		}
		return G.Sum(sq)
	}
	for _, m := range []Machine{Tape, Lisp} {
		if err := Graph(build, []Input{{Name: "x", Value: x, Wrt: true}}, Options{Machine: m}); err != nil {
			t.Fatalf("%v: %v", m, err)
		}
	}
}
