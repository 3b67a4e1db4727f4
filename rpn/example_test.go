package rpn_test

import (
	"fmt"

	"github.com/detlab/smoothl1/rpn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The RPN objective for one 64x80 image with one gt box, py-faster-rcnn's configuration, on a
// 4x5 feature map (stride 16) with six anchors per position. The network's outputs are zeros
// here: every objectness term is ln 2 = 0.693147, and the box term measures the targets alone.
func ExampleLoss() {
	cell := rpn.GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2})
	anchors, err := rpn.NewAnchors(cell, 4, 5, 16)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := rpn.DefaultConfig()
	images := []rpn.Image{{Height: 64, Width: 80, Boxes: [][4]float64{{20, 10, 50, 40}}}}
	targets, err := rpn.AssignTargets(cfg, anchors, images)
	if err != nil {
		fmt.Println(err)
		return
	}

	g := G.NewGraph()
	B, A, H, W := targets.B, targets.A, targets.H, targets.W
	scores := G.NewTensor(g, tensor.Float64, 4, G.WithShape(B, 2*A, H, W), G.WithName("scores"), G.WithInit(G.Zeroes()))
	deltas := G.NewTensor(g, tensor.Float64, 4, G.WithShape(B, 4*A, H, W), G.WithName("deltas"), G.WithInit(G.Zeroes()))
	tn, err := rpn.NewTargetNodes(g, tensor.Float64, B, A, H, W, targets)
	if err != nil {
		fmt.Println(err)
		return
	}
	total, cls, reg, err := rpn.Loss(scores, deltas, tn, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := G.Grad(total, scores, deltas); err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	// By hand: the gt (31x31 with +1) best matches the 32x32 anchor [24, 8, 55, 39] (IoU 810/1175
	// = 0.689 < 0.7, positive as the gt's best); its target is (dx, dy, dw, dh) = (-4.5/32, 1.5/32,
	// ln(31/32), ln(31/32)). With sigma 3 (beta 1/9) and zero deltas: f = (0.140625 - 0.5/9) +
	// 4.5*0.046875^2 + 2*4.5*0.0317487^2 = 0.1040285, times the outside weight 1/N_v = 1/53
	// (1 positive + 52 negatives inside the image): reg = 0.001963.
	fmt.Printf("positives %d, negatives %d\n", targets.NumPos[0], targets.NumNeg[0])
	fmt.Printf("cls %.6f reg %.6f total %.6f\n", cls.Value().Data(), reg.Value().Data(), total.Value().Data())
	// Output:
	// positives 1, negatives 52
	// cls 0.693147 reg 0.001963 total 0.695110
}

// A training loop: the target nodes are made once, and each step's Assign labels, samples and
// encodes that step's images straight into them.
func ExampleTargetNodes_Assign() {
	cell := rpn.GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2})
	anchors, err := rpn.NewAnchors(cell, 4, 5, 16)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := rpn.DefaultConfig()
	g := G.NewGraph()
	B, A, H, W := 1, anchors.A, anchors.H, anchors.W
	scores := G.NewTensor(g, tensor.Float64, 4, G.WithShape(B, 2*A, H, W), G.WithName("scores"), G.WithInit(G.Zeroes()))
	deltas := G.NewTensor(g, tensor.Float64, 4, G.WithShape(B, 4*A, H, W), G.WithName("deltas"), G.WithInit(G.Zeroes()))
	tn, err := rpn.NewTargetNodes(g, tensor.Float64, B, A, H, W, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	total, cls, reg, err := rpn.Loss(scores, deltas, tn, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := G.Grad(total, scores, deltas); err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	for step, boxes := range [][][4]float64{{{20, 10, 50, 40}}, nil} {
		images := []rpn.Image{{Height: 64, Width: 80, Boxes: boxes}}
		if err := tn.Assign(cfg, anchors, images); err != nil {
			fmt.Println(err)
			return
		}
		if err := m.RunAll(); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("step %d: cls %.6f reg %.6f\n", step, cls.Value().Data(), reg.Value().Data())
		m.Reset()
	}
	// By hand: step 0 is ExampleLoss's batch (the same numbers); step 1's image has no gt, so
	// all 53 anchors inside it are negatives: cls is still ln 2 (zero scores), reg 0.
	// Output:
	// step 0: cls 0.693147 reg 0.001963
	// step 1: cls 0.693147 reg 0.000000
}

// The targets of ExampleLoss's scene: one positive, the 32x32 anchor that best matches the gt.
func ExampleAssignTargets() {
	anchors, err := rpn.NewAnchors(rpn.GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2}), 4, 5, 16)
	if err != nil {
		fmt.Println(err)
		return
	}
	images := []rpn.Image{{Height: 64, Width: 80, Boxes: [][4]float64{{20, 10, 50, 40}}}}
	t, err := rpn.AssignTargets(rpn.DefaultConfig(), anchors, images)
	if err != nil {
		fmt.Println(err)
		return
	}
	for n, b := range anchors.Boxes {
		a, y, x := n%t.A, n/t.A/t.W, n/t.A%t.W
		if t.Labels[(a*t.H+y)*t.W+x] != 1 {
			continue
		}
		var d [4]float64
		for k := range d {
			d[k] = t.BBoxTargets[((4*a+k)*t.H+y)*t.W+x]
		}
		// by hand (+1 pixels): gt 31x31 centred at (35.5, 25.5), anchor 32x32 at (40, 24):
		// (-4.5/32, 1.5/32, ln(31/32), ln(31/32))
		fmt.Printf("anchor %d (a=%d y=%d x=%d) %v: target %.4f\n", n, a, y, x, b, d)
	}
	fmt.Printf("positives %d, negatives %d\n", t.NumPos[0], t.NumNeg[0])
	// Output:
	// anchor 45 (a=3 y=1 x=2) [24 8 55 39]: target [-0.1406 0.0469 -0.0317 -0.0317]
	// positives 1, negatives 52
}

