package roi

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestHandDerived: one roi over a 3x4 map, values v(y, x) = 10y + x, which bilinear sampling
// reproduces exactly inside the map (the function is linear).
func TestHandDerived(t *testing.T) {
	data := make([]float64, 12)
	for y := 0; y < 3; y++ {
		for x := 0; x < 4; x++ {
			data[4*y+x] = float64(10*y + x)
		}
	}
	features := dense(tensor.Float64, []int{1, 1, 3, 4}, data)
	// Align, aligned=false, ratio 1, scale 1, roi (0.5, 0.5)-(2.5, 1.5), output 1x2: bins are
	// 1x1; the sample points are the bin centres (1, 1) and (2, 1) in (x, y): values 11 and 12.
	// Each sample's weights: x and y are whole numbers, so all weight is on one pixel.
	rois := dense(tensor.Float64, []int{1, 5}, []float64{0, 0.5, 0.5, 2.5, 1.5})
	up := dense(tensor.Float64, []int{1, 1, 1, 2}, []float64{1, 2})
	for _, lisp := range []bool{false, true} {
		out, grad := runOp(t, func(f, r *G.Node) (*G.Node, error) {
			return Align(f, r, 1, 2, WithSamplingRatio(1))
		}, features, rois, up, lisp)
		assertClose(t, "align", out, []float64{11, 12}, 0, 0)
		wantGrad := make([]float64, 12)
		wantGrad[4*1+1], wantGrad[4*1+2] = 1, 2 // upstream 1 to (1, 1), 2 to (1, 2)
		assertClose(t, "align grad", grad, wantGrad, 0, 0)
	}
	// aligned=true shifts by -0.5: the sample points become (0.5, 0.5) and (1.5, 0.5), halfway
	// between pixels: v = 10*0.5 + 0.5 = 5.5 and 6.5; each of the four neighbours gets 1/4.
	for _, lisp := range []bool{false, true} {
		out, grad := runOp(t, func(f, r *G.Node) (*G.Node, error) {
			return Align(f, r, 1, 2, WithSamplingRatio(1), WithAligned(true))
		}, features, rois, up, lisp)
		assertClose(t, "aligned", out, []float64{5.5, 6.5}, 1e-15, 0)
		wantGrad := []float64{0.25, 0.75, 0.5, 0, 0.25, 0.75, 0.5, 0, 0, 0, 0, 0}
		assertClose(t, "aligned grad", grad, wantGrad, 1e-15, 0)
	}
	// Pool, roi (0, 0)-(3, 1) at scale 1: columns 0..3, rows 0..1, output 1x2: bins of width
	// 2: columns [0, 2) and [2, 4), rows [0, 2): maxima v(1, 1) = 11 and v(1, 3) = 13.
	poolRoIs := dense(tensor.Float64, []int{1, 5}, []float64{0, 0, 0, 3, 1})
	for _, lisp := range []bool{false, true} {
		out, grad := runOp(t, func(f, r *G.Node) (*G.Node, error) { return Pool(f, r, 1, 2) }, features, poolRoIs, up, lisp)
		assertClose(t, "pool", out, []float64{11, 13}, 0, 0)
		wantGrad := make([]float64, 12)
		wantGrad[4*1+1], wantGrad[4*1+3] = 1, 2
		assertClose(t, "pool grad", grad, wantGrad, 0, 0)
	}
}

// TestPoolTies: equal values in a bin send the gradient to the first in row-major order, as
// torchvision's strict > does; -0 and +0 are equal, and the first one's sign is the output's.
func TestPoolTies(t *testing.T) {
	negZero := math.Copysign(0, -1)
	// 2x3 map, one bin over all of it; hand-chosen values
	for _, c := range []struct {
		name   string
		data   []float64
		want   float64
		wantAt int
	}{
		{"tie in row 1", []float64{1, 2, 1, 2, 5, 5}, 5, 4},
		{"tie across rows", []float64{7, 1, 1, 1, 1, 7}, 7, 0},
		{"-0 first", []float64{negZero, 0, -1, -1, 0, -2}, negZero, 0},
		{"+0 first", []float64{-3, 0, negZero, -1, -1, -2}, 0, 1},
		{"NaN skipped", []float64{math.NaN(), 1, 3, math.NaN(), 3, 2}, 3, 2},
		{"all -Inf", []float64{math.Inf(-1), math.Inf(-1), math.Inf(-1), math.Inf(-1), math.Inf(-1), math.Inf(-1)}, -math.MaxFloat32, -1},
		{"-FLT_MAX exactly", []float64{-math.MaxFloat32, math.Inf(-1), math.Inf(-1), math.Inf(-1), math.Inf(-1), math.Inf(-1)}, -math.MaxFloat32, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				out, grad := runOp(t, func(f, r *G.Node) (*G.Node, error) { return Pool(f, r, 1, 1) },
					dense(dt, []int{1, 1, 2, 3}, c.data), dense(dt, []int{1, 5}, []float64{0, 0, 0, 2, 1}),
					dense(dt, []int{1, 1, 1, 1}, []float64{1}), false)
				if out[0] != c.want || math.Signbit(out[0]) != math.Signbit(c.want) {
					t.Fatalf("%v: max %v, want %v", dt, out[0], c.want)
				}
				for i, g := range grad {
					if want := map[bool]float64{true: 1}[i == c.wantAt]; g != want {
						t.Fatalf("%v: grad %v, want 1 at %d only", dt, grad, c.wantAt)
					}
				}
			}
		})
	}
}

