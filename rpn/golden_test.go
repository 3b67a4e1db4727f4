package rpn

import (
	"math"
	"testing"

	"github.com/detlab/smoothl1/box"
	"github.com/detlab/smoothl1/internal/testkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fixtures: testdata/rpn_golden.json, written by testdata/gen_rpn_fixtures.py from torchvision
// 0.14 / PyTorch 1.13 and a numpy re-derivation of py-faster-rcnn's anchor_target_layer.
type rpnGolden struct {
	GenerateAnchorsDefault []float64 `json:"generate_anchors_default"`
	GenerateAnchorsSmall   struct {
		Base    float64   `json:"base"`
		Ratios  []float64 `json:"ratios"`
		Scales  []float64 `json:"scales"`
		Anchors []float64 `json:"anchors"`
	} `json:"generate_anchors_small"`
	TorchvisionAnchors struct {
		Sizes, Ratios []float64
		H, W          int
		Stride        float64
		Cell, Grid    []float64
	} `json:"torchvision_anchors"`
	Coding struct {
		Anchors         []float64 `json:"anchors"`
		Gts             []float64 `json:"gts"`
		Deltas          []float64 `json:"deltas"`
		BigDeltas       []float64 `json:"big_deltas"`
		PyEncode        []float64 `json:"pyfrcnn_encode"`
		PyDecode        []float64 `json:"pyfrcnn_decode"`
		TvEncode        []float64 `json:"tv_encode"`
		TvEncodeW       []float64 `json:"tv_encode_w"`
		TvDecode        []float64 `json:"tv_decode"`
		TvDecodeW       []float64 `json:"tv_decode_w"`
		TvDecodeClamped []float64 `json:"tv_decode_clamped"`
	} `json:"coding"`
	IoU struct {
		A, B, Tv, Pyfrcnn []float64
	} `json:"iou"`
	NMS struct {
		Boxes, Scores []float64
		Thresh        float64
		Keep          []int
	} `json:"nms"`
	Torchvision struct {
		ImH         float64 `json:"im_h"`
		ImW         float64 `json:"im_w"`
		H, W, A     int
		Stride      float64
		Gt          [][]float64
		Labels      [][]float64
		RegTargets  [][]float64 `json:"reg_targets"`
		Objectness  []float64
		Deltas      []float64
		ClsLoss     float64   `json:"cls_loss"`
		BoxLoss     float64   `json:"box_loss"`
		DObjectness []float64 `json:"dobjectness"`
		DDeltas     []float64 `json:"ddeltas"`
	} `json:"torchvision_rpn"`
	Pyfrcnn struct {
		ImH         float64 `json:"im_h"`
		ImW         float64 `json:"im_w"`
		H, W, A     int
		Stride      float64
		Scales      []float64
		Ratios      []float64
		Gt          [][]float64
		Nv          []int
		Labels      []float64
		BBoxTargets []float64 `json:"bbox_targets"`
		Inside      []float64
		Outside     []float64
		Scores      []float64
		Deltas      []float64
		ClsLoss     float64   `json:"cls_loss"`
		BoxLoss     float64   `json:"box_loss"`
		DScores     []float64 `json:"dscores"`
		DDeltas     []float64 `json:"ddeltas"`
	} `json:"pyfrcnn_rpn"`
}

func loadRPNGolden(t *testing.T) *rpnGolden {
	t.Helper()
	var g rpnGolden
	testkit.ReadJSON(t, "testdata/rpn_golden.json", &g)
	return &g
}

func boxesOf(flat []float64) [][4]float64 {
	out := make([][4]float64, len(flat)/4)
	for i := range out {
		copy(out[i][:], flat[4*i:4*i+4])
	}
	return out
}

func flatten(b [][4]float64) []float64 {
	out := make([]float64, 0, 4*len(b))
	for _, x := range b {
		out = append(out, x[:]...)
	}
	return out
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol*(1+math.Abs(want[i])) || math.IsNaN(got[i]) != math.IsNaN(want[i]) {
			t.Fatalf("%s[%d] = %.17g, want %.17g", what, i, got[i], want[i])
		}
	}
}

// The nine anchors of rpn-reference.md's table, also in the fixture (numpy generate_anchors).
func TestGenerateAnchorsPaperTable(t *testing.T) {
	want := []float64{
		-84, -40, 99, 55, -176, -88, 191, 103, -360, -184, 375, 199,
		-56, -56, 71, 71, -120, -120, 135, 135, -248, -248, 263, 263,
		-36, -80, 51, 95, -80, -168, 95, 183, -168, -344, 183, 359,
	}
	got := flatten(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{8, 16, 32}))
	assertClose(t, "table", got, want, 0)
	g := loadRPNGolden(t)
	assertClose(t, "fixture", got, g.GenerateAnchorsDefault, 0)
	s := g.GenerateAnchorsSmall
	assertClose(t, "small", flatten(GenerateAnchors(s.Base, s.Ratios, s.Scales)), s.Anchors, 0)
}

