package roi_test

import (
	"fmt"

	"github.com/detlab/smoothl1/roi"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RoIAlign of one box over a 4x4 map whose values are v(y, x) = 10y + x: bilinear sampling of a
// linear function is exact. The box (2, 2)-(10, 6) in image coordinates at stride 2 is
// (1, 1)-(5, 3) on the map; aligned shifts it by -0.5 to (0.5, 0.5)-(4.5, 2.5): 1x2 bins of
// 2x2 feature pixels, 2x2 samples each at y = 0.5 + (iy + 0.5) = 1, 2 and x = 1, 2 (bin 0),
// 3, 4 (bin 1). x = 4 is inside [-1, W] but past W-1 = 3, so it is clamped to 3. Bin 0 is
// v(1.5, 1.5) = 16.5, bin 1 v(1.5, 3) = 18. The samples sit on whole pixels, so the gradient of
// the sum puts 1/4 of each bin's 1 on each sample's pixel: (1, 3) and (2, 3) get two each.
func ExampleAlign() {
	g := G.NewGraph()
	data := make([]float64, 16)
	for i := range data {
		data[i] = float64(10*(i/4) + i%4)
	}
	features := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 1, 4, 4), G.WithName("features"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 4, 4), tensor.WithBacking(data))))
	rois := G.NewMatrix(g, tensor.Float64, G.WithShape(1, 5), G.WithName("rois"),
		G.WithValue(tensor.New(tensor.WithShape(1, 5), tensor.WithBacking([]float64{0, 2, 2, 10, 6}))))
	out, err := roi.Align(features, rois, 1, 2, roi.WithSpatialScale(0.5), roi.WithSamplingRatio(2), roi.WithAligned(true))
	if err != nil {
		fmt.Println(err)
		return
	}
	grads, err := G.Grad(G.Must(G.Sum(out)), features)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Value().Data())
	fmt.Printf("%v\n", grads[0].Value())
	// Output:
	// [16.5 18]
	// ⎡   0     0     0     0⎤
	// ⎢   0  0.25  0.25   0.5⎥
	// ⎢   0  0.25  0.25   0.5⎥
	// ⎣   0     0     0     0⎦
}

// RoIPool of one box over the same map: the box (0, 0)-(6, 2) at stride 2 rounds to columns
// 0..3 and rows 0..1; 1x2 bins of 2 columns: the maxima are v(1, 1) = 11 and v(1, 3) = 13, and
// the gradient of the sum is 1 at each argmax.
func ExamplePool() {
	g := G.NewGraph()
	data := make([]float64, 16)
	for i := range data {
		data[i] = float64(10*(i/4) + i%4)
	}
	features := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 1, 4, 4), G.WithName("features"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 4, 4), tensor.WithBacking(data))))
	rois := G.NewMatrix(g, tensor.Float64, G.WithShape(1, 5), G.WithName("rois"),
		G.WithValue(tensor.New(tensor.WithShape(1, 5), tensor.WithBacking([]float64{0, 0, 0, 6, 2}))))
	out, err := roi.Pool(features, rois, 1, 2, roi.WithSpatialScale(0.5))
	if err != nil {
		fmt.Println(err)
		return
	}
	grads, err := G.Grad(G.Must(G.Sum(out)), features)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Value().Data())
	fmt.Printf("%v\n", grads[0].Value())
	// Output:
	// [11 13]
	// ⎡0  0  0  0⎤
	// ⎢0  1  0  1⎥
	// ⎢0  0  0  0⎥
	// ⎣0  0  0  0⎦
}
