package roi

import (
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestAlignTableBounded: a float32 roi one row of 4096 pixels wide pooled into 2048 bins (sampling
// ratio 1: about 2 taps per bin) allocates a few times its taps, not roi width x bins (the AVX2
// tables once took 135 MB here, found by review; the Go loops need about 0.4 MB). Forward and
// backward through a TapeMachine, under 16 MB in all.
func TestAlignTableBounded(t *testing.T) {
	const width, outW = 4096, 2048
	g := G.NewGraph()
	f := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 1, width), G.WithName("f"), G.WithInit(G.RangedFrom(0)))
	r := G.NewMatrix(g, tensor.Float32, G.WithShape(1, 5), G.WithName("r"),
		G.WithValue(tensor.New(tensor.WithShape(1, 5), tensor.WithBacking([]float32{0, 0, 0, width, 1}))))
	out, err := Align(f, r, 1, outW, WithSamplingRatio(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(G.Must(G.Sum(out)), f); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("one step allocated %d MB, want under 16", got>>20)
	}
}
