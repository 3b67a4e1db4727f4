package rpn

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestAssignNodesNoStaleValues: nodes refreshed with Assign over steps with different gt counts
// (images without gt among them) and image sizes hold, at every step, the bits that Set gives
// other nodes from a fresh AssignTargetsLevels (the package's own unreused path, which the goldens
// check against torchvision and py-faster-rcnn), in float32 and float64, with one and two
// levels; a Set between two Assigns on the same nodes changes nothing either.
func TestAssignNodesNoStaleValues(t *testing.T) {
	l0, l1 := twoLevels(t)
	steps := []struct {
		gts  []int
		size float64
	}{
		{[]int{20, 3, 0}, 256}, {[]int{0, 0, 0}, 256}, {[]int{5, 0, 1}, 200}, {[]int{0, 40, 2}, 256},
		{[]int{2, 0, 7}, 256}, {[]int{0, 9, 0}, 180}, {[]int{1, 1, 60}, 256},
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, tc := range []struct {
			name   string
			cfg    Config
			levels []*Anchors
		}{
			{"torchvision one level", TorchvisionConfig(), []*Anchors{l0}},
			{"py-faster-rcnn one level", DefaultConfig(), []*Anchors{l0}},
			{"torchvision two levels", TorchvisionConfig(), []*Anchors{l0, l1}},
			{"py-faster-rcnn positive weight", func() Config { c := DefaultConfig(); c.PositiveWeight = 0.4; return c }(), []*Anchors{l0}},
			{"detectron2 two levels", Detectron2Config(), []*Anchors{l0, l1}},
		} {
			t.Run(fmt.Sprintf("%v/%s", dt, tc.name), func(t *testing.T) {
				B := len(steps[0].gts)
				mk := func() []*TargetNodes {
					g := G.NewGraph()
					var ns []*TargetNodes
					for _, an := range tc.levels {
						tn, err := NewTargetNodes(g, dt, B, an.A, an.H, an.W, nil)
						if err != nil {
							t.Fatal(err)
						}
						ns = append(ns, tn)
					}
					return ns
				}
				got, want := mk(), mk()
				rng := rand.New(rand.NewSource(23))
				for s, st := range steps {
					images := make([]Image, B)
					for b, n := range st.gts {
						images[b] = Image{Height: st.size, Width: st.size, Boxes: randomBoxes(rng, n, st.size, 10, 120)}
					}
					if s == 3 { // Set in between: Assign must not rely on what it wrote last
						prev, err := AssignTargetsLevels(tc.cfg, tc.levels, images)
						if err != nil {
							t.Fatal(err)
						}
						for l, tn := range got {
							if err := tn.Set(prev[l]); err != nil {
								t.Fatal(err)
							}
						}
						images[0].Boxes = nil // and this step's first image has no gt
					}
					if err := AssignNodesLevels(tc.cfg, tc.levels, got, images); err != nil {
						t.Fatal(err)
					}
					ts, err := AssignTargetsLevels(tc.cfg, tc.levels, images)
					if err != nil {
						t.Fatal(err)
					}
					for l, tn := range want {
						if err := tn.Set(ts[l]); err != nil {
							t.Fatal(err)
						}
					}
					for l := range got {
						g, w := got[l].all(), want[l].all()
						for i := range g {
							what := fmt.Sprintf("step %d (gt %v) level %d %s", s, st.gts, l, targetNames[i])
							if g[i].Value().Dtype() != dt {
								t.Fatalf("%s: dtype %v, want %v", what, g[i].Value().Dtype(), dt)
							}
							sameBits(t, what, values.Float64s(g[i].Value()), values.Float64s(w[i].Value()))
						}
					}
				}
			})
		}
	}
}

