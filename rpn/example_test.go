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
