package rpn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Assign labels, samples and encodes the anchors of images, as AssignTargets, and binds the
// targets to the nodes, as Set: tn.Assign(cfg, anchors, images) gives the nodes the values of
// tn.Set(AssignTargets(cfg, anchors, images)), bit for bit, without the Targets. The targets are
// written straight into the tensors bound to the nodes, in the nodes' dtype, every element at
// each call, and the nodes keep their tensors and the assignment's scratch from one call to the
// next, so a step allocates nothing that grows with the anchor count. It is a training loop's
// call; AssignTargets is for reading the targets.
//
// The nodes must have been made for len(images) images and the anchors' A, H, W. Errors are
// AssignTargets', a Config whose normalisation is not the Loss's, and nodes that are not the
// shapes and dtype NewTargetNodes made; on these the nodes keep their values. Not safe for
// concurrent use on the same nodes.
func (tn *TargetNodes) Assign(cfg Config, anchors *Anchors, images []Image) error {
	if tn == nil {
		return fmt.Errorf("rpn: TargetNodes.Assign: the target nodes are nil (make them with NewTargetNodes)")
	}
	if anchors == nil {
		return fmt.Errorf("rpn: TargetNodes.Assign: anchors are nil")
	}
	return assignNodes("TargetNodes.Assign", cfg, []*Anchors{anchors}, []*TargetNodes{tn}, images)
}

// AssignNodesLevels is TargetNodes.Assign for a multi-level (FPN) RPN: nodes[l] receive level
// l's targets of AssignTargetsLevels(cfg, levels, images), as if Set with them, bit for bit. The
// scratch of the assignment is kept by nodes[0]. Each level needs its own nodes, all of one dtype.
func AssignNodesLevels(cfg Config, levels []*Anchors, nodes []*TargetNodes, images []Image) error {
	return assignNodes("AssignNodesLevels", cfg, levels, nodes, images)
}

func assignNodes(fn string, cfg Config, levels []*Anchors, nodes []*TargetNodes, images []Image) error {
	if len(levels) == 0 {
		return fmt.Errorf("rpn: %s: no levels", fn)
	}
	if len(nodes) != len(levels) {
		return fmt.Errorf("rpn: %s: %d target nodes for %d levels; want one per level", fn, len(nodes), len(levels))
	}
	level := func(l int) string {
		if len(levels) == 1 {
			return ""
		}
		return fmt.Sprintf("level %d: ", l)
	}
	for l, tn := range nodes {
		an := levels[l]
		switch {
		case tn == nil:
			return fmt.Errorf("rpn: %s: %sthe target nodes are nil (make them with NewTargetNodes)", fn, level(l))
		case an == nil:
			return fmt.Errorf("rpn: %s: %sanchors are nil", fn, level(l))
		case tn.B != len(images) || tn.A != an.A || tn.H != an.H || tn.W != an.W:
			return fmt.Errorf("rpn: %s: %sthe nodes were made for B=%d A=%d H=%d W=%d, the anchors are A=%d H=%d W=%d for %d images",
				fn, level(l), tn.B, tn.A, tn.H, tn.W, an.A, an.H, an.W, len(images))
		}
		if err := tn.checkNodes(); err != nil {
			return fmt.Errorf("rpn: %s: %s%w", fn, level(l), err)
		}
		if dt := tn.Labels.Dtype(); dt != nodes[0].Labels.Dtype() {
			return fmt.Errorf("rpn: %s: level %d's nodes are %v, level 0's %v; want one dtype", fn, l, dt, nodes[0].Labels.Dtype())
		}
		for k := range l {
			if nodes[k] == tn {
				return fmt.Errorf("rpn: %s: levels %d and %d have the same target nodes; each level needs its own", fn, k, l)
			}
		}
		if n := cfg.normalisation(); tn.lossNorm != nil && *tn.lossNorm != n {
			return fmt.Errorf("rpn: %s: %sthe targets would be assigned with %v but the loss uses %v; use one Config for the assignment and Loss", fn, level(l), n, *tn.lossNorm)
		}
	}
	set, err := nodes[0].assigner.match(cfg, levels, images)
	if err != nil {
		return err
	}
	results := nodes[0].assigner.images[:len(images)]
	if nodes[0].Labels.Dtype() == tensor.Float32 {
		err = bindTargets[float32](cfg, set, results, nodes)
	} else {
		err = bindTargets[float64](cfg, set, results, nodes)
	}
	if err != nil {
		return fmt.Errorf("rpn: %s: %w", fn, err)
	}
	n := cfg.normalisation()
	for _, tn := range nodes {
		tn.targetsNorm = &n
	}
	return nil
}

// bindTargets writes the results into the tensors the nodes keep (made on first use, in the
// nodes' dtype T) and binds them.
func bindTargets[T float](cfg Config, set *anchorSet, results []*imageResult, nodes []*TargetNodes) error {
	dests := make([]dest[T], len(nodes))
	for l, tn := range nodes {
		var data [5][]T
		for i, n := range tn.all() {
			v := tn.bound[i]
			if v == nil || v.Dtype() != n.Dtype() || !v.Shape().Eq(n.Shape()) {
				v = tensor.New(tensor.Of(n.Dtype()), tensor.WithShape(n.Shape().Clone()...))
				tn.bound[i] = v
			}
			data[i] = v.Data().([]T)
		}
		dests[l] = dest[T]{data[0], data[1], data[2], data[3], data[4]}
	}
	writeTargets(cfg, set, results, dests)
	for _, tn := range nodes {
		for i, n := range tn.all() {
			if err := G.Let(n, tn.bound[i]); err != nil {
				return fmt.Errorf("%s: %w", n.Name(), err)
			}
		}
	}
	return nil
}

// checkNodes reports target nodes that NewTargetNodes would not have made: a nil node, a dtype
// other than float32 or float64 or not the same for all five, or a shape other than (B, A, H, W)
// for Labels and ClsWeights and (B, 4A, H, W) for the others (the fields are exported, so a
// caller can change them).
func (tn *TargetNodes) checkNodes() error {
	want := []tensor.Shape{{tn.B, tn.A, tn.H, tn.W}, {tn.B, tn.A, tn.H, tn.W},
		{tn.B, 4 * tn.A, tn.H, tn.W}, {tn.B, 4 * tn.A, tn.H, tn.W}, {tn.B, 4 * tn.A, tn.H, tn.W}}
	var dt tensor.Dtype
	for i, n := range tn.all() {
		if n == nil {
			return fmt.Errorf("target node %s is nil (make the nodes with NewTargetNodes)", targetNames[i])
		}
		if i == 0 {
			dt = n.Dtype()
		}
		if d := n.Dtype(); (d != tensor.Float32 && d != tensor.Float64) || d != dt {
			return fmt.Errorf("target node %s has dtype %v, %s %v; want float32 or float64, one for all", n.Name(), d, tn.Labels.Name(), dt)
		}
		if !n.Shape().Eq(want[i]) {
			return fmt.Errorf("target node %s has shape %v; B=%d A=%d H=%d W=%d want %v", n.Name(), n.Shape(), tn.B, tn.A, tn.H, tn.W, want[i])
		}
	}
	return nil
}
