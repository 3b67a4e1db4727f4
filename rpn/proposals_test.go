package rpn

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// proposalCase is one case of testdata/proposals_golden.json (gen_proposal_fixtures.py):
// torchvision 0.14's real decode + filter_proposals, or the numpy re-derivation of
// py-faster-rcnn's proposal_layer.py.
type proposalCase struct {
	Name         string
	Style        string
	Training     bool
	ImageSizes   [][2]float64 `json:"image_sizes"`
	FeatureSizes [][2]int     `json:"feature_sizes"`
	Strides      [][2]float64
	Sizes        []float64
	Ratios       []float64
	BaseSize     float64 `json:"base_size"`
	Scales       []float64
	PreNMSTopN   int     `json:"pre_nms_top_n"`
	PostNMSTopN  int     `json:"post_nms_top_n"`
	NMSThresh    float64 `json:"nms_thresh"`
	MinSize      float64 `json:"min_size"`
	ScoreThresh  float64 `json:"score_thresh"`
	Anchors      []float64
	Objectness   [][]float64
	Deltas       [][]float64
	Boxes        [][]float64
	Scores       [][]float64
}

// loadCases reads the "cases" of a testdata JSON file.
func loadCases[T any](t testing.TB, file string) []T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []T }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

func loadProposalCases(t testing.TB) []proposalCase {
	return loadCases[proposalCase](t, "proposals_golden.json")
}

// setup builds the case's anchors (compared with the fixture's, exactly), config, values of
// dtype dt and images.
func (c proposalCase) setup(t *testing.T, dt tensor.Dtype) (ProposalConfig, []*Anchors, []G.Value, []G.Value, []Image) {
	t.Helper()
	cfg := TorchvisionProposals(c.Training)
	if c.Style == "py-faster-rcnn" {
		cfg = PyFasterRCNNProposals(c.Training)
	}
	cfg.PreNMSTopN, cfg.PostNMSTopN, cfg.NMSThresh, cfg.MinSize, cfg.ScoreThresh = c.PreNMSTopN, c.PostNMSTopN, c.NMSThresh, c.MinSize, c.ScoreThresh
	B := len(c.ImageSizes)
	var levels []*Anchors
	var objectness, deltas []G.Value
	var all []float64
	for l, hw := range c.FeatureSizes {
		if c.Strides[l][0] != c.Strides[l][1] {
			t.Fatalf("level %d: strides %v differ", l, c.Strides[l])
		}
		var cell [][4]float64
		if c.Style == "py-faster-rcnn" {
			cell = GenerateAnchors(c.BaseSize, c.Ratios, c.Scales)
		} else {
			cell = TorchvisionCellAnchors([]float64{c.Sizes[l]}, c.Ratios)
		}
		an, err := NewAnchors(cell, hw[0], hw[1], c.Strides[l][0])
		if err != nil {
			t.Fatal(err)
		}
		levels = append(levels, an)
		all = append(all, flatten(an.Boxes)...)
		classes := 1
		if cfg.Objectness == Softmax2 {
			classes = 2
			all = append([]float64(nil), flatten(cell)...) // the fixture holds the cell anchors
		}
		objectness = append(objectness, values.Dense(dt, tensor.Shape{B, classes * an.A, hw[0], hw[1]}, c.Objectness[l]))
		deltas = append(deltas, values.Dense(dt, tensor.Shape{B, 4 * an.A, hw[0], hw[1]}, c.Deltas[l]))
	}
	assertClose(t, "anchors", all, c.Anchors, 0)
	images := make([]Image, B)
	for b, s := range c.ImageSizes {
		images[b] = Image{Height: s[0], Width: s[1]}
	}
	return cfg, levels, objectness, deltas, images
}

// TestProposalsGolden: boxes, scores and their order equal the references' to 1e-12 (float64),
// for torchvision FPN (3 and 2 levels: per-level top-n, score threshold, min size, clamped
// decode) and single-level cases, and py-faster-rcnn's proposal_layer (with and without top-n).
func TestProposalsGolden(t *testing.T) {
	for _, c := range loadProposalCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			cfg, levels, objectness, deltas, images := c.setup(t, tensor.Float64)
			got, err := Proposals(cfg, levels, objectness, deltas, images)
			if err != nil {
				t.Fatal(err)
			}
			for b := range images {
				if len(got[b].Boxes)*4 != len(c.Boxes[b]) {
					t.Fatalf("image %d: %d proposals, the reference has %d", b, len(got[b].Boxes), len(c.Boxes[b])/4)
				}
				assertClose(t, fmt.Sprintf("image %d boxes", b), flatten(got[b].Boxes), c.Boxes[b], 1e-12)
				assertClose(t, fmt.Sprintf("image %d scores", b), got[b].Scores, c.Scores[b], 1e-12)
			}
		})
	}
}

// TestProposalsDtypesAndViews: float32 values give exactly the proposals of their float64
// conversion (the arithmetic is float64 throughout), and views of the values (a column slice,
// a transpose) give exactly the contiguous values' proposals.
func TestProposalsDtypesAndViews(t *testing.T) {
	for _, c := range loadProposalCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			cfg, levels, obj32, del32, images := c.setup(t, tensor.Float32)
			got32, err := Proposals(cfg, levels, obj32, del32, images)
			if err != nil {
				t.Fatal(err)
			}
			var obj64, del64, objView, delView []G.Value
			for l := range levels {
				o := values.Dense(tensor.Float64, obj32[l].Shape(), values.Float64s(obj32[l]))
				d := values.Dense(tensor.Float64, del32[l].Shape(), values.Float64s(del32[l]))
				obj64, del64 = append(obj64, o), append(del64, d)
				objView = append(objView, viewOf(t, o, "columns"))
				delView = append(delView, viewOf(t, d, "transposed"))
			}
			for _, v := range []struct {
				name     string
				obj, del []G.Value
			}{{"float64", obj64, del64}, {"views", objView, delView}} {
				got, err := Proposals(cfg, levels, v.obj, v.del, images)
				if err != nil {
					t.Fatal(err)
				}
				for b := range got {
					sameBits(t, v.name+" boxes", flatten(got[b].Boxes), flatten(got32[b].Boxes))
					sameBits(t, v.name+" scores", got[b].Scores, got32[b].Scores)
				}
			}
		})
	}
}

// TestSelectTop: selectTop's k entries are those of a full sort by (key descending, index
// ascending), on random keys with many ties, for every k.
func TestSelectTop(t *testing.T) {
	rng := rand.New(rand.NewSource(85))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.Intn(300)
		keys, index := make([]float64, n), make([]int32, n)
		for i := range keys {
			keys[i], index[i] = float64(rng.Intn(1+n/10)), int32(i)
		}
		sorted := slices.Clone(index)
		slices.SortFunc(sorted, func(a, b int32) int {
			if keys[a] != keys[b] {
				if keys[a] > keys[b] {
					return -1
				}
				return 1
			}
			return int(a - b)
		})
		k := rng.Intn(n + 2)
		top := selectTop(slices.Clone(keys), slices.Clone(index), k)
		want := sorted
		if k > 0 && k < n {
			want = sorted[:k]
		}
		got := slices.Clone(top)
		slices.Sort(got)
		want = slices.Clone(want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n %d, k %d): %v, want %v", trial, n, k, got, want)
		}
	}
}
