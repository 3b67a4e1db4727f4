package opkit

import (
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type named string

func (n named) String() string { return string(n) }

// TestOneGraph: constants join any graph; two graphs are an error naming both inputs; all
// constants are an error; nil (absent) inputs are skipped.
func TestOneGraph(t *testing.T) {
	g1, g2 := G.NewGraph(), G.NewGraph()
	a := G.NewVector(g1, tensor.Float64, G.WithShape(2), G.WithName("a"))
	b := G.NewVector(g2, tensor.Float64, G.WithShape(2), G.WithName("b"))
	c := G.NewConstant(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2})), G.WithName("c"))
	if err := OneGraph([]string{"pred", "target", "w"}, c, a, nil); err != nil {
		t.Fatalf("constant and node: %v", err)
	}
	if err := OneGraph([]string{"pred", "target"}, a, b); err == nil || err.Error() != "target belongs to a different graph than pred" {
		t.Fatalf("two graphs: %v", err)
	}
	if err := OneGraph([]string{"pred", "target"}, c, c); err == nil || !strings.Contains(err.Error(), "pred, target are all constants") {
		t.Fatalf("all constants: %v", err)
	}
}

// TestDenseInputAndAccumulate: a transposed view is read as its row-major values; accumulating
// into a transposed buffer writes through its strides. Hand-derived: [[1 2 3] [4 5 6]]^T.
func TestDenseInputAndAccumulate(t *testing.T) {
	d := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{1, 2, 3, 4, 5, 6}))
	if err := d.T(); err != nil {
		t.Fatal(err)
	}
	c, err := DenseInput(named("op"), "x", d, tensor.Shape{3, 2}, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 4, 2, 5, 3, 6}
	for i, v := range c.Data().([]float64) {
		if v != want[i] {
			t.Fatalf("DenseInput = %v, want %v", c.Data(), want)
		}
	}
	if err := Accumulate(d, []float64{10, 40, 20, 50, 30, 60}, false); err != nil {
		t.Fatal(err)
	}
	// element (i, j) of the view is backing[j*3 + i]: adding 10x each view element multiplies by 11
	for i, v := range d.Data().([]float64) {
		if v != 11*float64(i+1) {
			t.Fatalf("backing after Accumulate = %v", d.Data())
		}
	}
	if _, err := DenseInput(named("op"), "x", d, tensor.Shape{2, 3}, tensor.Float64); err == nil || !strings.Contains(err.Error(), "op: x has shape (3, 2), want (2, 3)") {
		t.Fatalf("shape error: %v", err)
	}
}
