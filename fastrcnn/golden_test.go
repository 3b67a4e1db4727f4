package fastrcnn

import (
	"math"
	"testing"

	"github.com/detlab/smoothl1/internal/testkit"
)

// Fixtures: testdata/fastrcnn_golden.json, written by testdata/gen_fastrcnn_fixtures.py from
// torchvision 0.14's RoIHeads.select_training_samples and fastrcnn_loss (PyTorch 1.13 autograd
// for the gradients), and from a numpy re-derivation of py-faster-rcnn's proposal_target_layer
// with faster-rcnn.pytorch's head loss (the seed's _smooth_l1_loss, sigma 1, dim [1]). Sampling
// never truncates in these cases, so the rows are the reference's.
type goldenImage struct {
	Proposals [][4]float64 `json:"proposals"`
	Boxes     [][4]float64 `json:"boxes"`
	Labels    []int        `json:"labels"`
}

type goldenCase struct {
	NumClasses int           `json:"num_classes"`
	BgLo       float64       `json:"bg_lo"`
	Images     []goldenImage `json:"images"`
	RoIs       [][]float64   `json:"rois"`
	Labels     []int         `json:"labels"`
	// torchvision only: the matched gt of each row (clamped: 0 for background) and the (R, 4)
	// class-agnostic regression targets
	Matched           []int       `json:"matched"`
	RegressionTargets [][]float64 `json:"regression_targets"`
	// py-faster-rcnn only: the candidate index of each row and the class-specific arrays
	Source      []int       `json:"source"`
	BBoxTargets [][]float64 `json:"bbox_targets"`
	Inside      [][]float64 `json:"inside"`
	Outside     [][]float64 `json:"outside"`
	// the loss at random head outputs, and its gradients
	Logits     [][]float64 `json:"logits"`
	Deltas     [][]float64 `json:"deltas"`
	LossCls    float64     `json:"loss_cls"`
	LossBox    float64     `json:"loss_box"`
	GradLogits [][]float64 `json:"grad_logits"`
	GradDeltas [][]float64 `json:"grad_deltas"`
}

type golden struct {
	Torchvision goldenCase `json:"torchvision"`
	PyFRCNN     goldenCase `json:"pyfrcnn"`
	PyFRCNNLo0  goldenCase `json:"pyfrcnn_lo0"`
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	var g golden
	testkit.ReadJSON(t, "testdata/fastrcnn_golden.json", &g)
	return &g
}

// goldenCases pairs each fixture with the library's preset for it.
func goldenCases(g *golden) []struct {
	name string
	cfg  Config
	c    *goldenCase
} {
	py := PyFasterRCNNConfig(g.PyFRCNN.NumClasses)
	py0 := PyFasterRCNNConfig(g.PyFRCNNLo0.NumClasses)
	py0.BgIoULow = g.PyFRCNNLo0.BgLo // faster-rcnn.pytorch's BG_THRESH_LO 0.0
	return []struct {
		name string
		cfg  Config
		c    *goldenCase
	}{
		{"torchvision", TorchvisionConfig(g.Torchvision.NumClasses), &g.Torchvision},
		{"py-faster-rcnn", py, &g.PyFRCNN},
		{"py-faster-rcnn-bg-lo-0", py0, &g.PyFRCNNLo0},
	}
}

func (c *goldenCase) images() []Image {
	ims := make([]Image, len(c.Images))
	for b, im := range c.Images {
		ims[b] = Image(im)
	}
	return ims
}

func flat(rows [][]float64) []float64 {
	var out []float64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func compareSlices(t *testing.T, name string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range got {
		if !closeTo(got[i], want[i], tol) {
			t.Fatalf("%s[%d] = %.17g, want %.17g", name, i, got[i], want[i])
		}
	}
}

func TestSampleTargetsGolden(t *testing.T) {
	g := loadGolden(t)
	for _, tc := range goldenCases(g) {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			got, err := SampleTargets(tc.cfg, c.images())
			if err != nil {
				t.Fatal(err)
			}
			R, C := len(c.Labels), tc.cfg.Columns()
			if got.Rows() != R {
				t.Fatalf("%d rows, want %d (labels %v, want %v)", got.Rows(), R, got.Labels, c.Labels)
			}
			for i := range c.Labels {
				if got.Labels[i] != c.Labels[i] {
					t.Fatalf("label[%d] = %d, want %d (all: %v, want %v)", i, got.Labels[i], c.Labels[i], got.Labels, c.Labels)
				}
			}
			compareSlices(t, "rois", got.RoIs, flat(c.RoIs), 1e-12)
			if c.Source != nil {
				for i := range c.Source {
					if got.Source[i] != c.Source[i] {
						t.Fatalf("source[%d] = %d, want %d", i, got.Source[i], c.Source[i])
					}
				}
			}
			wantTargets, wantInside, wantOutside := flat(c.BBoxTargets), flat(c.Inside), flat(c.Outside)
			if c.RegressionTargets != nil {
				// torchvision's targets are (R, 4), class-agnostic; its loss reads the slot of
				// each positive row's label. The library stores exactly that slot.
				wantTargets = make([]float64, R*C)
				wantInside = make([]float64, R*C)
				for i, l := range c.Labels {
					if l == 0 {
						continue
					}
					if got.MatchedGT[i] != c.Matched[i] {
						t.Fatalf("row %d: matched gt %d, want %d", i, got.MatchedGT[i], c.Matched[i])
					}
					for k := 0; k < 4; k++ {
						wantTargets[i*C+4*l+k] = c.RegressionTargets[i][k]
						wantInside[i*C+4*l+k] = 1
					}
				}
				wantOutside = wantInside
			}
			compareSlices(t, "bbox targets", got.BBoxTargets, wantTargets, 1e-12)
			compareSlices(t, "inside weights", got.InsideWeights, wantInside, 0)
			compareSlices(t, "outside weights", got.OutsideWeights, wantOutside, 0)
			// counts per image agree with the rows
			fg, bg := 0, 0
			for b := range c.Images {
				fg, bg = fg+got.NumFg[b], bg+got.NumBg[b]
			}
			nFg := 0
			for _, l := range c.Labels {
				if l > 0 {
					nFg++
				}
			}
			if fg != nFg || bg != R-nFg {
				t.Fatalf("NumFg %v NumBg %v, want %d fg and %d bg in all", got.NumFg, got.NumBg, nFg, R-nFg)
			}
		})
	}
}
