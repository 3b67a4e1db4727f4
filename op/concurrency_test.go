package op

import (
	"math"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSharedOpValue: one op value, taken from a node, applied in 8 graphs built and run by 8
// goroutines at once (under -race in make test): ops are immutable values, safe to share. Every
// goroutine gets the same loss: residuals (0.05, 2), sigma 3, Sum → 4.5*0.0025 + (2 - 0.5/9).
func TestSharedOpValue(t *testing.T) {
	g0 := G.NewGraph()
	p0 := node(g0, "p", dense(tensor.Float64, []int{2}, []float64{0.05, 2}))
	q0 := node(g0, "q", dense(tensor.Float64, []int{2}, []float64{0, 0}))
	shared := G.Must(SmoothL1(p0, q0, WithSigma(3), WithReduction(Sum))).Op()
	want := 4.5*0.0025 + (2 - 0.5/9)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := G.NewGraph()
			p := node(g, "p", dense(tensor.Float64, []int{2}, []float64{0.05, 2}))
			q := node(g, "q", dense(tensor.Float64, []int{2}, []float64{0, 0}))
			l, err := G.ApplyOp(shared, p, q)
			if err != nil {
				errs <- err.Error()
				return
			}
			if _, err := G.Grad(l, p); err != nil {
				errs <- err.Error()
				return
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				errs <- err.Error()
				return
			}
			if got := float64s(l.Value())[0]; math.Abs(got-want) > 1e-15 {
				errs <- "wrong loss"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
