// Package testkit holds the helpers every package's tests share: graph input nodes from tensors
// and float comparisons with tolerances (NaN matches NaN, equal infinities match).
package testkit

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Node makes a graph input node bound to v, with v's dtype and shape.
func Node(g *G.ExprGraph, name string, v *tensor.Dense) *G.Node {
	return G.NewTensor(g, v.Dtype(), v.Dims(), G.WithShape(v.Shape().Clone()...), G.WithValue(v), G.WithName(name))
}

// CloseTo reports |a - b| <= abs + rel*|b|; equal values (also equal infinities) and two NaNs
// are close; a NaN and a number, or an infinity and anything else, are not.
func CloseTo(a, b, abs, rel float64) bool {
	if a == b {
		return true
	}
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false // unequal, and a relative tolerance of an infinity would admit anything
	}
	return math.Abs(a-b) <= abs+rel*math.Abs(b)
}

// AssertClose fails t at the first element of got not CloseTo want, naming what and the index.
func AssertClose(t testing.TB, what string, got, want []float64, abs, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !CloseTo(got[i], want[i], abs, rel) {
			t.Fatalf("%s[%d] = %.17g, want %.17g (|diff| %.3g)", what, i, got[i], want[i], math.Abs(got[i]-want[i]))
		}
	}
}

// ReadJSON decodes the JSON file at path (a committed fixture) into v, failing t if it cannot.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