func TestTorchvisionAnchors(t *testing.T) {
	g := loadRPNGolden(t).TorchvisionAnchors
	cell := TorchvisionCellAnchors(g.Sizes, g.Ratios)
	assertClose(t, "cell", flatten(cell), g.Cell, 0)
	grid, err := ShiftAnchors(cell, g.H, g.W, g.Stride)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "grid", flatten(grid), g.Grid, 0)
}

func TestBoxCodingGolden(t *testing.T) {
	c := loadRPNGolden(t).Coding
	anchors, gts, deltas, big := boxesOf(c.Anchors), boxesOf(c.Gts), boxesOf(c.Deltas), boxesOf(c.BigDeltas)
	tvw := TorchvisionCoder()
	tvw.Weights = [4]float64{10, 10, 5, 5}
	var pe, pd, te, tew, td, tdw, tdc [][4]float64
	for i := range anchors {
		pe = append(pe, PyFasterRCNNCoder().Encode(anchors[i], gts[i]))
		pd = append(pd, PyFasterRCNNCoder().Decode(anchors[i], deltas[i]))
		te = append(te, TorchvisionCoder().Encode(anchors[i], gts[i]))
		tew = append(tew, tvw.Encode(anchors[i], gts[i]))
		td = append(td, TorchvisionCoder().Decode(anchors[i], deltas[i]))
		tdw = append(tdw, tvw.Decode(anchors[i], deltas[i]))
		tdc = append(tdc, TorchvisionCoder().Decode(anchors[i], big[i]))
	}
	assertClose(t, "py encode", flatten(pe), c.PyEncode, 1e-12)
	assertClose(t, "py decode", flatten(pd), c.PyDecode, 1e-12)
	assertClose(t, "tv encode", flatten(te), c.TvEncode, 1e-12)
	assertClose(t, "tv encode weights", flatten(tew), c.TvEncodeW, 1e-12)
	assertClose(t, "tv decode", flatten(td), c.TvDecode, 1e-12)
	assertClose(t, "tv decode weights", flatten(tdw), c.TvDecodeW, 1e-12)
	assertClose(t, "tv decode clamped", flatten(tdc), c.TvDecodeClamped, 1e-12)
	// rpn-reference.md: anchor [-84,-40,99,55], gt [10,20,110,80] → [0.2853261, 0.4427083, -0.5998152, -0.4534743]
	assertClose(t, "reference example", pe[0][:], []float64{0.2853261, 0.4427083, -0.5998152, -0.4534743}, 1e-7)
}

