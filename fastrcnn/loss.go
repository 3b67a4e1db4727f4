package fastrcnn

import (
	"fmt"

	"github.com/detlab/smoothl1/op"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Loss is the Fast R-CNN head's objective on the sampled rows of a batch:
//
//	cls   = Norm * Σ_i ce(logits_i, label_i)                                 (op.SoftmaxCrossEntropy, Sum)
//	reg   = Norm * Σ_ij outside_ij smoothL1_beta(inside_ij (deltas_ij - targets_ij))   (op.SmoothL1, Sum)
//	total = cls + reg,   Norm = 1/S
//
// with S the number of sampled rows of the batch and beta the Config's (the nodes'): 1/9 is
// torchvision's fastrcnn_loss (cross_entropy mean + smooth_l1_loss(beta=1/9, "sum") over each
// positive row's class slot / labels.numel()); 1 is faster-rcnn.pytorch's cross_entropy +
// _smooth_l1_loss(bbox_pred, targets, inside, outside, sigma=1, dim=[1]). Padding rows are
// ignored (label op.DefaultIgnoreIndex, zero weights) and count in neither sum.
//
// logits has shape (Rows, K+1), deltas (Rows, 4(K+1)), of the targets' dtype and graph.
// Gradients flow to logits and deltas; targets, weights and Norm are data. With S = 0 every term
// is 0 (PyTorch would give NaN).
func Loss(logits, deltas *G.Node, t *TargetNodes) (total, cls, reg *G.Node, err error) {
	if t == nil || t.Labels == nil || t.BBoxTargets == nil || t.InsideWeights == nil || t.OutsideWeights == nil || t.Norm == nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: target nodes are nil (make them with NewTargetNodes)")
	}
	if logits == nil || deltas == nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: logits (%v) or deltas (%v) is nil", logits != nil, deltas != nil)
	}
	K1 := t.cfg.NumClasses + 1
	if want := (tensor.Shape{t.Rows, K1}); !logits.Shape().Eq(want) {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: logits have shape %v; %d rows and K=%d classes need %v", logits.Shape(), t.Rows, t.cfg.NumClasses, want)
	}
	if want := (tensor.Shape{t.Rows, 4 * K1}); !deltas.Shape().Eq(want) {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: deltas have shape %v; %d rows and K=%d classes need %v", deltas.Shape(), t.Rows, t.cfg.NumClasses, want)
	}
	if err := sameGraph("Loss", t.Labels.Graph(), map[string]*G.Node{"logits": logits, "deltas": deltas}); err != nil {
		return nil, nil, nil, err
	}
	dt := t.Labels.Dtype()
	if logits.Dtype() != dt || deltas.Dtype() != dt {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: logits (%v), deltas (%v) and targets (%v) must share a dtype", logits.Dtype(), deltas.Dtype(), dt)
	}
	ceSum, err := op.SoftmaxCrossEntropy(logits, t.Labels, op.XentReduction(op.Sum), op.XentIgnoreIndex(op.DefaultIgnoreIndex))
	if err != nil {
		return nil, nil, nil, err
	}
	// targets are data (op's default): the gradient goes to deltas only
	boxSum, err := op.SmoothL1(deltas, t.BBoxTargets, op.WithWeights(t.InsideWeights, t.OutsideWeights),
		op.WithBeta(t.cfg.Beta), op.WithReduction(op.Sum))
	if err != nil {
		return nil, nil, nil, err
	}
	if cls, err = G.Mul(ceSum, t.Norm); err != nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: cls: %w", err)
	}
	if reg, err = G.Mul(boxSum, t.Norm); err != nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: reg: %w", err)
	}
	if total, err = G.Add(cls, reg); err != nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Loss: total: %w", err)
	}
	return total, cls, reg, nil
}

// Objective is the full Faster R-CNN training objective,
//
//	total = rpnTotal + cls + reg
//
// with cls and reg the second stage's terms (Loss), returned too. rpnTotal is the RPN's scalar
// objective (rpn.Loss's total) in the same graph and dtype.
func Objective(rpnTotal, logits, deltas *G.Node, t *TargetNodes) (total, cls, reg *G.Node, err error) {
	if rpnTotal == nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Objective: rpnTotal is nil")
	}
	if !rpnTotal.IsScalar() {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Objective: rpnTotal has shape %v; want a scalar (the RPN objective)", rpnTotal.Shape())
	}
	head, cls, reg, err := Loss(logits, deltas, t)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := sameGraph("Objective", t.Labels.Graph(), map[string]*G.Node{"rpnTotal": rpnTotal}); err != nil {
		return nil, nil, nil, err
	}
	if rpnTotal.Dtype() != head.Dtype() {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Objective: rpnTotal has dtype %v, the head %v", rpnTotal.Dtype(), head.Dtype())
	}
	if total, err = G.Add(rpnTotal, head); err != nil {
		return nil, nil, nil, fmt.Errorf("fastrcnn: Objective: total: %w", err)
	}
	return total, cls, reg, nil
}

// sameGraph reports a node of another graph than the targets' (constants, of no graph, pass).
func sameGraph(fn string, g *G.ExprGraph, nodes map[string]*G.Node) error {
	for _, name := range []string{"logits", "deltas", "rpnTotal"} {
		if n, ok := nodes[name]; ok && n.Graph() != nil && n.Graph() != g {
			return fmt.Errorf("fastrcnn: %s: %s belongs to a different graph than the target nodes", fn, name)
		}
	}
	return nil
}
