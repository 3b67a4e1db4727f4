package roi

import (
	"math"
	"sync"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestPoolSave: the TapeMachine's Pool gradient takes the argmaxes its forward saved, step after
// step, and gives the bits of the recomputation (neverSave) in both dtypes, on features full of
// ties, ±0, NaN and -FLT_MAX (the fuzz test's specials) so that the argmaxes are not trivial;
// new features bound between steps are saved anew. Expected gradients are the recomputation's,
// which the fixtures and the fuzz test check against torchvision and a scalar reference.
func TestPoolSave(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			rng := randSource(21)
			feats := func() *tensor.Dense {
				v := make([]float64, 2*3*9*11)
				for i := range v {
					v[i] = []float64{0, math.Copysign(0, -1), 1, -math.MaxFloat32, float64(rng.Intn(3)), rng.NormFloat64()}[rng.Intn(6)]
				}
				return dense(dt, []int{2, 3, 9, 11}, v)
			}
			rois := dense(dt, []int{6, 5}, gradRoIs)
			up := make([]float64, 6*3*4*3)
			for i := range up {
				up[i] = float64(i%7) - 3
			}
			g := G.NewGraph()
			f := node(g, "features", feats())
			r := node(g, "rois", rois)
			out, err := Pool(f, r, 4, 3, WithSpatialScale(0.5))
			if err != nil {
				t.Fatal(err)
			}
			cost := G.Must(G.Sum(G.Must(G.HadamardProd(out, node(g, "up", dense(dt, []int{6, 3, 4, 3}, up))))))
			grads, err := G.Grad(cost, f)
			if err != nil {
				t.Fatal(err)
			}
			upT := dense(dt, []int{6, 3, 4, 3}, up)
			m := G.NewTapeMachine(g)
			defer m.Close()
			op := out.Op().(poolOp)
			recompute := poolGradOp{fwd: poolOp{geo: op.geo}} // no save
			for step := 0; step < 3; step++ {
				if step > 0 {
					if err := G.Let(f, feats()); err != nil {
						t.Fatal(err)
					}
				}
				taken, recomputed := op.save.taken.Load(), op.save.recomputed.Load()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				if op.save.taken.Load() != taken+1 || op.save.recomputed.Load() != recomputed {
					t.Fatalf("step %d: the gradient did not take the save (taken %d, recomputed %d)", step, op.save.taken.Load(), op.save.recomputed.Load())
				}
				got := values.Float64s(grads[0].Value())
				want, err := recompute.Do(f.Value(), r.Value(), out.Value(), upT)
				if err != nil {
					t.Fatal(err)
				}
				assertClose(t, "gradient from the save", got, values.Float64s(want), 0, 0)

				// taken once: asked again, the scatter recomputes, with the same bits
				again, err := poolGradOp{fwd: op}.Do(f.Value(), r.Value(), out.Value(), upT)
				if err != nil {
					t.Fatal(err)
				}
				if op.save.recomputed.Load() != recomputed+1 {
					t.Fatalf("step %d: a save taken twice", step)
				}
				assertClose(t, "gradient asked twice", values.Float64s(again), values.Float64s(want), 0, 0)
				m.Reset()
			}

			// the op value run on other features saves for those; the scatter of the graph's
			// values then recomputes (its features and output are not the save's)
			other := feats()
			otherOut, err := op.Do(other, r.Value())
			if err != nil {
				t.Fatal(err)
			}
			recomputed := op.save.recomputed.Load()
			stale, err := poolGradOp{fwd: op}.Do(f.Value(), r.Value(), otherOut, upT)
			if err != nil {
				t.Fatal(err)
			}
			if op.save.recomputed.Load() != recomputed+1 {
				t.Fatal("the scatter took a save made from other features")
			}
			want, err := recompute.Do(f.Value(), r.Value(), otherOut, upT)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "gradient with another forward's save", values.Float64s(stale), values.Float64s(want), 0, 0)
			// and the save of the other features is theirs
			own, err := poolGradOp{fwd: op}.Do(other, r.Value(), otherOut, upT)
			if err != nil {
				t.Fatal(err)
			}
			if op.save.taken.Load() != 4 {
				t.Fatalf("taken %d times, want 4 (three steps and the other features)", op.save.taken.Load())
			}
			want, err = recompute.Do(other, r.Value(), otherOut, upT)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "gradient of the other features", values.Float64s(own), values.Float64s(want), 0, 0)
		})
	}
}