// TestEmptyRoIs: K = 0 gives an empty (0, C, oh, ow) output and a zero gradient; so do C = 0
// and an empty map (every sample outside: zeros).
func TestEmptyRoIs(t *testing.T) {
	if inSubprocess(t) {
		return
	}
	for _, c := range []struct {
		name     string
		features []int
		rois     []float64
	}{
		{"no rois", []int{2, 3, 4, 5}, nil},
		{"no channels", []int{2, 0, 4, 5}, []float64{1, 0, 0, 3, 3}},
		{"empty map", []int{1, 2, 0, 5}, []float64{0, 0, 0, 3, 3}},
	} {
		for _, op := range []G.Op{
			alignOp{geo: geometry{outH: 2, outW: 3, scale: 1}, samplingRatio: -1},
			poolOp{geo: geometry{outH: 2, outW: 3, scale: 1}},
		} {
			t.Run(c.name+"/"+op.String()[:8], func(t *testing.T) {
				fs := c.features
				geo := geometry{batch: fs[0], channels: fs[1], height: fs[2], width: fs[3], rois: len(c.rois) / 5, outH: 2, outW: 3, scale: 1}
				var fwd, diff G.Op
				if _, ok := op.(alignOp); ok {
					a := alignOp{geo: geo, samplingRatio: -1}
					fwd, diff = a, alignDiffOp{a}
				} else {
					p := poolOp{geo: geo}
					fwd, diff = p, poolGradOp{fwd: p}
				}
				features := dense(tensor.Float64, fs, make([]float64, tensor.Shape(fs).TotalSize()))
				rois := dense(tensor.Float64, []int{geo.rois, 5}, c.rois)
				out, err := fwd.Do(features, rois)
				if err != nil {
					t.Fatal(err)
				}
				if !out.Shape().Eq(geo.outShape()) {
					t.Fatalf("output shape %v, want %v", out.Shape(), geo.outShape())
				}
				for _, v := range values.Float64s(out) {
					if v != 0 {
						t.Fatalf("output %v, want zeros", values.Float64s(out))
					}
				}
				args := []G.Value{rois, out}
				if _, ok := diff.(poolGradOp); ok {
					args = []G.Value{features, rois, out, out}
				}
				grad, err := diff.Do(args...)
				if err != nil {
					t.Fatal(err)
				}
				if !grad.Shape().Eq(tensor.Shape(fs)) {
					t.Fatalf("gradient shape %v, want %v", grad.Shape(), fs)
				}
				for _, v := range values.Float64s(grad) {
					if v != 0 {
						t.Fatalf("gradient %v, want zeros", values.Float64s(grad))
					}
				}
			})
		}
	}
	// through a graph: a K = 0 rois node, both ops and their gradient nodes with an empty
	// upstream. (G.Grad of G.Sum over the empty output is not used: gorgonia v0.9.18's
	// TapeMachine panics allocating the empty register of Sum's gradient, in tensor's
	// array.Uintptr, before any roi op runs.)
	g := G.NewGraph()
	f := node(g, "features", dense(tensor.Float64, []int{1, 2, 4, 5}, make([]float64, 40)))
	empty := func(shape ...int) *tensor.Dense {
		return tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape...))
	}
	r := G.NewMatrix(g, tensor.Float64, G.WithShape(0, 5), G.WithName("rois"), G.WithValue(empty(0, 5)))
	up := G.NewTensor(g, tensor.Float64, 4, G.WithShape(0, 2, 7, 7), G.WithName("up"), G.WithValue(empty(0, 2, 7, 7)))
	align := G.Must(Align(f, r, 7, 7))
	pool := G.Must(Pool(f, r, 7, 7))
	alignGrad := G.Must(G.ApplyOp(alignDiffOp{align.Op().(alignOp)}, r, up))
	poolGrad := G.Must(G.ApplyOp(poolGradOp{fwd: pool.Op().(poolOp)}, f, r, pool, up))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	for _, out := range []*G.Node{align, pool} {
		if !out.Value().Shape().Eq(tensor.Shape{0, 2, 7, 7}) {
			t.Fatalf("graph output shape %v, want (0, 2, 7, 7)", out.Value().Shape())
		}
	}
	for _, grad := range []*G.Node{alignGrad, poolGrad} {
		for _, v := range values.Float64s(grad.Value()) {
			if v != 0 {
				t.Fatalf("graph gradient %v, want zeros", values.Float64s(grad.Value()))
			}
		}
	}
}

