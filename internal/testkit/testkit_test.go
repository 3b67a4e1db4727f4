package testkit

import (
	"math"
	"testing"
)

// TestCloseTo: hand-picked pairs on both sides of the tolerance, NaN and infinities.
func TestCloseTo(t *testing.T) {
	for _, c := range []struct {
		a, b, abs, rel float64
		want           bool
	}{
		{1, 1 + 1e-13, 0, 1e-12, true},
		{1, 1 + 1e-11, 0, 1e-12, false},
		{0, 1e-13, 1e-12, 0, true},
		{math.NaN(), math.NaN(), 0, 0, true},
		{math.NaN(), 1, 1, 1, false},
		{math.Inf(1), math.Inf(1), 0, 0, true},
		{math.Inf(1), math.Inf(-1), 1, 1, false},
	} {
		if got := CloseTo(c.a, c.b, c.abs, c.rel); got != c.want {
			t.Errorf("CloseTo(%v, %v, %v, %v) = %v, want %v", c.a, c.b, c.abs, c.rel, got, c.want)
		}
	}
}
