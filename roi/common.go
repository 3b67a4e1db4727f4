package roi

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the element type of the kernels; the dtype is dispatched once, at the edge.
type float interface{ ~float32 | ~float64 }

// geometry is what every roi op knows statically: the shapes of features (N, C, H, W) and rois
// (K, 5), the output size and the spatial scale.
type geometry struct {
	batch, channels, height, width int
	rois                           int
	outH, outW                     int
	scale                          float64
}

func (g geometry) featuresShape() tensor.Shape {
	return tensor.Shape{g.batch, g.channels, g.height, g.width}
}
func (g geometry) roisShape() tensor.Shape { return tensor.Shape{g.rois, 5} }
func (g geometry) outShape() tensor.Shape {
	return tensor.Shape{g.rois, g.channels, g.outH, g.outW}
}

// binCount is the number of output elements per roi and channel.
func (g geometry) binCount() int { return g.outH * g.outW }

func (g geometry) String() string {
	return fmt.Sprintf("features=%v, rois=%v, output=%dx%d, spatialScale=%v",
		g.featuresShape(), g.roisShape(), g.outH, g.outW, g.scale)
}

// newGeometry validates the nodes and the shared parameters.
func newGeometry(features, rois *G.Node, c *config) (geometry, error) {
	var g geometry
	if features == nil {
		return g, fmt.Errorf("roi: features is nil")
	}
	if rois == nil {
		return g, fmt.Errorf("roi: rois is nil")
	}
	if err := opkit.OneGraph([]string{"features", "rois"}, features, rois); err != nil {
		return g, fmt.Errorf("roi: %w", err)
	}
	dt := features.Dtype()
	if dt != tensor.Float64 && dt != tensor.Float32 {
		return g, fmt.Errorf("roi: features has dtype %v; only float32 and float64 are supported", dt)
	}
	if rois.Dtype() != dt {
		return g, fmt.Errorf("roi: rois has dtype %v but features has dtype %v; they must match (as in torchvision)", rois.Dtype(), dt)
	}
	fs := features.Shape()
	if features.IsScalar() || len(fs) != 4 {
		return g, fmt.Errorf("roi: features has shape %v; want (N, C, H, W)", fs)
	}
	rs := rois.Shape()
	if rois.IsScalar() || len(rs) != 2 || rs[1] != 5 {
		return g, fmt.Errorf("roi: rois has shape %v; want (K, 5) rows of (batch index, x1, y1, x2, y2)", rs)
	}
	if err := c.checkParams(dt == tensor.Float32); err != nil {
		return g, err
	}
	for _, d := range append(append([]int{}, fs...), rs[0]) {
		if d >= math.MaxInt32 {
			return g, fmt.Errorf("roi: features %v or rois %v has a side >= 2^31", fs, rs)
		}
	}
	if fs[2]*fs[3] >= math.MaxInt32 {
		return g, fmt.Errorf("roi: features %v has a plane of 2^31 or more pixels", fs)
	}
	return geometry{batch: fs[0], channels: fs[1], height: fs[2], width: fs[3], rois: rs[0],
		outH: c.outputH, outW: c.outputW, scale: c.spatialScale}, nil
}

// tensorType is a tensor of rank dims whose dtype is the ops' single type variable.
func tensorType(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

// denseInput reads the run-time value of the named input through opkit.DenseInput (shape,
// dtype, views read through a contiguous copy), with roi's prefix on errors.
func denseInput(op fmt.Stringer, name string, v G.Value, shape tensor.Shape, dt tensor.Dtype) (*tensor.Dense, error) {
	d, err := opkit.DenseInput(op, name, v, shape, dt)
	if err != nil {
		return nil, fmt.Errorf("roi: %w", err)
	}
	return d, nil
}

// data is the backing slice of a contiguous tensor, nil when it is empty (tensor's Data panics
// on empty tensors) or of another element type.
func data[T float](d *tensor.Dense) []T {
	if d.Shape().TotalSize() == 0 {
		return nil
	}
	s, _ := d.Data().([]T)
	return s
}

// newZeros makes a zero tensor of dtype dt and the given shape.
func newZeros(dt tensor.Dtype, shape tensor.Shape) *tensor.Dense {
	return tensor.New(tensor.Of(dt), tensor.WithShape(shape.Clone()...))
}

// checkRoIs validates the rois' values, which are data and known only at run time: every batch
// index an integer in [0, N), every coordinate finite. The error names the roi and the value.
func checkRoIs[T float](op fmt.Stringer, rois []T, batch int) error {
	for k := 0; 5*k+4 < len(rois); k++ {
		r := rois[5*k : 5*k+5]
		b := float64(r[0])
		if math.IsNaN(b) || math.IsInf(b, 0) || b != math.Trunc(b) || b < 0 || b >= float64(batch) {
			return fmt.Errorf("roi: %v: roi %d has batch index %v; want an integer in [0, %d)", op, k, b, batch)
		}
		for i, name := range [4]string{"x1", "y1", "x2", "y2"} {
			if v := float64(r[i+1]); math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("roi: %v: roi %d has %s = %v; coordinates must be finite", op, k, name, v)
			}
		}
	}
	return nil
}