// TestAssignNodesOneLevel: TargetNodes.Assign is AssignNodesLevels with one level, and a loss
// built on the nodes runs with the values bound.
func TestAssignNodesOneLevel(t *testing.T) {
	an, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{2, 4, 8}), 16, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	images := []Image{{Height: 256, Width: 256, Boxes: randomBoxes(rng, 6, 256, 10, 120)}, {Height: 256, Width: 256}}
	cfg := TorchvisionConfig()
	g := G.NewGraph()
	a, err := NewTargetNodes(g, tensor.Float64, 2, an.A, an.H, an.W, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTargetNodes(g, tensor.Float64, 2, an.A, an.H, an.W, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Assign(cfg, an, images); err != nil {
		t.Fatal(err)
	}
	if err := AssignNodesLevels(cfg, []*Anchors{an}, []*TargetNodes{b}, images); err != nil {
		t.Fatal(err)
	}
	for i, n := range a.all() {
		sameBits(t, targetNames[i], values.Float64s(n.Value()), values.Float64s(b.all()[i].Value()))
	}
	shape := []int{2, an.A, an.H, an.W}
	scores := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithValue(values.Dense(tensor.Float64, shape, make([]float64, 2*an.A*an.H*an.W))), G.WithName("scores"))
	dshape := []int{2, 4 * an.A, an.H, an.W}
	deltas := G.NewTensor(g, tensor.Float64, 4, G.WithShape(dshape...), G.WithValue(values.Dense(tensor.Float64, dshape, make([]float64, 8*an.A*an.H*an.W))), G.WithName("deltas"))
	total, _, _, err := Loss(scores, deltas, a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	// all scores 0: every sampled anchor's binary cross-entropy is log 2, and the PerBatch weights
	// 1/S add up to 1 over the S sampled anchors (hand-derived); zero deltas leave the regression
	// term positive, so the total is above log 2
	if v := total.Value().Data().(float64); !(v > 0.6931471805599453) {
		t.Fatalf("total loss %v, want > log 2", v)
	}
}

// TestAssignNodesBadInput: every bad argument is an error naming it, and the nodes keep the
// values they had.
func TestAssignNodesBadInput(t *testing.T) {
	an, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{2, 4, 8}), 8, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAnchors(GenerateAnchors(16, []float64{1}, []float64{4}), 4, 4, 32)
	if err != nil {
		t.Fatal(err)
	}
	images := []Image{{Height: 128, Width: 128, Boxes: [][4]float64{{10, 10, 60, 70}}}}
	g := G.NewGraph()
	tn, err := NewTargetNodes(g, tensor.Float32, 1, an.A, an.H, an.W, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn2, err := NewTargetNodes(g, tensor.Float64, 1, other.A, other.H, other.W, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TorchvisionConfig()
	if err := tn.Assign(cfg, an, images); err != nil {
		t.Fatal(err)
	}
	before := values.Float64s(tn.Labels.Value())
	// a loss with another normalisation on a second set of nodes
	g2 := G.NewGraph()
	withLoss, err := NewTargetNodes(g2, tensor.Float64, 1, an.A, an.H, an.W, nil)
	if err != nil {
		t.Fatal(err)
	}
	shape := []int{1, an.A, an.H, an.W}
	s := G.NewTensor(g2, tensor.Float64, 4, G.WithShape(shape...), G.WithName("s"))
	d := G.NewTensor(g2, tensor.Float64, 4, G.WithShape(1, 4*an.A, an.H, an.W), G.WithName("d"))
	if _, _, _, err := Loss(s, d, withLoss, cfg); err != nil {
		t.Fatal(err)
	}
	var nilNodes *TargetNodes
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"nil nodes", func() error { return nilNodes.Assign(cfg, an, images) }, "the target nodes are nil"},
		{"nil anchors", func() error { return tn.Assign(cfg, nil, images) }, "anchors are nil"},
		{"two images", func() error { return tn.Assign(cfg, an, append(images, images...)) }, "made for B=1 A=9 H=8 W=8, the anchors are A=9 H=8 W=8 for 2 images"},
		{"other anchors", func() error { return tn.Assign(cfg, other, images) }, "the anchors are A=1 H=4 W=4"},
		{"no images", func() error { return tn.Assign(cfg, an, nil) }, "for 0 images"},
		{"bad gt", func() error {
			return tn.Assign(cfg, an, []Image{{Height: 128, Width: 128, Boxes: [][4]float64{{10, 10, 5, 70}}}})
		}, "image 0, gt box 0"},
		{"bad config", func() error { c := cfg; c.FgFraction = 2; return tn.Assign(c, an, images) }, "FgFraction"},
		{"no levels", func() error { return AssignNodesLevels(cfg, nil, nil, images) }, "no levels"},
		{"count", func() error { return AssignNodesLevels(cfg, []*Anchors{an, other}, []*TargetNodes{tn}, images) }, "1 target nodes for 2 levels"},
		{"same nodes twice", func() error {
			return AssignNodesLevels(cfg, []*Anchors{an, an}, []*TargetNodes{tn, tn}, images)
		}, "levels 0 and 1 have the same target nodes"},
		{"dtypes", func() error {
			return AssignNodesLevels(cfg, []*Anchors{an, other}, []*TargetNodes{tn, tn2}, images)
		}, "level 1's nodes are float64, level 0's float32"},
		{"nil level nodes", func() error {
			return AssignNodesLevels(cfg, []*Anchors{an, other}, []*TargetNodes{tn, nil}, images)
		}, "level 1: the target nodes are nil"},
		{"normalisation", func() error { return withLoss.Assign(DefaultConfig(), an, images) }, "but the loss uses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			sameBits(t, "labels after the error", values.Float64s(tn.Labels.Value()), before)
		})
	}
}