func TestIoUAndNMSGolden(t *testing.T) {
	g := loadRPNGolden(t)
	a, b := boxesOf(g.IoU.A), boxesOf(g.IoU.B)
	assertClose(t, "torchvision box_iou", box.IoUMatrix(a, b, false), g.IoU.Tv, 1e-15)
	assertClose(t, "py-faster-rcnn bbox_overlaps", box.IoUMatrix(a, b, true), g.IoU.Pyfrcnn, 1e-15)
	keep, err := box.NMS(boxesOf(g.NMS.Boxes), g.NMS.Scores, g.NMS.Thresh, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != len(g.NMS.Keep) {
		t.Fatalf("NMS kept %v, torchvision.ops.nms kept %v", keep, g.NMS.Keep)
	}
	for i := range keep {
		if keep[i] != g.NMS.Keep[i] {
			t.Fatalf("NMS kept %v, torchvision.ops.nms kept %v", keep, g.NMS.Keep)
		}
	}
}

func imagesOf(h, w float64, gts [][]float64) []Image {
	out := make([]Image, len(gts))
	for i, g := range gts {
		out[i] = Image{Height: h, Width: w, Boxes: boxesOf(g)}
	}
	return out
}

// runLoss evaluates the RPN loss and its gradients on a TapeMachine or a LispMachine.
func runLoss(t *testing.T, cfg Config, tg *Targets, scoresShape []int, scores, deltas []float64, dt tensor.Dtype, lisp bool) (cls, reg float64, dscores, ddeltas []float64) {
	t.Helper()
	g := G.NewGraph()
	s := G.NewTensor(g, dt, 4, G.WithShape(scoresShape...), G.WithValue(values.Dense(dt, scoresShape, scores)), G.WithName("scores"))
	dshape := []int{tg.B, 4 * tg.A, tg.H, tg.W}
	d := G.NewTensor(g, dt, 4, G.WithShape(dshape...), G.WithValue(values.Dense(dt, dshape, deltas)), G.WithName("deltas"))
	tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
	if err != nil {
		t.Fatal(err)
	}
	total, c, r, err := Loss(s, d, tn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var grads G.Nodes
	var m G.VM
	if lisp {
		m = G.NewLispMachine(g)
	} else {
		if grads, err = G.Grad(total, s, d); err != nil {
			t.Fatal(err)
		}
		m = G.NewTapeMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	cls, reg = scalarValue(t, c.Value()), scalarValue(t, r.Value())
	if lisp {
		gs, _ := s.Grad()
		gd, _ := d.Grad()
		return cls, reg, floats(gs), floats(gd)
	}
	return cls, reg, floats(grads[0].Value()), floats(grads[1].Value())
}

func scalarValue(t *testing.T, v G.Value) float64 {
	t.Helper()
	f, err := values.Scalar(v)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func floats(v G.Value) []float64 { return values.Float64s(v) }

// TestTorchvisionParity: TorchvisionConfig reproduces assign_targets_to_anchors (labels),
// box_coder.encode (targets of positives) and compute_loss (both losses and both gradients) of
// torchvision 0.14 on three images with 1, 3 and 0 gt boxes, to 1e-12.
func TestTorchvisionParity(t *testing.T) {
	g := loadRPNGolden(t).Torchvision
	tvA := loadRPNGolden(t).TorchvisionAnchors
	an, err := NewAnchors(TorchvisionCellAnchors(tvA.Sizes, tvA.Ratios), g.H, g.W, g.Stride)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TorchvisionConfig()
	tg, err := AssignTargets(cfg, an, imagesOf(g.ImH, g.ImW, g.Gt))
	if err != nil {
		t.Fatal(err)
	}
	A, H, W := g.A, g.H, g.W
	for b := range g.Labels {
		for n, want := range g.Labels[b] {
			a, y, x := n%A, (n/A)/W, (n/A)%W
			li := ((b*A+a)*H+y)*W + x
			if tg.Labels[li] != want {
				t.Fatalf("image %d anchor %d (a=%d y=%d x=%d): label %v, torchvision %v", b, n, a, y, x, tg.Labels[li], want)
			}
			if want != 1 {
				continue
			}
			for k := 0; k < 4; k++ {
				ci := ((b*4*A+4*a+k)*H+y)*W + x
				if math.Abs(tg.BBoxTargets[ci]-g.RegTargets[b][4*n+k]) > 1e-12 {
					t.Fatalf("image %d anchor %d delta %d: %v, torchvision %v", b, n, k, tg.BBoxTargets[ci], g.RegTargets[b][4*n+k])
				}
			}
		}
	}
	for _, lisp := range []bool{false, true} {
		cls, reg, ds, dd := runLoss(t, cfg, tg, []int{len(g.Gt), A, H, W}, g.Objectness, g.Deltas, tensor.Float64, lisp)
		assertClose(t, "cls", []float64{cls}, []float64{g.ClsLoss}, 1e-12)
		assertClose(t, "reg", []float64{reg}, []float64{g.BoxLoss}, 1e-12)
		assertClose(t, "dobjectness", ds, g.DObjectness, 1e-12)
		assertClose(t, "ddeltas", dd, g.DDeltas, 1e-12)
	}
}

// TestPyFasterRCNNParity: DefaultConfig reproduces the numpy re-derivation of
// anchor_target_layer (labels, bbox targets, inside and outside weights, laid out (B, A, H, W)
// and (B, 4A, H, W)) and the loss (2-class softmax cross-entropy averaged per image, then over
// images, plus the seed's smooth L1 with dim [1, 2, 3], sigma 3) with both gradients, to 1e-12.
func TestPyFasterRCNNParity(t *testing.T) {
	g := loadRPNGolden(t).Pyfrcnn
	an, err := NewAnchors(GenerateAnchors(16, g.Ratios, g.Scales), g.H, g.W, g.Stride)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	tg, err := AssignTargets(cfg, an, imagesOf(g.ImH, g.ImW, g.Gt))
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "labels", tg.Labels, g.Labels, 0)
	assertClose(t, "bbox targets", tg.BBoxTargets, g.BBoxTargets, 1e-12)
	assertClose(t, "inside weights", tg.InsideWeights, g.Inside, 0)
	assertClose(t, "outside weights", tg.OutsideWeights, g.Outside, 1e-15)
	for b, nv := range g.Nv {
		if tg.NumPos[b]+tg.NumNeg[b] != nv {
			t.Fatalf("image %d: N_v %d, reference %d", b, tg.NumPos[b]+tg.NumNeg[b], nv)
		}
	}
	for _, lisp := range []bool{false, true} {
		cls, reg, ds, dd := runLoss(t, cfg, tg, []int{len(g.Gt), 2 * g.A, g.H, g.W}, g.Scores, g.Deltas, tensor.Float64, lisp)
		assertClose(t, "cls", []float64{cls}, []float64{g.ClsLoss}, 1e-12)
		assertClose(t, "reg", []float64{reg}, []float64{g.BoxLoss}, 1e-12)
		assertClose(t, "dscores", ds, g.DScores, 1e-12)
		assertClose(t, "ddeltas", dd, g.DDeltas, 1e-12)
	}
}
