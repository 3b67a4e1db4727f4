package roi_test

import (
	"fmt"
	"testing"

	"github.com/detlab/smoothl1/roi"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestPoolSaveInPlaceChange: a caller that runs a Pool node's op, changes the features or the
// rois in place, then runs the gradient op on the same tensor objects gets the gradient of the
// new values, as if no argmax had been saved (found by review: the save was checked by object
// identity alone and gave [1 0 0 0]). Hand-derived: one 1x1 bin over a 2x2 plane; the features
// [9 0 0 0] refilled with [0 0 0 100] have their maximum at pixel 3, so the gradient of an
// upstream 1 is [0 0 0 1]; rois moved from the top-left pixel alone to the whole plane take the
// maximum 100 at pixel 3 too.
func TestPoolSaveInPlaceChange(t *testing.T) {
	for _, change := range []string{"features", "rois"} {
		t.Run(change, func(t *testing.T) {
			g := G.NewGraph()
			fv := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{9, 0, 0, 100}))
			roiBox := []float64{0, 0, 0, 0, 0} // pixel (0, 0) only
			if change == "features" {
				fv = tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{9, 0, 0, 0}))
				roiBox = []float64{0, 0, 0, 1, 1} // the whole plane
			}
			rv := tensor.New(tensor.WithShape(1, 5), tensor.WithBacking(roiBox))
			f := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 1, 2, 2), G.WithName("f"), G.WithValue(fv))
			r := G.NewMatrix(g, tensor.Float64, G.WithShape(1, 5), G.WithName("r"), G.WithValue(rv))
			out, err := roi.Pool(f, r, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			grads, err := G.Grad(G.Must(G.Sum(out)), f)
			if err != nil {
				t.Fatal(err)
			}
			o, err := out.Op().Do(fv, rv) // saves the argmax (pixel 0)
			if err != nil {
				t.Fatal(err)
			}
			if change == "features" {
				copy(fv.Data().([]float64), []float64{0, 0, 0, 100})
			} else {
				copy(rv.Data().([]float64), []float64{0, 0, 0, 1, 1})
			}
			gr, err := grads[0].Op().Do(fv, rv, o, tensor.New(tensor.WithShape(1, 1, 1, 1), tensor.WithBacking([]float64{1})))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(gr.(*tensor.Dense).Data()); got != "[0 0 0 1]" {
				t.Fatalf("gradient %s after changing the %s in place, want [0 0 0 1]", got, change)
			}
		})
	}
}
