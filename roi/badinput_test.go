package roi

import (
	"math"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// inSubprocess runs the calling test in a child process (internal/crashtest), so that a panic is
// a reported failure rather than the end of the test binary. It returns true in the parent, which
// then returns; the child runs the body.
func inSubprocess(t *testing.T) bool {
	t.Helper()
	return !crashtest.InChild(t)
}

// TestBadNodes: every bad argument to Align and Pool gets an error naming it and its value,
// never a panic (run in a subprocess).
func TestBadNodes(t *testing.T) {
	if inSubprocess(t) {
		return
	}
	g := G.NewGraph()
	other := G.NewGraph()
	f64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 3, 8, 9), G.WithName("f64"))
	f32 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 8, 9), G.WithName("f32"))
	fInt := G.NewTensor(g, tensor.Int, 4, G.WithShape(2, 3, 8, 9), G.WithName("fInt"))
	f3 := G.NewTensor(g, tensor.Float64, 3, G.WithShape(3, 8, 9), G.WithName("f3"))
	r64 := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 5), G.WithName("r64"))
	r32 := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 5), G.WithName("r32"))
	r4 := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 4), G.WithName("r4"))
	rVec := G.NewVector(g, tensor.Float64, G.WithShape(5), G.WithName("rVec"))
	rOther := G.NewMatrix(other, tensor.Float64, G.WithShape(4, 5), G.WithName("rOther"))
	scalar := G.NewScalar(g, tensor.Float64, G.WithName("s"))
	cases := []struct {
		name string
		call func() (*G.Node, error)
		want []string
	}{
		{"nil features", func() (*G.Node, error) { return Align(nil, r64, 7, 7) }, []string{"features is nil"}},
		{"nil rois", func() (*G.Node, error) { return Align(f64, nil, 7, 7) }, []string{"rois is nil"}},
		{"nil rois (Pool)", func() (*G.Node, error) { return Pool(f64, nil, 7, 7) }, []string{"rois is nil"}},
		{"other graph", func() (*G.Node, error) { return Align(f64, rOther, 7, 7) }, []string{"rois", "different graph"}},
		{"int features", func() (*G.Node, error) { return Align(fInt, r64, 7, 7) }, []string{"features", "int"}},
		{"mixed dtypes", func() (*G.Node, error) { return Align(f64, r32, 7, 7) }, []string{"rois", "float32", "float64"}},
		{"mixed dtypes (Pool)", func() (*G.Node, error) { return Pool(f32, r64, 7, 7) }, []string{"rois", "float64", "float32"}},
		{"features rank 3", func() (*G.Node, error) { return Align(f3, r64, 7, 7) }, []string{"features", "(3, 8, 9)", "(N, C, H, W)"}},
		{"scalar features", func() (*G.Node, error) { return Align(scalar, r64, 7, 7) }, []string{"features", "(N, C, H, W)"}},
		{"rois (4, 4)", func() (*G.Node, error) { return Align(f64, r4, 7, 7) }, []string{"rois", "(4, 4)", "(K, 5)"}},
		{"rois vector", func() (*G.Node, error) { return Pool(f64, rVec, 7, 7) }, []string{"rois", "(5)", "(K, 5)"}},
		{"output 0", func() (*G.Node, error) { return Align(f64, r64, 0, 7) }, []string{"output size 0x7"}},
		{"output negative", func() (*G.Node, error) { return Pool(f64, r64, 7, -2) }, []string{"output size 7x-2"}},
		{"output huge", func() (*G.Node, error) { return Align(f64, r64, 1<<13, 7) }, []string{"output size 8192x7", "4096"}},
		{"scale 0", func() (*G.Node, error) { return Align(f64, r64, 7, 7, WithSpatialScale(0)) }, []string{"spatial scale", "got 0"}},
		{"scale negative", func() (*G.Node, error) { return Pool(f64, r64, 7, 7, WithSpatialScale(-0.5)) }, []string{"spatial scale", "got -0.5"}},
		{"scale NaN", func() (*G.Node, error) { return Align(f64, r64, 7, 7, WithSpatialScale(math.NaN())) }, []string{"spatial scale", "NaN"}},
		{"scale Inf", func() (*G.Node, error) { return Align(f64, r64, 7, 7, WithSpatialScale(math.Inf(1))) }, []string{"spatial scale", "+Inf"}},
		{"scale underflows float32", func() (*G.Node, error) { return Align(f32, r32, 7, 7, WithSpatialScale(1e-50)) }, []string{"spatial scale 1e-50", "float32"}},
		{"sampling ratio -2", func() (*G.Node, error) { return Align(f64, r64, 7, 7, WithSamplingRatio(-2)) }, []string{"sampling ratio -2"}},
		{"Pool with sampling ratio", func() (*G.Node, error) { return Pool(f64, r64, 7, 7, WithSamplingRatio(2)) }, []string{"Pool", "WithSamplingRatio=true"}},
		{"Pool with aligned", func() (*G.Node, error) { return Pool(f64, r64, 7, 7, WithAligned(true)) }, []string{"Pool", "WithAligned=true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := c.call()
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

// TestBadRoIValues: rois are data, checked when the graph runs; a bad batch index or coordinate
// is an error from the machine (and from the backward ops), both dtypes, naming the roi and the
// value (run in a subprocess). The LispMachine is left out: when a node fails, v0.9.18's
// lispMachine.RunAll returns while its worker goroutine still reads the machine's state (a data
// race under -race, vm_genera.go:131 against :284), whatever the op.
func TestBadRoIValues(t *testing.T) {
	if inSubprocess(t) {
		return
	}
	good := []float64{0, 1, 1, 20, 20}
	cases := []struct {
		name string
		roi  []float64 // roi 1; roi 0 is good
		pool bool      // Pool instead of Align
		want []string
	}{
		{"batch index 2 of 2", []float64{2, 1, 1, 5, 5}, false, []string{"roi 1", "batch index 2", "[0, 2)"}},
		{"batch index -1", []float64{-1, 1, 1, 5, 5}, true, []string{"roi 1", "batch index -1"}},
		{"batch index 0.5", []float64{0.5, 1, 1, 5, 5}, false, []string{"roi 1", "batch index 0.5"}},
		{"batch index NaN", []float64{math.NaN(), 1, 1, 5, 5}, true, []string{"roi 1", "batch index NaN"}},
		{"batch index Inf", []float64{math.Inf(1), 1, 1, 5, 5}, false, []string{"roi 1", "batch index +Inf"}},
		{"x1 NaN", []float64{1, math.NaN(), 1, 5, 5}, false, []string{"roi 1", "x1 = NaN"}},
		{"y2 -Inf", []float64{1, 1, 1, 5, math.Inf(-1)}, true, []string{"roi 1", "y2 = -Inf"}},
		{"adaptive grid too large", []float64{1, 0, 0, 1e9, 5}, false, []string{"roi 1", "adaptive sampling", "sampling ratio"}},
		{"pool corner too far", []float64{1, 0, 0, 1e12, 5}, true, []string{"roi 1", "2^30"}},
	}
	for _, c := range cases {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			t.Run(c.name+"/"+dt.String(), func(t *testing.T) {
				g := G.NewGraph()
				features := dense(dt, []int{2, 1, 4, 5}, make([]float64, 40))
				rois := dense(dt, []int{2, 5}, append(append([]float64{}, good...), c.roi...))
				f := node(g, "features", features)
				r := node(g, "rois", rois)
				var out *G.Node
				var err error
				if c.pool {
					out, err = Pool(f, r, 2, 2)
				} else {
					out, err = Align(f, r, 2, 2)
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := G.Grad(G.Must(G.Sum(out)), f); err != nil {
					t.Fatal(err)
				}
				m := G.NewTapeMachine(g)
				defer m.Close()
				check := func(what string, err error) {
					t.Helper()
					if err == nil {
						t.Fatalf("%s: no error", what)
					}
					for _, w := range c.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s: error %q does not mention %q", what, err, w)
						}
					}
				}
				check("TapeMachine", m.RunAll())
				// the backward ops see the same rois (in a graph the forward op fails first)
				up := dense(dt, []int{2, 1, 2, 2}, make([]float64, 8))
				if c.pool {
					_, err = poolGradOp{fwd: out.Op().(poolOp)}.Do(features, rois, up, up)
				} else {
					_, err = alignDiffOp{out.Op().(alignOp)}.Do(rois, up)
				}
				check("diff op", err)
			})
		}
	}
}

// TestFloat32Overflow: a corner whose product with the scale overflows float32 is an error
// naming the roi, not an Inf sample position.
func TestFloat32Overflow(t *testing.T) {
	o := alignOp{geo: geometry{batch: 1, channels: 1, height: 4, width: 4, rois: 1, outH: 2, outW: 2, scale: 4}, samplingRatio: 2}
	f := dense(tensor.Float32, []int{1, 1, 4, 4}, make([]float64, 16))
	r := dense(tensor.Float32, []int{1, 5}, []float64{0, 0, 0, 3e38, 1})
	if _, err := o.Do(f, r); err == nil || !strings.Contains(err.Error(), "roi 0") || !strings.Contains(err.Error(), "overflows") {
		t.Fatalf("error %v, want one naming roi 0 and the overflow", err)
	}
}

// TestDoRejectsBadValues: run-time values that do not match the op (count, type, shape,
// dtype) are errors from Do naming the op and the input, never panics (run in a subprocess).
func TestDoRejectsBadValues(t *testing.T) {
	if inSubprocess(t) {
		return
	}
	geo := geometry{batch: 2, channels: 1, height: 4, width: 5, rois: 2, outH: 2, outW: 2, scale: 1}
	features := dense(tensor.Float64, []int{2, 1, 4, 5}, make([]float64, 40))
	rois := dense(tensor.Float64, []int{2, 5}, []float64{0, 1, 1, 3, 3, 1, 0, 0, 2, 2})
	up := dense(tensor.Float64, []int{2, 1, 2, 2}, make([]float64, 8))
	features32 := dense(tensor.Float32, []int{2, 1, 4, 5}, make([]float64, 40))
	wrongShape := dense(tensor.Float64, []int{2, 1, 5, 4}, make([]float64, 40))
	ints := tensor.New(tensor.WithShape(2, 5), tensor.WithBacking(make([]int, 10)))
	ops := []G.Op{
		alignOp{geo: geo, samplingRatio: -1}, alignDiffOp{alignOp{geo: geo, samplingRatio: 2}},
		poolOp{geo: geo}, poolGradOp{fwd: poolOp{geo: geo}}, poolGradOp{fwd: poolOp{geo: geo}, gather: true},
	}
	cases := []struct {
		name string
		vals func(op G.Op) []G.Value
	}{
		{"too few", func(G.Op) []G.Value { return []G.Value{features} }},
		{"too many", func(op G.Op) []G.Value { return make([]G.Value, op.Arity()+1) }},
		{"nils", func(op G.Op) []G.Value { return make([]G.Value, op.Arity()) }},
		{"scalars", func(op G.Op) []G.Value {
			v := make([]G.Value, op.Arity())
			for i := range v {
				v[i] = G.NewF64(1)
			}
			return v
		}},
		{"wrong shapes", func(op G.Op) []G.Value {
			v := make([]G.Value, op.Arity())
			for i := range v {
				v[i] = wrongShape
			}
			return v
		}},
		{"float32 features, float64 rest", func(op G.Op) []G.Value {
			if _, ok := op.(alignDiffOp); ok {
				return []G.Value{rois, dense(tensor.Float32, []int{2, 1, 2, 2}, make([]float64, 8))}
			}
			return append([]G.Value{features32, rois}, up, up)[:op.Arity()]
		}},
		{"int rois", func(op G.Op) []G.Value {
			if _, ok := op.(alignDiffOp); ok {
				return []G.Value{ints, up}
			}
			return append([]G.Value{features, ints}, up, up)[:op.Arity()]
		}},
	}
	for _, op := range ops {
		for _, c := range cases {
			t.Run(op.String()+"/"+c.name, func(t *testing.T) {
				_, err := op.Do(c.vals(op)...)
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), "roi: ") || !strings.Contains(err.Error(), "RoI") {
					t.Fatalf("error %q does not name the package and the op", err)
				}
			})
		}
	}
}
