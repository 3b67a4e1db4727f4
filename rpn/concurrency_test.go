package rpn

import (
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	"github.com/detlab/smoothl1/op"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestConcurrentGraphs: 8 goroutines each build and run their own graph with op.SmoothL1Loss and
// the rpn loss (forward and backward, TapeMachine), sharing one Anchors and one Targets value
// (read-only). Run under -race (make test). Every goroutine must get the single-goroutine result,
// bit for bit.
func TestConcurrentGraphs(t *testing.T) {
	rng := rand.New(rand.NewSource(41))
	cfg := DefaultConfig()
	_, tg := smallBatch(t, cfg, rng)
	scoresShape, scores, deltas := randomOutputs(rng, cfg, tg)
	run := func() ([]float64, error) {
		g := G.NewGraph()
		dt := tensor.Float32
		s := G.NewTensor(g, dt, 4, G.WithShape(scoresShape...), G.WithValue(values.Dense(dt, scoresShape, scores)), G.WithName("scores"))
		dshape := []int{tg.B, 4 * tg.A, tg.H, tg.W}
		d := G.NewTensor(g, dt, 4, G.WithShape(dshape...), G.WithValue(values.Dense(dt, dshape, deltas)), G.WithName("deltas"))
		tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
		if err != nil {
			return nil, err
		}
		total, _, _, err := Loss(s, d, tn, cfg)
		if err != nil {
			return nil, err
		}
		// the op directly, too
		direct, err := op.SmoothL1Loss(d, tn.BBoxTargets, tn.InsideWeights, tn.OutsideWeights, 3, 1, 2, 3)
		if err != nil {
			return nil, err
		}
		sum, err := G.Add(total, direct)
		if err != nil {
			return nil, err
		}
		grads, err := G.Grad(sum, s, d)
		if err != nil {
			return nil, err
		}
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			return nil, err
		}
		v, err := values.Scalar(sum.Value())
		if err != nil {
			return nil, err
		}
		out := []float64{v}
		out = append(out, floats(grads[0].Value())...)
		return append(out, floats(grads[1].Value())...), nil
	}
	want, err := run()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for rep := 0; rep < 3; rep++ {
				got, err := run()
				if err != nil {
					errs[w] = err
					return
				}
				for i := range got {
					if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
						errs[w] = fmt.Errorf("goroutine %d: value %d = %v, want %v", w, i, got[i], want[i])
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