// TestAssignNodesTamperedNodes: TargetNodes' fields are exported; nodes changed after
// NewTargetNodes (another B, a node of the wrong shape or dtype, a nil node, a zero value) are an
// error from Assign and Set, not a crash in a worker goroutine (found by review: slice bounds out
// of range and an interface conversion panic). In a child process, so a regression is reported.
func TestAssignNodesTamperedNodes(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	an, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{2, 4, 8}), 8, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	img := Image{Height: 128, Width: 128, Boxes: [][4]float64{{10, 10, 60, 70}}}
	cfg := TorchvisionConfig()
	fresh := func(dt tensor.Dtype) (*G.ExprGraph, *TargetNodes) {
		g := G.NewGraph()
		tn, err := NewTargetNodes(g, dt, 1, an.A, an.H, an.W, nil)
		if err != nil {
			t.Fatal(err)
		}
		return g, tn
	}
	targets, err := AssignTargets(cfg, an, []Image{img})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func() *TargetNodes
		images int
		want   string
	}{
		{"B changed", func() *TargetNodes { _, tn := fresh(tensor.Float64); tn.B = 2; return tn }, 2, "has shape (1, 9, 8, 8)"},
		{"small bbox node", func() *TargetNodes {
			g, tn := fresh(tensor.Float64)
			tn.BBoxTargets = G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, an.A, an.H, an.W), G.WithName("small"))
			return tn
		}, 1, "target node small has shape (1, 9, 8, 8)"},
		{"float64 node among float32", func() *TargetNodes {
			g, tn := fresh(tensor.Float32)
			tn.ClsWeights = G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, an.A, an.H, an.W), G.WithName("w64"))
			return tn
		}, 1, "target node w64 has dtype float64"},
		{"nil node", func() *TargetNodes { _, tn := fresh(tensor.Float32); tn.InsideWeights = nil; return tn }, 1, "rpn_bbox_inside_weights is nil"},
		{"zero value", func() *TargetNodes { return &TargetNodes{B: 1, A: an.A, H: an.H, W: an.W} }, 1, "rpn_labels is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images := make([]Image, tc.images)
			for i := range images {
				images[i] = img
			}
			if err := tc.tamper().Assign(cfg, an, images); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Assign: error %v, want one containing %q", err, tc.want)
			}
			if tc.images == 1 {
				if err := tc.tamper().Set(targets); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Set: error %v, want one containing %q", err, tc.want)
				}
			}
		})
	}
}
