package roi

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The gradient, derived by hand. With a(k, c, ph, pw) the index of the bin's first maximum,
// Pool is out = P(features) features where P selects a:
//
//	dL/dfeatures[n_k, c, i] = Σ_{bins with a = i} up[k, c, ph, pw]   (scatter to the argmax)
//	dL/drois: none (rois are data, as in torchvision)
//
// The diff op takes the features, the rois and Pool's output as inputs (as gorgonia's softmax
// diff op takes its forward output). The scatter uses the argmaxes the forward saved when the
// save is fresh and was made from these very values (pool_save.go); otherwise it finds a again
// from the features and the rois alone, exactly as the forward pass finds it (poolPass). Pool's
// output is checked (shape, dtype) and identifies the save, but its values are not read, so an
// output that Pool did not compute from these features cannot give a stale argmax. A bin that
// is empty, or has no pixel above -FLT_MAX, has no argmax.
//
// Second order: the scatter is linear in up, and a is piecewise constant in the features, so
//
//	d<v, scatter(up)>/dup = gather(v) = v[n_k, c, a(k, c, ph, pw)]   (0 for a bin without one)
//	d<v, scatter(up)>/dfeatures = 0 almost everywhere
//
// and gather's own derivative with respect to v is the scatter again.

var (
	_ G.SDOp = poolGradOp{}
)

// DiffWRT: features, not rois.
func (o poolOp) DiffWRT(n int) []bool { return featuresOnly(n) }

// SymDiff builds the features' gradient for the TapeMachine: the scatter op on (features,
// rois, output, upstream).
func (o poolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != o.Arity() {
		return nil, fmt.Errorf("roi: %v.SymDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	o.save.want()
	d, err := G.ApplyOp(poolGradOp{fwd: o}, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, fmt.Errorf("roi: %v.SymDiff: %w", o, err)
	}
	return G.Nodes{d, nil}, nil
}

// DoDiff is the LispMachine's backward step: it adds the scatter of the upstream into the
// features' gradient buffer (accumulating, never overwriting).
func (o poolOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	o.save.want()
	buf, up, finish, err := lispGrad(o, o.Arity(), inputs, output, o.geo.featuresShape())
	if err != nil || buf == nil {
		return err
	}
	if err := (poolGradOp{fwd: o}).into(buf, inputs[0].Value(), inputs[1].Value(), output.Value(), up); err != nil {
		return err
	}
	return finish()
}

// poolGradOp is the scatter (gather false: inputs features, rois, Pool's output, upstream of
// the output's shape → features' shape) or its transpose, the gather (gather true: features,
// rois, Pool's output, v of the features' shape → the output's shape). Each is the other's
// derivative with respect to its last input.
type poolGradOp struct {
	fwd    poolOp
	gather bool
}

func (d poolGradOp) Arity() int { return 4 }

func (d poolGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(4), tensorType(2), tensorType(4), tensorType(4), tensorType(4))
}

// shapes are the last input's shape and the result's.
func (d poolGradOp) shapes() (in, out tensor.Shape) {
	if d.gather {
		return d.fwd.geo.featuresShape(), d.fwd.geo.outShape()
	}
	return d.fwd.geo.outShape(), d.fwd.geo.featuresShape()
}

func (d poolGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != d.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", d, d.Arity(), len(ds))
	}
	_, out := d.shapes()
	return out, nil
}

func (d poolGradOp) ReturnsPtr() bool     { return false }
func (d poolGradOp) CallsExtern() bool    { return false }
func (d poolGradOp) OverwritesInput() int { return -1 }
func (d poolGradOp) String() string {
	if d.gather {
		return fmt.Sprintf("RoIPoolGather{%v}", d.fwd.geo)
	}
	return fmt.Sprintf("RoIPoolDiff{%v}", d.fwd.geo)
}
func (d poolGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d poolGradOp) Hashcode() uint32      { return opkit.Hash(d) }

func (d poolGradOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != d.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", d, d.Arity(), len(vals))
	}
	features, err := denseInput(d, "features", vals[0], d.fwd.geo.featuresShape(), tensor.Dtype{})
	if err != nil {
		return nil, err
	}
	_, outShape := d.shapes()
	out := newZeros(features.Dtype(), outShape)
	if err := d.into(out, features, vals[1], vals[2], vals[3]); err != nil {
		return nil, err
	}
	return out, nil
}

// into adds the scatter (or writes the gather) into out, which is contiguous and zero where
// the gather leaves it.
func (d poolGradOp) into(out *tensor.Dense, featuresV, roisV, outputV, lastV G.Value) error {
	features, rois, err := d.fwd.inputs(featuresV, roisV)
	if err != nil {
		return err
	}
	// Pool's output is checked, not read: the argmaxes come from the features (see above)
	if _, err := denseInput(d, "Pool's output", outputV, d.fwd.geo.outShape(), features.Dtype()); err != nil {
		return err
	}
	inShape, _ := d.shapes()
	name := "upstream gradient"
	if d.gather {
		name = "second-order upstream"
	}
	last, err := denseInput(d, name, lastV, inShape, features.Dtype())
	if err != nil {
		return err
	}
	if out.Dtype() != features.Dtype() {
		return fmt.Errorf("roi: %v: result has dtype %v, features %v", d, out.Dtype(), features.Dtype())
	}
	mode := poolScatter
	if d.gather {
		mode = poolGather
	} else if at := d.fwd.save.take(featuresV, roisV, outputV, features, rois); at != nil {
		defer d.fwd.save.end(nil, nil, nil, nil, nil, false)
		if features.Dtype() == tensor.Float32 {
			return runScatterSaved[float32](d.fwd, rois, last, out, at)
		}
		return runScatterSaved[float64](d.fwd, rois, last, out, at)
	}
	if features.Dtype() == tensor.Float32 {
		return runPool[float32](d.fwd, mode, features, rois, last, out, nil)
	}
	return runPool[float64](d.fwd, mode, features, rois, last, out, nil)
}

// DiffWRT: the last input only.
func (d poolGradOp) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	if n > 0 {
		wrt[n-1] = true
	}
	return wrt
}

// SymDiff: the derivative of the scatter with respect to its upstream is the gather, and the
// gather's is the scatter.
func (d poolGradOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != d.Arity() {
		return nil, fmt.Errorf("roi: %v.SymDiff: expected %d inputs, got %d", d, d.Arity(), len(inputs))
	}
	t, err := G.ApplyOp(poolGradOp{fwd: d.fwd, gather: !d.gather}, inputs[0], inputs[1], inputs[2], grad)
	if err != nil {
		return nil, fmt.Errorf("roi: %v.SymDiff: %w", d, err)
	}
	return G.Nodes{nil, nil, nil, t}, nil
}
