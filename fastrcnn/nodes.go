package fastrcnn

import (
	"fmt"

	"github.com/detlab/smoothl1/internal/values"
	"github.com/detlab/smoothl1/op"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TargetNodes are the graph inputs that carry a step's Targets to the head's loss, padded to a
// fixed row count so that one compiled graph serves every step while the sampled count varies.
// Make them once per graph with NewTargetNodes and write each step's targets with Set.
type TargetNodes struct {
	// Rows is the fixed row count: the head's logits are (Rows, K+1), its deltas (Rows, 4(K+1)).
	Rows int
	// Labels (Rows): each row's class in the network's dtype; padding rows hold
	// op.DefaultIgnoreIndex.
	Labels *G.Node
	// BBoxTargets, InsideWeights, OutsideWeights (Rows, 4(K+1)); zero on padding rows.
	BBoxTargets, InsideWeights, OutsideWeights *G.Node
	// Norm is the scalar 1/S, S the number of sampled rows of the batch (0 when S = 0): the one
	// place where the head's loss is normalised.
	Norm *G.Node

	cfg     Config
	sampled int
	g       *G.ExprGraph
	suffix  string
	rois    *G.Node   // made by RoIs on first use
	roiData []float64 // the last Set's padded rois
}

// NewTargetNodes creates the target input nodes of dtype dt (the network's) in g for rows
// sampled RoIs at most, with the configuration the targets will be made with (it fixes K and
// the loss). rows is usually images * cfg.BatchSize, the most SampleTargets can return. If t is
// not nil its values are bound. Every call makes its own nodes: the first call's are named
// frcnn_rois, frcnn_labels, ..., a second call's in the same graph frcnn_rois_1, ....
func NewTargetNodes(g *G.ExprGraph, dt tensor.Dtype, rows int, cfg Config, t *Targets) (*TargetNodes, error) {
	if g == nil {
		return nil, fmt.Errorf("fastrcnn: NewTargetNodes: graph is nil")
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("fastrcnn: NewTargetNodes: dtype %v; want float32 or float64", dt)
	}
	if rows <= 0 {
		return nil, fmt.Errorf("fastrcnn: NewTargetNodes: rows is %d, want >= 1 (images * Config.BatchSize holds any sample)", rows)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// gorgonia merges input nodes of one name, type and shape: each call takes the first free
	// suffix ("", "_1", ...) so two heads never share targets.
	suffix := ""
	for k := 1; namesTaken(g, suffix); k++ {
		suffix = fmt.Sprintf("_%d", k)
	}
	C := cfg.Columns()
	mat := func(name string, cols int) *G.Node {
		return G.NewMatrix(g, dt, G.WithShape(rows, cols), G.WithName(name+suffix))
	}
	tn := &TargetNodes{Rows: rows, cfg: cfg, g: g, suffix: suffix,
		Labels:         G.NewVector(g, dt, G.WithShape(rows), G.WithName(nodeNames[1]+suffix)),
		BBoxTargets:    mat(nodeNames[2], C),
		InsideWeights:  mat(nodeNames[3], C),
		OutsideWeights: mat(nodeNames[4], C),
		Norm:           G.NewScalar(g, dt, G.WithName(nodeNames[5]+suffix)),
	}
	if t != nil {
		if err := tn.Set(t); err != nil {
			return nil, err
		}
	}
	return tn, nil
}

var nodeNames = []string{"frcnn_rois", "frcnn_labels", "frcnn_bbox_targets", "frcnn_bbox_inside_weights", "frcnn_bbox_outside_weights", "frcnn_norm"}

func namesTaken(g *G.ExprGraph, suffix string) bool {
	for _, name := range nodeNames {
		if len(g.ByName(name+suffix)) > 0 {
			return true
		}
	}
	return false
}

// RoIs is the (Rows, 5) input node of the sampled rows (batch index, x1, y1, x2, y2), for
// roi.Align / roi.Pool, made on the first call (so that a graph that pools elsewhere has no
// unused input, which the LispMachine would refuse) and bound with the last Set's rows, as every
// later Set does. Padding rows hold (0, 0, 0, 1, 1), a valid box of image 0 whose loss is ignored.
func (tn *TargetNodes) RoIs() (*G.Node, error) {
	if tn == nil || tn.g == nil {
		return nil, fmt.Errorf("fastrcnn: TargetNodes.RoIs: the target nodes are nil (make them with NewTargetNodes)")
	}
	if tn.rois == nil {
		tn.rois = G.NewMatrix(tn.g, tn.Labels.Dtype(), G.WithShape(tn.Rows, 5), G.WithName(nodeNames[0]+tn.suffix))
		if tn.roiData != nil {
			if err := G.Let(tn.rois, values.Dense(tn.Labels.Dtype(), tn.rois.Shape(), tn.roiData)); err != nil {
				return nil, fmt.Errorf("fastrcnn: TargetNodes.RoIs: %w", err)
			}
		}
	}
	return tn.rois, nil
}

// Config is the configuration the nodes were made for.
func (tn *TargetNodes) Config() Config { return tn.cfg }

// Sampled is S, the number of sampled rows bound by the last Set.
func (tn *TargetNodes) Sampled() int { return tn.sampled }

// Set binds t, padded to Rows with ignored rows, and Norm = 1/S. It returns an error if t has
// more than Rows rows, or was made with another Config than the nodes (the Seed aside: a
// per-step seed is fine), so that targets and loss cannot disagree.
func (tn *TargetNodes) Set(t *Targets) error {
	if tn == nil || tn.Labels == nil {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: the target nodes are nil (make them with NewTargetNodes)")
	}
	if t == nil {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: targets are nil")
	}
	a, b := t.Config, tn.cfg
	a.Seed, b.Seed = 0, 0
	if a != b {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: the targets were made with Config %+v, the nodes (and the loss) with %+v", t.Config, tn.cfg)
	}
	R, C := t.Rows(), tn.cfg.Columns()
	if R > tn.Rows {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: %d sampled rows, the nodes hold %d (make them with rows >= images * BatchSize)", R, tn.Rows)
	}
	if len(t.RoIs) != 5*R || len(t.BBoxTargets) != C*R || len(t.InsideWeights) != C*R || len(t.OutsideWeights) != C*R {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: %d labels but %d roi values, %d targets, %d inside and %d outside weights (want %d and %d each)",
			R, len(t.RoIs), len(t.BBoxTargets), len(t.InsideWeights), len(t.OutsideWeights), 5*R, C*R)
	}
	for i, l := range t.Labels {
		if l < 0 || l > tn.cfg.NumClasses {
			return fmt.Errorf("fastrcnn: TargetNodes.Set: row %d has label %d, want 0 (background) to NumClasses=%d", i, l, tn.cfg.NumClasses)
		}
	}
	rois := make([]float64, 5*tn.Rows)
	copy(rois, t.RoIs)
	labels := make([]float64, tn.Rows)
	for i := 0; i < tn.Rows; i++ {
		if i < R {
			labels[i] = float64(t.Labels[i])
			continue
		}
		labels[i] = op.DefaultIgnoreIndex
		copy(rois[5*i:], []float64{0, 0, 0, 1, 1})
	}
	pad := func(v []float64) []float64 {
		return append(append(make([]float64, 0, C*tn.Rows), v...), make([]float64, C*(tn.Rows-R))...)
	}
	norm := 0.0
	if R > 0 {
		norm = 1 / float64(R)
	}
	dt := tn.Labels.Dtype()
	for _, p := range []struct {
		n    *G.Node
		data []float64
	}{{tn.Labels, labels}, {tn.BBoxTargets, pad(t.BBoxTargets)},
		{tn.InsideWeights, pad(t.InsideWeights)}, {tn.OutsideWeights, pad(t.OutsideWeights)}} {
		if err := G.Let(p.n, values.Dense(dt, p.n.Shape(), p.data)); err != nil {
			return fmt.Errorf("fastrcnn: TargetNodes.Set: %s: %w", p.n.Name(), err)
		}
	}
	var nv G.Value = G.NewF64(norm)
	if dt == tensor.Float32 {
		nv = G.NewF32(float32(norm))
	}
	if err := G.Let(tn.Norm, nv); err != nil {
		return fmt.Errorf("fastrcnn: TargetNodes.Set: %s: %w", tn.Norm.Name(), err)
	}
	if tn.rois != nil {
		if err := G.Let(tn.rois, values.Dense(dt, tn.rois.Shape(), rois)); err != nil {
			return fmt.Errorf("fastrcnn: TargetNodes.Set: %s: %w", tn.rois.Name(), err)
		}
	}
	tn.sampled, tn.roiData = R, rois
	return nil
}
