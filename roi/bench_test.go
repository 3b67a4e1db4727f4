package roi

import (
	"math/rand"
	"slices"
	"syscall"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The detection workload of issue 14, as testdata/torch_bench.py times it in torchvision:
// features (2, 256, 50, 76) float32 (an 800x1216 image at stride 16), 512 rois per image with
// sides of 16 to 416 pixels, output 7x7, spatial scale 1/16; Align with sampling ratio 2 and
// aligned; forward, then backward with an upstream of ones.
const (
	benchBatch, benchChannels, benchHeight, benchWidth = 2, 256, 50, 76
	benchRoIsPerImage                                  = 512
	benchStride                                        = 16
)

// lcg is the generator both this file and torch_bench.py use for the rois (a 64-bit linear
// congruential generator, Knuth's MMIX constants), so both time the same boxes.
type lcg uint64

func (s *lcg) next() float64 {
	*s = *s*6364136223846793005 + 1442695040888963407
	return float64(uint64(*s)>>11) / (1 << 53)
}

// benchRoIs are the workload's rois: per image, sides uniform in [16, 416], the corner uniform
// over the positions that keep the box inside the image.
func benchRoIs() []float64 {
	s := lcg(14)
	imgW, imgH := float64(benchWidth*benchStride), float64(benchHeight*benchStride)
	var rois []float64
	for n := 0; n < benchBatch; n++ {
		for i := 0; i < benchRoIsPerImage; i++ {
			w, h := 16+400*s.next(), 16+400*s.next()
			x1, y1 := (imgW-w)*s.next(), (imgH-h)*s.next()
			rois = append(rois, float64(n), x1, y1, x1+w, y1+h)
		}
	}
	return rois
}

func benchInputs() (features, rois, ones *tensor.Dense) {
	rng := rand.New(rand.NewSource(14))
	f := make([]float32, benchBatch*benchChannels*benchHeight*benchWidth)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	features = tensor.New(tensor.WithShape(benchBatch, benchChannels, benchHeight, benchWidth), tensor.WithBacking(f))
	rois = dense(tensor.Float32, []int{benchBatch * benchRoIsPerImage, 5}, benchRoIs())
	u := make([]float32, benchBatch*benchRoIsPerImage*benchChannels*7*7)
	for i := range u {
		u[i] = 1
	}
	ones = tensor.New(tensor.WithShape(benchBatch*benchRoIsPerImage, benchChannels, 7, 7), tensor.WithBacking(u))
	return features, rois, ones
}

// benchStep is one forward and backward pass of op (Align or Pool) as a gorgonia graph, the
// default call: a TapeMachine running op and the gradient node its SymDiff builds (as G.Grad
// does), with an upstream of ones (as out.backward(torch.ones_like(out))), and nothing else.
func benchStep(b *testing.B, build func(f, r *G.Node) (*G.Node, error)) {
	features, rois, ones := benchInputs()
	g := G.NewGraph()
	f := node(g, "features", features)
	r := node(g, "rois", rois)
	out, err := build(f, r)
	if err != nil {
		b.Fatal(err)
	}
	up := node(g, "upstream", ones)
	grads, err := out.Op().(G.SDOp).SymDiff(G.Nodes{f, r}, out, up)
	if err != nil || len(grads) != 2 || grads[0] == nil {
		b.Fatalf("SymDiff: %v, %v", grads, err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	// one warm-up step, as torch_bench.py's: the first step also allocates what later steps
	// reuse (Pool's saved argmaxes, the kernels' tables)
	if err := m.RunAll(); err != nil {
		b.Fatal(err)
	}
	m.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	steps := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := m.RunAll(); err != nil {
			b.Fatal(err)
		}
		m.Reset()
		steps = append(steps, time.Since(start))
	}
	reportCPU(b, cpu)
	slices.Sort(steps)
	b.ReportMetric(float64(steps[0])/float64(time.Millisecond), "min-ms/op")
	b.ReportMetric(float64(steps[len(steps)/2])/float64(time.Millisecond), "median-ms/op")
}

// cpuTime is the process's user and system time so far. On a shared machine the wall time of a
// step depends on the other load; the CPU time it takes much less.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// reportCPU adds the CPU milliseconds per step since start as the metric cpu-ms/op. benchStep
// also reports the fastest step as min-ms/op: on a shared machine the least disturbed step is
// the steadiest wall-time figure (torch_bench.py prints the same).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// benchFloor is what any implementation must at least do per step: allocate and clear the
// output and the gradient, and read the features once.
func benchFloor(b *testing.B) {
	features, _, ones := benchInputs()
	f := features.Data().([]float32)
	b.ReportAllocs()
	b.ResetTimer()
	var sink float32
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		out := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(ones.Shape().Clone()...))
		grad := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(features.Shape().Clone()...))
		for _, v := range f {
			sink += v
		}
		sink += out.Data().([]float32)[0] + grad.Data().([]float32)[0]
	}
	reportCPU(b, cpu)
	_ = sink
}

// BenchmarkAlign: the workload through Align (the default call, a TapeMachine step) and the
// floor, side by side. torchvision 0.14's figure for the same workload comes from
// testdata/torch_bench.py.
func BenchmarkAlign(b *testing.B) {
	b.Run("roi.Align", func(b *testing.B) {
		benchStep(b, func(f, r *G.Node) (*G.Node, error) {
			return Align(f, r, 7, 7, WithSpatialScale(1.0/benchStride), WithSamplingRatio(2), WithAligned(true))
		})
	})
	b.Run("floor", benchFloor)
}

// BenchmarkPool: the workload through Pool and the floor.
func BenchmarkPool(b *testing.B) {
	b.Run("roi.Pool", func(b *testing.B) {
		benchStep(b, func(f, r *G.Node) (*G.Node, error) {
			return Pool(f, r, 7, 7, WithSpatialScale(1.0/benchStride))
		})
	})
	b.Run("floor", benchFloor)
}
