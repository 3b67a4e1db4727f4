package values

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestScalarForms(t *testing.T) {
	for _, c := range []struct {
		v    G.Value
		want float64
	}{
		{G.NewF64(2.5), 2.5},
		{G.NewF32(-1.5), -1.5},
		{tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{7})), 7},
		{tensor.New(tensor.WithShape(1, 1), tensor.WithBacking([]float32{3})), 3},
	} {
		got, err := Scalar(c.v)
		if err != nil || got != c.want {
			t.Fatalf("Scalar(%v) = %v, %v; want %v", c.v, got, err, c.want)
		}
	}
	if _, err := Scalar(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))); err == nil {
		t.Fatal("a 2-element tensor was read as a scalar")
	}
	if _, err := Scalar(nil); err == nil {
		t.Fatal("nil was read as a scalar")
	}
}

func TestFloat64s(t *testing.T) {
	got := Float64s(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1.5, -2})))
	if len(got) != 2 || got[0] != 1.5 || got[1] != -2 {
		t.Fatalf("Float64s = %v", got)
	}
	// tensor's Data panics on empty tensors; Float64s must not
	if got := Float64s(tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(0))); len(got) != 0 || got == nil {
		t.Fatalf("Float64s(empty) = %#v, want an empty slice", got)
	}
	if ShapeOf(nil) != nil {
		t.Fatal("ShapeOf(nil) is not nil")
	}
}