// TestViews: views of the inputs (a column slice of the map, a column slice of a wider rois
// matrix) give the results of their contiguous copies.
func TestViews(t *testing.T) {
	big := make([]float64, 2*2*5*9)
	for i := range big {
		big[i] = math.Sin(float64(i))
	}
	wide := dense(tensor.Float64, []int{2, 2, 5, 9}, big)
	fv, err := wide.Slice(nil, nil, nil, tensor.S(1, 8))
	if err != nil {
		t.Fatal(err)
	}
	featuresView := fv.(*tensor.Dense)
	roisWide := dense(tensor.Float64, []int{3, 6}, []float64{
		0, 1, 0.5, 9, 6, 99,
		1, -2, 1, 4, 7.5, 99,
		0, 3, 3, 3, 2, 99,
	})
	rv, err := roisWide.Slice(nil, tensor.S(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	roisView := rv.(*tensor.Dense)
	if !featuresView.IsView() || !roisView.IsView() {
		t.Fatal("the slices are not views")
	}
	featuresCopy := dense(tensor.Float64, []int{2, 2, 5, 7}, values.Float64s(featuresView))
	roisCopy := dense(tensor.Float64, []int{3, 5}, values.Float64s(roisView))
	geo := geometry{batch: 2, channels: 2, height: 5, width: 7, rois: 3, outH: 2, outW: 3, scale: 0.5}
	for _, op := range []G.Op{alignOp{geo: geo, samplingRatio: 2, aligned: true}, poolOp{geo: geo}} {
		want, err := op.Do(featuresCopy, roisCopy)
		if err != nil {
			t.Fatal(err)
		}
		got, err := op.Do(featuresView, roisView)
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, op.String()+" on views", values.Float64s(got), values.Float64s(want), 0, 0)
		upView, _ := dense(tensor.Float64, []int{3, 2, 2, 4}, big[:48]).Slice(nil, nil, nil, tensor.S(0, 3))
		upCopy := dense(tensor.Float64, []int{3, 2, 2, 3}, values.Float64s(upView))
		var wantGrad, gotGrad G.Value
		if a, ok := op.(alignOp); ok {
			wantGrad, err = alignDiffOp{a}.Do(roisCopy, upCopy)
			if err == nil {
				gotGrad, err = alignDiffOp{a}.Do(roisView, upView)
			}
		} else {
			p := op.(poolOp)
			wantGrad, err = poolGradOp{fwd: p}.Do(featuresCopy, roisCopy, want, upCopy)
			if err == nil {
				gotGrad, err = poolGradOp{fwd: p}.Do(featuresView, roisView, want, upView)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, op.String()+" gradient on views", values.Float64s(gotGrad), values.Float64s(wantGrad), 0, 0)
	}
}

// TestHashDistinguishesParameters: ops differing in any parameter are different nodes.
func TestHashDistinguishesParameters(t *testing.T) {
	g := G.NewGraph()
	f := node(g, "features", dense(tensor.Float64, []int{1, 1, 4, 4}, make([]float64, 16)))
	r := node(g, "rois", dense(tensor.Float64, []int{1, 5}, []float64{0, 0, 0, 2, 2}))
	variants := []*G.Node{
		G.Must(Align(f, r, 2, 2)),
		G.Must(Align(f, r, 2, 3)),
		G.Must(Align(f, r, 3, 2)),
		G.Must(Align(f, r, 2, 2, WithSpatialScale(0.5))),
		G.Must(Align(f, r, 2, 2, WithSamplingRatio(2))),
		G.Must(Align(f, r, 2, 2, WithAligned(true))),
		G.Must(Pool(f, r, 2, 2)),
		G.Must(Pool(f, r, 2, 2, WithSpatialScale(0.5))),
	}
	seen := map[*G.Node]int{}
	for i, v := range variants {
		if j, ok := seen[v]; ok {
			t.Fatalf("variants %d (%v) and %d (%v) share a node", i, v.Op(), j, variants[j].Op())
		}
		seen[v] = i
	}
	if G.Must(Align(f, r, 2, 2)) != variants[0] {
		t.Fatal("the same Align twice is not one node")
	}
}

// TestDeterministicAcrossWorkers: the backward passes give the same bits with 1 and with 4
// workers (a plane's additions come in roi order whatever the partition).
func TestDeterministicAcrossWorkers(t *testing.T) {
	// a slice of the benchmark's workload: 64 channels, 100 rois per image
	feat := make([]float64, 2*64*50*76)
	for i := range feat {
		feat[i] = math.Sin(float64(i) * 0.7)
	}
	f := dense(tensor.Float32, []int{2, 64, 50, 76}, feat)
	all := benchRoIs()
	r := dense(tensor.Float32, []int{200, 5}, append(all[:100*5:100*5], all[512*5:612*5]...))
	geo := geometry{batch: 2, channels: 64, height: 50, width: 76, rois: 200, outH: 7, outW: 7, scale: 1.0 / 16}
	up := make([]float64, 200*64*49)
	for i := range up {
		up[i] = math.Cos(float64(i))
	}
	u := dense(tensor.Float32, []int{200, 64, 7, 7}, up)
	run := func(procs int) (a, p []float64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		ga, err := alignDiffOp{alignOp{geo: geo, samplingRatio: 2, aligned: true}}.Do(r, u)
		if err != nil {
			t.Fatal(err)
		}
		out, err := poolOp{geo: geo}.Do(f, r)
		if err != nil {
			t.Fatal(err)
		}
		gp, err := poolGradOp{fwd: poolOp{geo: geo}}.Do(f, r, out, u)
		if err != nil {
			t.Fatal(err)
		}
		return values.Float64s(ga), values.Float64s(gp)
	}
	a1, p1 := run(1)
	a4, p4 := run(4)
	assertClose(t, "align gradient, 4 workers vs 1", a4, a1, 0, 0)
	assertClose(t, "pool gradient, 4 workers vs 1", p4, p1, 0, 0)
}

// TestSharedOpValue: one op value used by graphs running in several goroutines at once (ops
// are values; run with -race).
func TestSharedOpValue(t *testing.T) {
	features := dense(tensor.Float64, []int{2, 2, 6, 7}, spacedFeatures(randSource(5), 168))
	rois := dense(tensor.Float64, []int{6, 5}, gradRoIs)
	up := dense(tensor.Float64, []int{6, 2, 3, 2}, make([]float64, 72))
	want, wantGrad := runOp(t, gradOpCases(3, 2)[3].build, features, rois, up, false)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, grad := runOp(t, gradOpCases(3, 2)[3].build, features, rois, up, i%2 == 1)
			for j := range want {
				if out[j] != want[j] {
					t.Errorf("goroutine %d: output differs", i)
					return
				}
			}
			for j := range wantGrad {
				if grad[j] != wantGrad[j] {
					t.Errorf("goroutine %d: gradient differs", i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestPoolStaleOutput: Pool's diff op finds each argmax as the first pixel equal to the bin's
// output; given an output that no pixel equals (not computed from these features), it
// recomputes the argmax from the features and gives the right gradient.
func TestPoolStaleOutput(t *testing.T) {
	geo := geometry{batch: 2, channels: 2, height: 6, width: 7, rois: 6, outH: 3, outW: 2, scale: 0.5}
	features := dense(tensor.Float64, []int{2, 2, 6, 7}, spacedFeatures(randSource(6), 168))
	rois := dense(tensor.Float64, []int{6, 5}, gradRoIs)
	up := make([]float64, 72)
	for i := range up {
		up[i] = float64(i + 1)
	}
	upT := dense(tensor.Float64, []int{6, 2, 3, 2}, up)
	p := poolOp{geo: geo}
	out, err := p.Do(features, rois)
	if err != nil {
		t.Fatal(err)
	}
	want, err := poolGradOp{fwd: p}.Do(features, rois, out, upT)
	if err != nil {
		t.Fatal(err)
	}
	stale := make([]float64, 72)
	for i := range stale {
		stale[i] = 1e9 // no feature is 1e9
	}
	got, err := poolGradOp{fwd: p}.Do(features, rois, dense(tensor.Float64, []int{6, 2, 3, 2}, stale), upT)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "gradient from a stale output", values.Float64s(got), values.Float64s(want), 0, 0)
	if s := values.Float64s(want); s[0] == 0 && s[len(s)-1] == 0 {
		var sum float64
		for _, v := range s {
			sum += v
		}
		if sum == 0 {
			t.Fatal("the reference gradient is all zero")
		}
	}
}

// TestGradientsAccumulate: features feeding both ops get the sum of their gradients on both
// machines; on the LispMachine each DoDiff adds into the one buffer (overwriting would leave
// only the last op's share).
func TestGradientsAccumulate(t *testing.T) {
	features := dense(tensor.Float64, []int{2, 2, 6, 7}, spacedFeatures(randSource(7), 168))
	rois := dense(tensor.Float64, []int{6, 5}, gradRoIs)
	up := make([]float64, 72)
	for i := range up {
		up[i] = math.Cos(float64(i))
	}
	upstream := dense(tensor.Float64, []int{6, 2, 3, 2}, up)
	align := func(f, r *G.Node) (*G.Node, error) {
		return Align(f, r, 3, 2, WithSpatialScale(0.5), WithSamplingRatio(2))
	}
	pool := func(f, r *G.Node) (*G.Node, error) { return Pool(f, r, 3, 2, WithSpatialScale(0.5)) }
	_, ga := runOp(t, align, features, rois, upstream, false)
	_, gp := runOp(t, pool, features, rois, upstream, false)
	want := make([]float64, len(ga))
	for i := range want {
		want[i] = ga[i] + gp[i]
	}
	both := func(f, r *G.Node) (*G.Node, error) {
		a, err := align(f, r)
		if err != nil {
			return nil, err
		}
		p, err := pool(f, r)
		if err != nil {
			return nil, err
		}
		return G.Add(a, p)
	}
	for _, lisp := range []bool{false, true} {
		_, got := runOp(t, both, features, rois, upstream, lisp)
		assertClose(t, map[bool]string{false: "tape", true: "lisp"}[lisp], got, want, 1e-14, 1e-14)
	}
}

// TestViewsThroughMachines: features bound as a column-slice view give, through a whole graph on
// both machines, the loss and the features' gradient of their contiguous copy. The LispMachine
// makes the gradient buffer like the view (strided); DoDiff adds through its strides. Before,
// it refused the buffer with an error.
func TestViewsThroughMachines(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	big := make([]float64, 2*2*5*9)
	for i := range big {
		big[i] = math.Cos(float64(i) * 0.7)
	}
	fv, err := dense(tensor.Float64, []int{2, 2, 5, 9}, big).Slice(nil, nil, nil, tensor.S(1, 8))
	if err != nil {
		t.Fatal(err)
	}
	view := fv.(*tensor.Dense)
	rois := []float64{0, 1, 0.5, 9, 6, 1, -2, 1, 4, 7.5, 0, 3, 3, 3, 2}
	builds := map[string]func(f, r *G.Node) (*G.Node, error){
		"align": func(f, r *G.Node) (*G.Node, error) {
			return Align(f, r, 2, 3, WithSpatialScale(0.5), WithSamplingRatio(2))
		},
		"pool": func(f, r *G.Node) (*G.Node, error) { return Pool(f, r, 2, 3, WithSpatialScale(0.5)) },
	}
	for name, build := range builds {
		for _, lisp := range []bool{false, true} {
			run := func(features *tensor.Dense) []float64 {
				g := G.NewGraph()
				f := node(g, "features", features)
				r := node(g, "rois", dense(tensor.Float64, []int{3, 5}, rois))
				o, err := build(f, r)
				if err != nil {
					t.Fatal(err)
				}
				cost := G.Must(G.Sum(o))
				var grads G.Nodes
				var m G.VM
				if lisp {
					m = G.NewLispMachine(g, G.WithWatchlist())
				} else {
					if grads, err = G.Grad(cost, f); err != nil {
						t.Fatal(err)
					}
					m = G.NewTapeMachine(g)
				}
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatalf("%s (lisp %t): %v", name, lisp, err)
				}
				var gv G.Value
				if lisp {
					if gv, err = f.Grad(); err != nil {
						t.Fatal(err)
					}
				} else {
					gv = grads[0].Value()
				}
				return append(values.Float64s(o.Value()), values.Float64s(gv)...)
			}
			want := run(dense(tensor.Float64, []int{2, 2, 5, 7}, values.Float64s(view)))
			got := run(view)
			assertClose(t, fmt.Sprintf("%s (lisp %t) on a view", name, lisp), got, want, 0, 0)
		}
	}
}