// TestPoolSaveLisp: on the LispMachine (DoDiff), the first machine's forward runs before any
// gradient is asked, so it recomputes; a second machine on the same graph takes the save. Each
// adds the recomputation's gradient of Σ out (upstream of ones) into the features' buffer, which
// the graph keeps between machines. The gradients are counts of argmaxes (small integers), so the
// differences are exact.
func TestPoolSaveLisp(t *testing.T) {
	features := dense(tensor.Float64, []int{2, 2, 6, 7}, spacedFeatures(randSource(8), 168))
	rois := dense(tensor.Float64, []int{6, 5}, gradRoIs)
	g := G.NewGraph()
	f := node(g, "features", features)
	r := node(g, "rois", rois)
	out, err := Pool(f, r, 3, 2, WithSpatialScale(0.5))
	if err != nil {
		t.Fatal(err)
	}
	G.Must(G.Sum(out))
	op := out.Op().(poolOp)
	var grads [2][]float64
	for i := range grads {
		m := G.NewLispMachine(g, G.WithWatchlist())
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		gv, err := f.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads[i] = append([]float64(nil), values.Float64s(gv)...)
		m.Close()
	}
	if op.save.taken.Load() != 1 || op.save.recomputed.Load() != 1 {
		t.Fatalf("taken %d, recomputed %d; want 1 and 1", op.save.taken.Load(), op.save.recomputed.Load())
	}
	ones := make([]float64, 6*2*3*2)
	for i := range ones {
		ones[i] = 1
	}
	want, err := poolGradOp{fwd: poolOp{geo: op.geo}}.Do(features, rois, out.Value(), dense(tensor.Float64, []int{6, 2, 3, 2}, ones))
	if err != nil {
		t.Fatal(err)
	}
	added := make([]float64, len(grads[1]))
	for i := range added {
		added[i] = grads[1][i] - grads[0][i]
	}
	assertClose(t, "LispMachine: the recomputation", grads[0], values.Float64s(want), 0, 0)
	assertClose(t, "LispMachine: the save", added, values.Float64s(want), 0, 0)
}

// TestPoolSaveShared: one Pool op value (with its save) run by several goroutines at once, each
// on its own features, forward then scatter: every gradient is its own features' (the
// recomputation's bits), whichever goroutine's forward the save holds (run with -race).
func TestPoolSaveShared(t *testing.T) {
	g := G.NewGraph()
	f := node(g, "features", dense(tensor.Float64, []int{2, 2, 6, 7}, make([]float64, 168)))
	r := node(g, "rois", dense(tensor.Float64, []int{6, 5}, gradRoIs))
	out, err := Pool(f, r, 3, 2, WithSpatialScale(0.5))
	if err != nil {
		t.Fatal(err)
	}
	op := out.Op().(poolOp)
	op.save.want()
	rois := dense(tensor.Float64, []int{6, 5}, gradRoIs)
	up := make([]float64, 72)
	for i := range up {
		up[i] = float64(i + 1)
	}
	upT := dense(tensor.Float64, []int{6, 2, 3, 2}, up)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				features := dense(tensor.Float64, []int{2, 2, 6, 7}, spacedFeatures(randSource(int64(100*w+i)), 168))
				o, err := op.Do(features, rois)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := poolGradOp{fwd: op}.Do(features, rois, o, upT)
				if err != nil {
					t.Error(err)
					return
				}
				want, err := poolGradOp{fwd: poolOp{geo: op.geo}}.Do(features, rois, o, upT)
				if err != nil {
					t.Error(err)
					return
				}
				gv, wv := values.Float64s(got), values.Float64s(want)
				for j := range wv {
					if gv[j] != wv[j] {
						t.Errorf("goroutine %d step %d: gradient[%d] = %v, want %v", w, i, j, gv[j], wv[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if op.save.taken.Load() == 0 {
		t.Error("no scatter took a save")
	}
}
