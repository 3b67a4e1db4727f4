package op_test

import (
	"fmt"
	"math"

	"github.com/detlab/smoothl1/op"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The Faster R-CNN box loss: two anchors with 4 deltas each; only the first is foreground
// (inside weight 1), outside weights 1/2 normalise over the two sampled anchors. sigma = 3.
func ExampleSmoothL1Loss() {
	g := G.NewGraph()
	pred := G.NewMatrix(g, tensor.Float64, G.WithName("pred"), G.WithShape(2, 4),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking([]float64{0.05, -0.5, 0, 0, 1, 1, 1, 1}))))
	target := G.NewMatrix(g, tensor.Float64, G.WithName("target"), G.WithShape(2, 4),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(make([]float64, 8)))))
	inside := G.NewMatrix(g, tensor.Float64, G.WithName("inside"), G.WithShape(2, 4),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking([]float64{1, 1, 1, 1, 0, 0, 0, 0}))))
	outside := G.NewMatrix(g, tensor.Float64, G.WithName("outside"), G.WithShape(2, 4),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking([]float64{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}))))

	loss, err := op.SmoothL1Loss(pred, target, inside, outside, 3, 1) // sum over deltas, mean over anchors
	if err != nil {
		fmt.Println(err)
		return
	}
	grads, err := G.Grad(loss, pred)
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
	// anchor 0: x = (0.05, -0.5, 0, 0): f = 4.5*0.05^2 + (0.5 - 0.5/9) = 0.01125 + 0.444444
	//          times outside 0.5 = 0.227847; anchor 1: inside 0, f = 0. Mean over anchors: 0.113924.
	// dpred = norm(1/2) * 0.5 * (9*0.05, sign(-0.5), 0, 0) = (0.1125, -0.25, 0, 0).
	fmt.Printf("loss %.6f\n", loss.Value().Data())
	fmt.Printf("dpred %.4f\n", grads[0].Value().Data())
	// Output:
	// loss 0.113924
	// dpred [0.1125 -0.2500 0.0000 0.0000 0.0000 0.0000 0.0000 0.0000]
}

// PyTorch's F.smooth_l1_loss(pred, target, beta=1.0, reduction="sum").
func ExampleSmoothL1() {
	g := G.NewGraph()
	pred := G.NewVector(g, tensor.Float32, G.WithName("pred"), G.WithShape(3),
		G.WithValue(tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{0.5, 2, -3}))))
	target := G.NewVector(g, tensor.Float32, G.WithName("target"), G.WithShape(3),
		G.WithValue(tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{0, 0, 0}))))
	loss, err := op.SmoothL1(pred, target, op.WithBeta(1), op.WithReduction(op.Sum))
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
	fmt.Println(loss.Value()) // 0.125 + 1.5 + 2.5
	// Output:
	// 4.125
}

// ExampleSoftmaxCrossEntropy: PyTorch's F.cross_entropy for a Fast R-CNN box head's class
// logits (two RoIs, background and two classes), one RoI ignored.
func ExampleSoftmaxCrossEntropy() {
	g := G.NewGraph()
	logits := G.NewMatrix(g, tensor.Float64, G.WithName("logits"), G.WithShape(2, 3),
		G.WithValue(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{0, math.Log(3), 0, 5, 1, 2}))))
	labels := G.NewVector(g, tensor.Float64, G.WithName("labels"), G.WithShape(2),
		G.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, -100}))))
	loss, err := op.SoftmaxCrossEntropy(logits, labels) // mean over the rows not ignored
	if err != nil {
		fmt.Println(err)
		return
	}
	grads, err := G.Grad(loss, logits)
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
	// row 0: softmax (1, 3, 1)/5, label 1: loss -ln(3/5) = 0.510826, gradient (0.2, -0.4, 0.2);
	// row 1 is ignored
	fmt.Printf("loss %.6f\n", loss.Value().Data())
	fmt.Printf("dlogits %.1f\n", grads[0].Value().Data())
	// Output:
	// loss 0.510826
	// dlogits [0.2 -0.4 0.2 0.0 0.0 0.0]
}
