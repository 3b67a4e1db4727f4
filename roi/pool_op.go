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
	_ G.SDOp = poolOp{}
	_ G.ADOp = poolOp{}
)

// Pool is torchvision.ops.roi_pool (0.14): features (N, C, H, W), rois (K, 5) rows of
// (batch index, x1, y1, x2, y2) in image coordinates, of features' dtype; the result is
// (K, C, outputH, outputW), each bin the maximum over its rectangle of feature pixels, with
// torchvision's rounding (see the package documentation). The only option is
// WithSpatialScale (default 1).
//
// The gradient flows to features, to each bin's first maximum in row-major scan order; rois
// get none (G.Grad with respect to rois is an error). Errors are Align's, plus options that
// only Align takes.
func Pool(features, rois *G.Node, outputH, outputW int, opts ...Option) (*G.Node, error) {
	c := collect(outputH, outputW, opts)
	if c.haveRatio || c.haveAligned {
		return nil, fmt.Errorf("roi: Pool takes no sampling ratio or aligned option (got WithSamplingRatio=%t, WithAligned=%t); they are Align's", c.haveRatio, c.haveAligned)
	}
	geo, err := newGeometry(features, rois, &c)
	if err != nil {
		return nil, err
	}
	n, err := G.ApplyOp(poolOp{geo: geo, save: new(poolSave)}, features, rois)
	if err != nil {
		return nil, fmt.Errorf("roi: Pool: %w", err)
	}
	return n, nil
}

// poolOp is Pool's forward pass: an immutable value but for its save of the argmaxes
// (pool_save.go), which is guarded and checked, so the value is safe to share between graphs
// and goroutines. save is not part of the hash: it never changes a result.
type poolOp struct {
	geo  geometry
	save *poolSave // nil: never saves
}

func (o poolOp) Arity() int { return 2 }

// Type: features (rank 4), rois (rank 2) → output (rank 4), one dtype.
func (o poolOp) Type() hm.Type { return hm.NewFnType(tensorType(4), tensorType(2), tensorType(4)) }

func (o poolOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != o.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", o, o.Arity(), len(ds))
	}
	return o.geo.outShape(), nil
}

func (o poolOp) ReturnsPtr() bool      { return false }
func (o poolOp) CallsExtern() bool     { return false }
func (o poolOp) OverwritesInput() int  { return -1 }
func (o poolOp) String() string        { return fmt.Sprintf("RoIPool{%v}", o.geo) }
func (o poolOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o poolOp) Hashcode() uint32      { return opkit.Hash(o) }

// work estimates the inner steps of one pass (a few pixels per bin).
func (o poolOp) work() int { return o.geo.rois * o.geo.channels * o.geo.binCount() * 4 }

// Do runs the forward pass: inputs features, rois.
func (o poolOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != o.Arity() {
		return nil, fmt.Errorf("roi: %v expects %d inputs, got %d", o, o.Arity(), len(vals))
	}
	features, rois, err := o.inputs(vals[0], vals[1])
	if err != nil {
		return nil, err
	}
	out := newZeros(features.Dtype(), o.geo.outShape())
	save := o.save.begin(o.geo.outShape().TotalSize())
	if features.Dtype() == tensor.Float32 {
		err = runPool[float32](o, poolMax, features, rois, nil, out, save)
	} else {
		err = runPool[float64](o, poolMax, features, rois, nil, out, save)
	}
	if save != nil {
		o.save.end(vals[0], vals[1], out, features, rois, err == nil)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inputs reads the run-time features and rois.
func (o poolOp) inputs(f, r G.Value) (features, rois *tensor.Dense, err error) {
	if features, err = denseInput(o, "features", f, o.geo.featuresShape(), tensor.Dtype{}); err != nil {
		return nil, nil, err
	}
	if rois, err = denseInput(o, "rois", r, o.geo.roisShape(), features.Dtype()); err != nil {
		return nil, nil, err
	}
	return features, rois, nil
}

// runPool checks the rois' values and runs poolPass over channel ranges in parallel. in is nil
// for poolMax; save (the forward's argmaxes, output-sized) is nil or used with poolMax only.
func runPool[T float](o poolOp, mode poolMode, features, rois, in, out *tensor.Dense, save []int32) error {
	r := data[T](rois)
	if err := checkRoIs(o, r, o.geo.batch); err != nil {
		return err
	}
	f, dst := data[T](features), data[T](out)
	var src []T
	if in != nil {
		src = data[T](in)
	}
	return forChannelRanges(o.geo.channels, o.work(), func(c0, c1 int) error {
		return poolPass(o, mode, f, r, src, dst, save, c0, c1)
	})
}

// runScatterSaved adds every upstream element at its bin's saved argmax (at, the forward's):
//
//	grad[n_k, c, at[k, c, ph, pw]] += up[k, c, ph, pw]
//
// over channel ranges in parallel, in roi order, then bin order (poolPass's order).
func runScatterSaved[T float](o poolOp, rois, up, grad *tensor.Dense, at []int32) error {
	r := data[T](rois)
	if err := checkRoIs(o, r, o.geo.batch); err != nil {
		return err
	}
	u, dst := data[T](up), data[T](grad)
	g := o.geo
	planeSize, bins := g.height*g.width, g.binCount()
	if len(at) != g.rois*g.channels*bins || len(u) != len(at) {
		return fmt.Errorf("roi: %v: saved argmaxes for %d bins, upstream %d, want %d", o, len(at), len(u), g.rois*g.channels*bins)
	}
	return forChannelRanges(g.channels, g.rois*g.channels*bins, func(c0, c1 int) error {
		for k := 0; k < g.rois; k++ {
			n := int(r[5*k])
			for c := c0; c < c1; c++ {
				p := n*g.channels + c
				plane := dst[p*planeSize : (p+1)*planeSize]
				block := (k*g.channels + c) * bins
				for i, a := range at[block : block+bins] {
					if uint(a) < uint(len(plane)) { // noPixel is not
						plane[a] += u[block+i]
					}
				}
			}
		}
		return nil
	})
}
