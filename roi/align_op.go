package roi

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Compile-time interface checks.
var (
	_ G.SDOp = alignOp{}
	_ G.ADOp = alignOp{}
)

// Align is torchvision.ops.roi_align (0.14): features (N, C, H, W), rois (K, 5) rows of
// (batch index, x1, y1, x2, y2) in image coordinates, of features' dtype; the result is
// (K, C, outputH, outputW), each bin the mean of bilinearly sampled points (see the package
// documentation for the formulas). Options: WithSpatialScale (default 1), WithSamplingRatio
// (default -1, adaptive), WithAligned (default false).
//
// The gradient flows to features; rois are data and get none (G.Grad with respect to rois is an
// error). It returns an error, never panics, on nil nodes, nodes of different graphs, wrong
// ranks or shapes, dtypes other than float32/float64 or mixed, an output size <= 0, a spatial
// scale that is not finite and > 0, or a sampling ratio < -1. The rois' values are checked when
// the graph runs: a batch index that is not an integer in [0, N), or a coordinate that is NaN
// or Inf, is an error from the machine naming the roi and the value.
func Align(features, rois *G.Node, outputH, outputW int, opts ...Option) (*G.Node, error) {
	c := collect(outputH, outputW, opts)
	geo, err := newGeometry(features, rois, &c)
	if err != nil {
		return nil, err
	}
	if c.samplingRatio < -1 {
		return nil, fmt.Errorf("roi: sampling ratio %d; want > 0, or -1 or 0 for adaptive", c.samplingRatio)
	}
	n, err := G.ApplyOp(alignOp{geo: geo, samplingRatio: c.samplingRatio, aligned: c.aligned}, features, rois)
	if err != nil {
		return nil, fmt.Errorf("roi: Align: %w", err)
	}
	return n, nil
}

// alignOp is Align's forward pass. It is an immutable value: safe to share between graphs and
// goroutines.
type alignOp struct {
	geo           geometry
	samplingRatio int
	aligned       bool
}

func (o alignOp) Arity() int { return 2 }

// Type: features (rank 4), rois (rank 2) → output (rank 4), one dtype.
func (o alignOp) Type() hm.Type { return hm.NewFnType(tensorType(4), tensorType(2), tensorType(4)) }

func (o alignOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != o.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", o, o.Arity(), len(ds))
	}
	return o.geo.outShape(), nil
}

func (o alignOp) ReturnsPtr() bool     { return false }
func (o alignOp) CallsExtern() bool    { return false }
func (o alignOp) OverwritesInput() int { return -1 }

// describe is shared by String and WriteHash: every field that changes the result.
func (o alignOp) describe() string {
	return fmt.Sprintf("%v, samplingRatio=%d, aligned=%t", o.geo, o.samplingRatio, o.aligned)
}

func (o alignOp) String() string        { return "RoIAlign{" + o.describe() + "}" }
func (o alignOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o alignOp) Hashcode() uint32      { return opkit.Hash(o) }

// Do runs the forward pass: inputs features, rois.
func (o alignOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != o.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", o, o.Arity(), len(vals))
	}
	features, err := denseInput(o, "features", vals[0], o.geo.featuresShape(), tensor.Dtype{})
	if err != nil {
		return nil, err
	}
	rois, err := denseInput(o, "rois", vals[1], o.geo.roisShape(), features.Dtype())
	if err != nil {
		return nil, err
	}
	out := newZeros(features.Dtype(), o.geo.outShape())
	if features.Dtype() == tensor.Float32 {
		err = runAlignForward[float32](o, features, rois, out)
	} else {
		err = runAlignForward[float64](o, features, rois, out)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// work estimates the inner steps of one pass (four pixel reads per sampling point).
func (o alignOp) work() int {
	g := o.geo
	samples := 4
	if o.samplingRatio > 0 {
		samples = o.samplingRatio * o.samplingRatio
	}
	return g.rois * g.channels * g.binCount() * samples * 4
}

func runAlignForward[T float](o alignOp, features, rois, out *tensor.Dense) error {
	r := data[T](rois)
	if err := checkRoIs(o, r, o.geo.batch); err != nil {
		return err
	}
	f, dst := data[T](features), data[T](out)
	return forChannelRanges(o.geo.channels, o.work(), func(c0, c1 int) error {
		return alignForward(o, f, r, dst, c0, c1)
	})
}