// A two-level RPN: one matcher over both levels' anchors, so the second gt's best anchor (IoU
// 196/1024 = 0.191 against 64/388 = 0.165 on level 0: a low-quality match) lies on level 1 while
// the first gt matches a level-0 anchor exactly.
func ExampleAssignTargetsLevels() {
	var levels []*rpn.Anchors
	for _, l := range []struct {
		size, stride float64
		side         int
	}{{16, 16, 2}, {32, 32, 1}} {
		an, err := rpn.NewAnchors(rpn.TorchvisionCellAnchors([]float64{l.size}, []float64{1}), l.side, l.side, l.stride)
		if err != nil {
			fmt.Println(err)
			return
		}
		levels = append(levels, an)
	}
	cfg := rpn.TorchvisionConfig()
	images := []rpn.Image{{Height: 32, Width: 32, Boxes: [][4]float64{{8, 8, 24, 24}, {0, 0, 14, 14}}}}
	ts, err := rpn.AssignTargetsLevels(cfg, levels, images)
	if err != nil {
		fmt.Println(err)
		return
	}
	g := G.NewGraph()
	var scores, deltas []*G.Node
	var nodes []*rpn.TargetNodes
	for l, t := range ts {
		fmt.Printf("level %d labels %v\n", l, t.Labels)
		scores = append(scores, G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, t.A, t.H, t.W), G.WithName(fmt.Sprint("scores", l)), G.WithInit(G.Zeroes())))
		deltas = append(deltas, G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 4*t.A, t.H, t.W), G.WithName(fmt.Sprint("deltas", l)), G.WithInit(G.Zeroes())))
		tn, err := rpn.NewTargetNodes(g, tensor.Float64, 1, t.A, t.H, t.W, t)
		if err != nil {
			fmt.Println(err)
			return
		}
		nodes = append(nodes, tn)
	}
	_, cls, _, err := rpn.LossLevels(scores, deltas, nodes, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	// zero logits: each of the 5 sampled anchors costs ln 2, averaged over the 5
	fmt.Printf("cls %.6f\n", cls.Value().Data())
	// Output:
	// level 0 labels [0 0 0 1]
	// level 1 labels [1]
	// cls 0.693147
}

// Proposals from one level of three anchors (16x16, stride 8) on a 32x32 image, torchvision's
// form with NMS at 0.4: clipped to the image the anchors are [0 0 8 8], [0 0 16 8] and
// [8 0 24 8]; neighbours overlap with IoU 64/128 = 0.5, so the best (logit 3) suppresses the
// middle one and the third (IoU 0 with the first) stays.
func ExampleProposals() {
	anchors, err := rpn.NewAnchors(rpn.TorchvisionCellAnchors([]float64{16}, []float64{1}), 1, 3, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := rpn.TorchvisionProposals(false)
	cfg.NMSThresh = 0.4
	logits := tensor.New(tensor.WithShape(1, 1, 1, 3), tensor.WithBacking([]float64{3, 1, 2}))
	deltas := tensor.New(tensor.WithShape(1, 4, 1, 3), tensor.WithBacking(make([]float64, 12)))
	props, err := rpn.Proposals(cfg, []*rpn.Anchors{anchors}, []G.Value{logits}, []G.Value{deltas}, []rpn.Image{{Height: 32, Width: 32}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, b := range props[0].Boxes {
		fmt.Printf("%v score %.4f (sigmoid of the logit)\n", b, props[0].Scores[i])
	}
	// Output:
	// [0 0 8 8] score 0.9526 (sigmoid of the logit)
	// [8 0 24 8] score 0.8808 (sigmoid of the logit)
}

// The nine anchors of the paper (base 16, ratios 0.5/1/2, scales 8/16/32); rpn-reference.md
// lists them.
func ExampleGenerateAnchors() {
	cell, err := rpn.GenerateAnchorsChecked(16, []float64{0.5, 1, 2}, []float64{8, 16, 32})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cell[0], cell[4], cell[8])
	_, err = rpn.GenerateAnchorsChecked(16, []float64{0.5, 0}, []float64{8})
	fmt.Println(err)
	// Output:
	// [-84 -40 99 55] [-120 -120 135 135] [-168 -344 183 359]
	// rpn: GenerateAnchorsChecked: ratio 1 is 0, want finite and > 0
}

// torchvision's FPN anchors for an 800x1216 batch: five levels, sizes 32-512, three ratios; the
// fifth map (13x19) has strides 800 // 13 = 61 down and 1216 // 19 = 64 across.
func ExampleTorchvisionLevels() {
	levels, err := rpn.TorchvisionLevels(800, 1216, [][2]int{{200, 304}, {100, 152}, {50, 76}, {25, 38}, {13, 19}},
		[]float64{32, 64, 128, 256, 512}, []float64{0.5, 1, 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	total := 0
	for _, an := range levels {
		total += len(an.Boxes)
	}
	last := levels[4]
	a := last.A                                      // anchor n = (y*W + x)*A + a: cell (y=1, x=1), a = 1
	fmt.Println(total, last.Boxes[(1*last.W+1)*a+1]) // ratio 1, size 512: [-256 -256 256 256] + (64, 61)
	// Output: 242991 [-192 -195 320 317]
}
