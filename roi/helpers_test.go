package roi

import (
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/testkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func dense(dt tensor.Dtype, shape []int, data []float64) *tensor.Dense {
	return values.Dense(dt, shape, data)
}

func node(g *G.ExprGraph, name string, v *tensor.Dense) *G.Node { return testkit.Node(g, name, v) }

func closeTo(a, b, abs, rel float64) bool { return testkit.CloseTo(a, b, abs, rel) }

func assertClose(t *testing.T, what string, got, want []float64, abs, rel float64) {
	t.Helper()
	testkit.AssertClose(t, what, got, want, abs, rel)
}

type goldenInput struct {
	Scale         float64   `json:"scale"`
	FeaturesShape []int     `json:"features_shape"`
	Features      []float64 `json:"features"`
	RoIsShape     []int     `json:"rois_shape"`
	RoIs          []float64 `json:"rois"`
}

type goldenCase struct {
	Op            string    `json:"op"`
	Name          string    `json:"name"`
	Input         string    `json:"input"`
	Dtype         string    `json:"dtype"`
	OutputSize    []int     `json:"output_size"`
	SamplingRatio int       `json:"sampling_ratio"`
	Aligned       bool      `json:"aligned"`
	Upstream      []float64 `json:"upstream"`
	Output        []float64 `json:"output"`
	Grad          []float64 `json:"grad"`
}

type goldenFile struct {
	Generator          string                 `json:"generator"`
	TorchvisionVersion string                 `json:"torchvision_version"`
	Inputs             map[string]goldenInput `json:"inputs"`
	Cases              []goldenCase           `json:"cases"`
}

func loadGolden(t *testing.T) goldenFile {
	t.Helper()
	var f goldenFile
	testkit.ReadJSON(t, "testdata/roi_golden.json", &f)
	if len(f.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	return f
}

// runOp evaluates op(features, rois) and the features' gradient of Σ upstream ⊙ out on the
// TapeMachine (G.Grad, SymDiff) or the LispMachine (DoDiff).
func runOp(t *testing.T, build func(f, r *G.Node) (*G.Node, error), features, rois, upstream *tensor.Dense, lisp bool) (out, grad []float64) {
	t.Helper()
	g := G.NewGraph()
	// copies: the machines write engine settings into their input values
	f := node(g, "features", features.Clone().(*tensor.Dense))
	r := node(g, "rois", rois.Clone().(*tensor.Dense))
	o, err := build(f, r)
	if err != nil {
		t.Fatal(err)
	}
	up := node(g, "upstream", upstream.Clone().(*tensor.Dense))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(o, up))))
	var grads G.Nodes
	var m G.VM
	if lisp {
		m = G.NewLispMachine(g, G.WithWatchlist()) // r and up get no gradient
	} else {
		if grads, err = G.Grad(cost, f); err != nil {
			t.Fatal(err)
		}
		m = G.NewTapeMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	out = values.Float64s(o.Value())
	if lisp {
		gv, err := f.Grad()
		if err != nil {
			t.Fatal(err)
		}
		return out, values.Float64s(gv)
	}
	return out, values.Float64s(grads[0].Value())
}

func randSource(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }
