package fastrcnn

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// headResult is a head loss evaluated on one machine.
type headResult struct {
	total, cls, reg        float64
	gradLogits, gradDeltas []float64
}

// runHead builds logits and deltas (rows x K+1, rows x 4(K+1)) bound to the given values, the
// target nodes for tg, and the head Loss; it runs the TapeMachine (G.Grad) or the LispMachine.
func runHead(t *testing.T, dt tensor.Dtype, cfg Config, tg *Targets, rows int, logits, deltas []float64, lisp bool) headResult {
	t.Helper()
	g := G.NewGraph()
	K1 := cfg.NumClasses + 1
	l := G.NewMatrix(g, dt, G.WithShape(rows, K1), G.WithName("logits"), G.WithValue(values.Dense(dt, tensor.Shape{rows, K1}, logits)))
	d := G.NewMatrix(g, dt, G.WithShape(rows, 4*K1), G.WithName("deltas"), G.WithValue(values.Dense(dt, tensor.Shape{rows, 4 * K1}, deltas)))
	tn, err := NewTargetNodes(g, dt, rows, cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	total, cls, reg, err := Loss(l, d, tn)
	if err != nil {
		t.Fatal(err)
	}
	var tv, cv, rv G.Value
	G.Read(total, &tv)
	G.Read(cls, &cv)
	G.Read(reg, &rv)
	var m G.VM
	var grads G.Nodes
	if lisp {
		m = G.NewLispMachine(g)
	} else {
		if grads, err = G.Grad(total, l, d); err != nil {
			t.Fatal(err)
		}
		m = G.NewTapeMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	var r headResult
	for _, p := range []struct {
		v   G.Value
		dst *float64
	}{{tv, &r.total}, {cv, &r.cls}, {rv, &r.reg}} {
		if *p.dst, err = values.Scalar(p.v); err != nil {
			t.Fatal(err)
		}
	}
	if lisp {
		gl, err1 := l.Grad()
		gd, err2 := d.Grad()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		r.gradLogits, r.gradDeltas = values.Float64s(gl), values.Float64s(gd)
	} else {
		r.gradLogits, r.gradDeltas = values.Float64s(grads[0].Value()), values.Float64s(grads[1].Value())
	}
	return r
}

// TestLossGolden: losses and gradients against the fixtures (torchvision's fastrcnn_loss and
// faster-rcnn.pytorch's cross_entropy + _smooth_l1_loss(sigma 1, dim [1]), PyTorch autograd),
// with the targets from SampleTargets and the nodes padded by 7 ignored rows, whose gradients
// must be exactly 0. float64 to 1e-12, float32 to 1e-5.
func TestLossGolden(t *testing.T) {
	g := loadGolden(t)
	const pad = 7
	for _, tc := range goldenCases(g) {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			for _, lisp := range []bool{false, true} {
				name := tc.name + "/" + dt.String() + "/" + map[bool]string{false: "tape", true: "lisp"}[lisp]
				t.Run(name, func(t *testing.T) {
					c := tc.c
					tg, err := SampleTargets(tc.cfg, c.images())
					if err != nil {
						t.Fatal(err)
					}
					R, K1 := tg.Rows(), tc.cfg.NumClasses+1
					rng := rand.New(rand.NewSource(3))
					logits, deltas := flat(c.Logits), flat(c.Deltas)
					for i := 0; i < pad*K1; i++ {
						logits = append(logits, rng.NormFloat64())
					}
					for i := 0; i < pad*4*K1; i++ {
						deltas = append(deltas, rng.NormFloat64())
					}
					r := runHead(t, dt, tc.cfg, tg, R+pad, logits, deltas, lisp)
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 1e-5
					}
					compareSlices(t, "cls", []float64{r.cls}, []float64{c.LossCls}, tol)
					compareSlices(t, "reg", []float64{r.reg}, []float64{c.LossBox}, tol)
					compareSlices(t, "total", []float64{r.total}, []float64{c.LossCls + c.LossBox}, tol)
					compareSlices(t, "dlogits", r.gradLogits[:R*K1], flat(c.GradLogits), tol)
					compareSlices(t, "ddeltas", r.gradDeltas[:R*4*K1], flat(c.GradDeltas), tol)
					compareSlices(t, "dlogits of padding", r.gradLogits[R*K1:], make([]float64, pad*K1), 0)
					compareSlices(t, "ddeltas of padding", r.gradDeltas[R*4*K1:], make([]float64, pad*4*K1), 0)
				})
			}
		}
	}
}