// minParallelWork is the number of inner steps below which one goroutine does all the work.
const minParallelWork = 1 << 15

// chunksPerWorker is how many channel ranges each worker takes on average: workers take the
// next range as they finish one, so a worker the OS leaves waiting (the machine is shared) holds
// up little of the pass.
const chunksPerWorker = 4

// forChannelRanges calls fn on disjoint channel ranges [c0, c1) covering [0, channels), in
// parallel when work (an estimate of the inner steps) pays for it. Every range covers the same
// channels of every image, so a worker owns whole (image, channel) planes: writes never race and
// the order of additions into a plane does not depend on the number of workers or on which
// worker takes which range. It returns the first range's error (every range sees the same
// rois, so the same errors).
func forChannelRanges(channels, work int, fn func(c0, c1 int) error) error {
	workers := runtime.GOMAXPROCS(0)
	if workers > channels {
		workers = channels
	}
	if workers <= 1 || work < minParallelWork {
		return fn(0, channels)
	}
	chunks := min(workers*chunksPerWorker, channels)
	errs := make([]error, chunks)
	var next atomic.Int32
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= chunks {
					return
				}
				errs[i] = fn(channels*i/chunks, channels*(i+1)/chunks)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// featuresOnly is DiffWRT of the forward ops: features (input 0), never rois.
func featuresOnly(n int) []bool {
	wrt := make([]bool, n)
	if n > 0 {
		wrt[0] = true
	}
	return wrt
}

// lispGrad returns the buffer a forward op's DoDiff should add the features' gradient into (nil
// when nothing asks for it), the upstream gradient, and finish, to call once the kernel has
// added into the buffer. The LispMachine makes gradient buffers like the values, so a view's
// buffer is a view: the kernel then adds into a contiguous scratch that finish adds through the
// view's strides (opkit.Accumulate), as op and rpn do.
func lispGrad(op fmt.Stringer, arity int, inputs G.Nodes, output *G.Node, shape tensor.Shape) (buf *tensor.Dense, up G.Value, finish func() error, err error) {
	if len(inputs) != arity {
		return nil, nil, nil, fmt.Errorf("roi: %v.DoDiff: expected %d inputs, got %d", op, arity, len(inputs))
	}
	gv, err := inputs[0].Grad()
	if err != nil {
		return nil, nil, nil, nil // no gradient buffer: nothing asks for the features' gradient
	}
	if up, err = output.Grad(); err != nil {
		return nil, nil, nil, fmt.Errorf("roi: %v.DoDiff: reading the upstream gradient: %w", op, err)
	}
	grad, ok := gv.(*tensor.Dense)
	if !ok || !grad.Shape().Eq(shape) || (grad.Dtype() != tensor.Float32 && grad.Dtype() != tensor.Float64) {
		return nil, nil, nil, fmt.Errorf("roi: %v.DoDiff: gradient buffer is %T %v, want a float tensor of shape %v", op, gv, values.ShapeOf(gv), shape)
	}
	if offsets, err := values.Offsets(grad); err != nil {
		return nil, nil, nil, fmt.Errorf("roi: %v.DoDiff: gradient buffer: %w", op, err)
	} else if offsets == nil {
		return grad, up, func() error { return nil }, nil
	}
	scratch := newZeros(grad.Dtype(), shape)
	finish = func() error {
		var err error
		switch d := scratch.Data().(type) {
		case []float64:
			err = opkit.Accumulate(grad, d, false)
		case []float32:
			err = opkit.Accumulate(grad, d, false)
		}
		if err != nil {
			return fmt.Errorf("roi: %v.DoDiff: %w", op, err)
		}
		return nil
	}
	return scratch, up, finish, nil
}

// dtypeIndex is 0 for float32 and 1 for float64: the index of a kernel's scratch pool.
func dtypeIndex[T float]() int {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return 0
	}
	return 1
}
