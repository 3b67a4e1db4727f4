package fastrcnn_test

import (
	"fmt"

	"github.com/detlab/smoothl1/fastrcnn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// One image, one gt of class 2, three proposals, py-faster-rcnn's preset (+1 pixels). By hand:
// proposal 0 covers 80 of the gt's 100 pixels (IoU 0.8: foreground), proposal 1 half of it
// (IoU 50/150 = 0.33: background), proposal 2 nothing (IoU 0 < BG_THRESH_LO 0.1: not sampled),
// the appended gt itself IoU 1. Rows: foreground first, then background, each in proposal order.
// Proposal 0's target: dy = (5 - 4)/8 = 0.125, dh = ln(10/8) = 0.2231, divided by the stds
// (0.1, 0.1, 0.2, 0.2), in columns 8..11 (class 2).
func ExampleSampleTargets() {
	cfg := fastrcnn.PyFasterRCNNConfig(2) // K = 2 classes
	targets, err := fastrcnn.SampleTargets(cfg, []fastrcnn.Image{{
		Proposals: [][4]float64{{0, 0, 9, 7}, {5, 0, 14, 9}, {50, 50, 59, 59}},
		Boxes:     [][4]float64{{0, 0, 9, 9}},
		Labels:    []int{2},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("labels", targets.Labels, "from candidates", targets.Source)
	fmt.Println("rois", targets.RoIs)
	fmt.Printf("row 0 targets %.4f\n", targets.BBoxTargets[:12])
	fmt.Println("row 0 inside ", targets.InsideWeights[:12])
	// Output:
	// labels [2 2 0] from candidates [0 3 1]
	// rois [0 0 0 9 7 0 0 0 9 9 0 5 0 14 9]
	// row 0 targets [0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000 1.2500 0.0000 1.1157]
	// row 0 inside  [0 0 0 0 0 0 0 0 1 1 1 1]
}

// The head's loss on those targets, with the nodes padded to 4 rows and zero logits and deltas.
// By hand: each of the S = 3 rows has cross-entropy ln 3 (uniform over 3 classes), so cls =
// ln 3 = 1.0986; the box term (beta 1) is f(1.25) + f(1.1157) = 0.75 + 0.6157 over S = 3, 0.4552;
// dlogits of row 0 = (1/3)(1/3, 1/3, 1/3 - 1).
func ExampleLoss() {
	cfg := fastrcnn.PyFasterRCNNConfig(2)
	targets, err := fastrcnn.SampleTargets(cfg, []fastrcnn.Image{{
		Proposals: [][4]float64{{0, 0, 9, 7}, {5, 0, 14, 9}, {50, 50, 59, 59}},
		Boxes:     [][4]float64{{0, 0, 9, 9}},
		Labels:    []int{2},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	const rows = 4 // images * cfg.BatchSize in training; padding rows are ignored
	g := G.NewGraph()
	tn, err := fastrcnn.NewTargetNodes(g, tensor.Float64, rows, cfg, targets) // tn.Set(next) every step
	if err != nil {
		fmt.Println(err)
		return
	}
	logits := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, 3), G.WithName("logits"), G.WithInit(G.Zeroes()))
	deltas := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, 12), G.WithName("deltas"), G.WithInit(G.Zeroes()))
	total, cls, reg, err := fastrcnn.Loss(logits, deltas, tn) // or fastrcnn.Objective(rpnTotal, ...)
	if err != nil {
		fmt.Println(err)
		return
	}
	var clsV, regV, totalV G.Value // read values through G.Read: the tape reuses registers
	G.Read(cls, &clsV)
	G.Read(reg, &regV)
	G.Read(total, &totalV)
	grads, err := G.Grad(total, logits, deltas)
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
	fmt.Printf("cls %.4f reg %.4f total %.4f\n", clsV.Data(), regV.Data(), totalV.Data())
	fmt.Printf("dlogits row 0 %.4f\n", grads[0].Value().Data().([]float64)[:3])
	// Output:
	// cls 1.0986 reg 0.4552 total 1.5539
	// dlogits row 0 [0.1111 0.1111 -0.2222]
}