// Hand-derived: no sampled row (S = 0) gives 0, not NaN, and zero gradients.
func TestLossNoRows(t *testing.T) {
	cfg := PyFasterRCNNConfig(2)
	tg, err := SampleTargets(cfg, []Image{{Proposals: [][4]float64{{0, 0, 10, 10}}}}) // IoU 0 < BG_THRESH_LO
	if err != nil {
		t.Fatal(err)
	}
	r := runHead(t, tensor.Float64, cfg, tg, 3, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, make([]float64, 36), false)
	if r.total != 0 || r.cls != 0 || r.reg != 0 {
		t.Fatalf("total %v cls %v reg %v, want 0", r.total, r.cls, r.reg)
	}
	for _, v := range append(r.gradLogits, r.gradDeltas...) {
		if v != 0 {
			t.Fatalf("gradient %v, want zeros", r.gradLogits)
		}
	}
}

func TestTargetNodesSet(t *testing.T) {
	cfg := TorchvisionConfig(2)
	im := []Image{{Proposals: [][4]float64{{0, 0, 10, 10}, {2, 2, 12, 12}}, Boxes: [][4]float64{{1, 1, 11, 11}}, Labels: []int{2}}}
	tg, err := SampleTargets(cfg, im)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	a, err := NewTargetNodes(g, tensor.Float64, 5, cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTargetNodes(g, tensor.Float64, 5, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Labels == b.Labels || b.Labels.Name() != "frcnn_labels_1" {
		t.Fatalf("second call's labels %q: want their own node frcnn_labels_1", b.Labels.Name())
	}
	// 3 rows: the two proposals (IoU 81/119 = 0.68 with the gt: foreground) and the gt; padded to 5
	if a.Sampled() != 3 {
		t.Fatalf("Sampled %d, want 3", a.Sampled())
	}
	labels := values.Float64s(a.Labels.Value())
	if labels[3] != -100 || labels[4] != -100 {
		t.Fatalf("padding labels %v, want -100 (op.DefaultIgnoreIndex)", labels)
	}
	roiNode, err := a.RoIs()
	if err != nil {
		t.Fatal(err)
	}
	rois := values.Float64s(roiNode.Value())
	if got := rois[20:]; got[0] != 0 || got[3] != 1 || got[4] != 1 {
		t.Fatalf("padding roi %v, want (0, 0, 0, 1, 1)", got)
	}
	norm, _ := values.Scalar(a.Norm.Value())
	if norm != 1.0/3 {
		t.Fatalf("Norm %v, want 1/3", norm)
	}

	other := PyFasterRCNNConfig(2)
	tgOther, _ := SampleTargets(other, im)
	reseeded := cfg
	reseeded.Seed = 99
	tgSeed, _ := SampleTargets(reseeded, im)
	if err := a.Set(tgSeed); err != nil {
		t.Fatalf("another seed: %v, want accepted", err)
	}
	big := TorchvisionConfig(2)
	tgBig, _ := SampleTargets(big, []Image{randomImage(rand.New(rand.NewSource(2)), 2, 2, 30, 200)})
	for _, tc := range []struct {
		name string
		set  func() error
		want string
	}{
		{"other config", func() error { return a.Set(tgOther) }, "the targets were made with Config"},
		{"too many rows", func() error { return a.Set(tgBig) }, "sampled rows, the nodes hold 5"},
		{"label out of range", func() error {
			bad := *tg
			bad.Labels = []int{2, 3, 0}
			return a.Set(&bad)
		}, "row 1 has label 3, want 0 (background) to NumClasses=2"},
		{"short arrays", func() error {
			bad := *tg
			bad.InsideWeights = bad.InsideWeights[:5]
			return a.Set(&bad)
		}, "3 labels but 15 roi values, 36 targets, 5 inside"},
		{"nil targets", func() error { return a.Set(nil) }, "targets are nil"},
		{"nil nodes", func() error { var n *TargetNodes; return n.Set(tg) }, "the target nodes are nil"},
		{"nil graph", func() error { _, err := NewTargetNodes(nil, tensor.Float64, 5, cfg, nil); return err }, "graph is nil"},
		{"int dtype", func() error { _, err := NewTargetNodes(g, tensor.Int, 5, cfg, nil); return err }, "dtype int; want float32 or float64"},
		{"zero rows", func() error { _, err := NewTargetNodes(g, tensor.Float64, 0, cfg, nil); return err }, "rows is 0"},
		{"bad config", func() error { _, err := NewTargetNodes(g, tensor.Float64, 5, Config{}, nil); return err }, "Config.NumClasses is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.set()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
