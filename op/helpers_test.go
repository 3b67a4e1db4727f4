package op

import (
	"math"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/testkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// dense makes a tensor of dtype dt from float64 data.
func dense(dt tensor.Dtype, shape []int, data []float64) *tensor.Dense {
	return values.Dense(dt, shape, data)
}

func node(g *G.ExprGraph, name string, v *tensor.Dense) *G.Node { return testkit.Node(g, name, v) }

func float64s(v G.Value) []float64 { return values.Float64s(v) }

func closeTo(a, b, abs, rel float64) bool { return testkit.CloseTo(a, b, abs, rel) }

func assertClose(t *testing.T, what string, got, want []float64, abs, rel float64) {
	t.Helper()
	testkit.AssertClose(t, what, got, want, abs, rel)
}

// residualsAwayFromKinks returns pred, target and inside weights such that every
// x = w_in*(pred - target) with w_in != 0 is at least margin from 0 and from ±beta.
func residualsAwayFromKinks(rng *rand.Rand, n int, beta, margin float64, withInside bool) (pred, target, inside []float64) {
	pred, target, inside = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		w := 1.0
		if withInside {
			w = []float64{0, 0.5, 1, 2}[rng.Intn(4)]
		}
		inside[i] = w
		target[i] = rng.NormFloat64()
		for {
			r := rng.NormFloat64() * 0.6
			x := math.Abs(w * r)
			if w == 0 || (x > margin && math.Abs(x-beta) > margin && math.Abs(r) > margin) {
				pred[i] = target[i] + r
				break
			}
		}
	}
	return pred, target, inside
}

type goldenFile struct {
	Generator    string       `json:"generator"`
	TorchVersion string       `json:"torch_version"`
	Cases        []goldenCase `json:"cases"`
}

type goldenCase struct {
	Family    string    `json:"family"`
	Name      string    `json:"name"`
	Shape     []int     `json:"shape"`
	Sigma     float64   `json:"sigma"`
	Dims      []int     `json:"dims"`
	Beta      float64   `json:"beta"`
	Reduction string    `json:"reduction"`
	Pred      []float64 `json:"pred"`
	Target    []float64 `json:"target"`
	Inside    []float64 `json:"inside"`
	Outside   []float64 `json:"outside"`
	Upstream  []float64 `json:"upstream"`
	Loss      []float64 `json:"loss"`
	DPred     []float64 `json:"dpred"`
	DTarget   []float64 `json:"dtarget"`
}

func loadGolden(t *testing.T) goldenFile {
	t.Helper()
	var f goldenFile
	testkit.ReadJSON(t, "testdata/smoothl1_golden.json", &f)
	if len(f.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	return f
}

func mustGrad(t *testing.T, cost *G.Node, wrt ...*G.Node) G.Nodes {
	t.Helper()
	grads, err := G.Grad(cost, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	return grads
}
