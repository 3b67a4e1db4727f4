package roi

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The gradient, derived by hand. Align is linear in the features: out = A(rois) features, with
// A holding, for every bin, 1/count times the bilinear weights of its sampling points. So
//
//	dL/dfeatures = A^T up        (scatter of up/count through the same weights)
//	dL/drois: none (rois are data, as in torchvision)
//
// Second order: the diff op up ↦ A^T up is linear in up and does not read the features, so
//
//	d<v, A^T up>/dup = A v = Align(v)   (the forward op applied to v, features-shaped)
//	d<v, A^T up>/dfeatures = 0          (not an input of the diff op: no node is built)
//
// and Hessian-vector products through G.Grad twice are exact.

var (
	_ G.SDOp = alignDiffOp{}
)

// DiffWRT: features, not rois.
func (o alignOp) DiffWRT(n int) []bool { return featuresOnly(n) }

// SymDiff builds the features' gradient for the TapeMachine: the diff op on (rois, upstream).
func (o alignOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != o.Arity() {
		return nil, fmt.Errorf("roi: %v.SymDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	d, err := G.ApplyOp(alignDiffOp{o}, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("roi: %v.SymDiff: %w", o, err)
	}
	return G.Nodes{d, nil}, nil
}

// DoDiff is the LispMachine's backward step: it adds A^T up into the features' gradient buffer
// (accumulating, never overwriting).
func (o alignOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	buf, up, finish, err := lispGrad(o, o.Arity(), inputs, output, o.geo.featuresShape())
	if err != nil || buf == nil {
		return err
	}
	if err := (alignDiffOp{o}).accumulate(buf, inputs[1].Value(), up); err != nil {
		return err
	}
	return finish()
}

// alignDiffOp computes A^T up: inputs rois, upstream (the output's shape) → features' shape.
type alignDiffOp struct{ fwd alignOp }

func (d alignDiffOp) Arity() int { return 2 }

// Type: rois (rank 2), upstream (rank 4) → features' type (rank 4).
func (d alignDiffOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(4), tensorType(4))
}

func (d alignDiffOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != d.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", d, d.Arity(), len(ds))
	}
	return d.fwd.geo.featuresShape(), nil
}

func (d alignDiffOp) ReturnsPtr() bool      { return false }
func (d alignDiffOp) CallsExtern() bool     { return false }
func (d alignDiffOp) OverwritesInput() int  { return -1 }
func (d alignDiffOp) String() string        { return "RoIAlignDiff{" + d.fwd.describe() + "}" }
func (d alignDiffOp) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d alignDiffOp) Hashcode() uint32      { return opkit.Hash(d) }

// Do returns A^T up in a new zero tensor of the features' shape.
func (d alignDiffOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != d.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", d, d.Arity(), len(vals))
	}
	up, err := denseInput(d, "upstream gradient", vals[1], d.fwd.geo.outShape(), tensor.Dtype{})
	if err != nil {
		return nil, err
	}
	grad := newZeros(up.Dtype(), d.fwd.geo.featuresShape())
	if err := d.accumulate(grad, vals[0], up); err != nil {
		return nil, err
	}
	return grad, nil
}

// accumulate adds A^T up into grad (contiguous, features' shape).
func (d alignDiffOp) accumulate(grad *tensor.Dense, roisV, upV G.Value) error {
	up, err := denseInput(d, "upstream gradient", upV, d.fwd.geo.outShape(), grad.Dtype())
	if err != nil {
		return err
	}
	rois, err := denseInput(d, "rois", roisV, d.fwd.geo.roisShape(), grad.Dtype())
	if err != nil {
		return err
	}
	if grad.Dtype() == tensor.Float32 {
		return runAlignBackward[float32](d.fwd, rois, up, grad)
	}
	return runAlignBackward[float64](d.fwd, rois, up, grad)
}

func runAlignBackward[T float](o alignOp, rois, up, grad *tensor.Dense) error {
	r := data[T](rois)
	if err := checkRoIs(o, r, o.geo.batch); err != nil {
		return err
	}
	u, dst := data[T](up), data[T](grad)
	return forChannelRanges(o.geo.channels, o.work(), func(c0, c1 int) error {
		return alignBackward(o, r, u, dst, c0, c1)
	})
}

// DiffWRT of the diff op: the upstream, not rois.
func (d alignDiffOp) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	if n > 1 {
		wrt[1] = true
	}
	return wrt
}

// SymDiff of the diff op: d<v, A^T up>/dup = A v, the forward op applied to v.
func (d alignDiffOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != d.Arity() {
		return nil, fmt.Errorf("roi: %v.SymDiff: expected %d inputs, got %d", d, d.Arity(), len(inputs))
	}
	av, err := G.ApplyOp(d.fwd, grad, inputs[0])
	if err != nil {
		return nil, fmt.Errorf("roi: %v.SymDiff: %w", d, err)
	}
	return G.Nodes{nil, av}, nil
}
