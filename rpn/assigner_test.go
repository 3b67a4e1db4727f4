package rpn

import (
	"fmt"
	"math/rand"
	"testing"
)

// TestAssignerNoStaleValues: an Assigner reused over steps with different gt counts (images
// without gt among them), image sizes and batch sizes gives, at every step, the bits of a fresh
// AssignTargetsLevels (the expected values are the package's own unreused path, which the goldens
// check against torchvision and py-faster-rcnn).
func TestAssignerNoStaleValues(t *testing.T) {
	l0, l1 := twoLevels(t)
	// gt counts per image, step by step; sizes vary so the border filter keeps other anchors
	steps := []struct {
		gts  []int
		size float64
	}{
		{[]int{20, 3}, 256}, {[]int{0, 0}, 256}, {[]int{5, 0}, 200}, {[]int{0, 40}, 256},
		{[]int{2, 0, 7}, 256}, {[]int{0, 9}, 180}, {[]int{1, 1}, 256},
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		levels []*Anchors
	}{
		{"torchvision one level", TorchvisionConfig(), []*Anchors{l0}},
		{"py-faster-rcnn one level", DefaultConfig(), []*Anchors{l0}},
		{"torchvision two levels", TorchvisionConfig(), []*Anchors{l0, l1}},
		{"py-faster-rcnn positive weight", func() Config { c := DefaultConfig(); c.PositiveWeight = 0.4; return c }(), []*Anchors{l0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(17))
			var as Assigner
			for s, st := range steps {
				images := make([]Image, len(st.gts))
				for b, n := range st.gts {
					images[b] = Image{Height: st.size, Width: st.size, Boxes: randomBoxes(rng, n, st.size, 10, 120)}
				}
				got, err := as.AssignTargetsLevels(tc.cfg, tc.levels, images)
				if err != nil {
					t.Fatal(err)
				}
				want, err := AssignTargetsLevels(tc.cfg, tc.levels, images)
				if err != nil {
					t.Fatal(err)
				}
				for l := range want {
					g, w := got[l], want[l]
					what := fmt.Sprintf("step %d (gt %v) level %d", s, st.gts, l)
					sameBits(t, what+" labels", g.Labels, w.Labels)
					sameBits(t, what+" cls weights", g.ClsWeights, w.ClsWeights)
					sameBits(t, what+" bbox targets", g.BBoxTargets, w.BBoxTargets)
					sameBits(t, what+" inside weights", g.InsideWeights, w.InsideWeights)
					sameBits(t, what+" outside weights", g.OutsideWeights, w.OutsideWeights)
					if fmt.Sprint(g.NumPos, g.NumNeg) != fmt.Sprint(w.NumPos, w.NumNeg) {
						t.Fatalf("%s: counts %v %v, want %v %v", what, g.NumPos, g.NumNeg, w.NumPos, w.NumNeg)
					}
					if gc, _ := g.Config(); fmt.Sprint(gc) != fmt.Sprint(tc.cfg) {
						t.Fatalf("%s: Config() %v, want %v", what, gc, tc.cfg)
					}
				}
			}
		})
	}
}

// twoLevels is the reuse tests' two levels: 16x16 cells of stride 16 (nine cell anchors, sizes
// 32-128) and 8x8 cells of stride 32 (six, sizes 128-256).
func twoLevels(t *testing.T) (l0, l1 *Anchors) {
	t.Helper()
	l0, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{2, 4, 8}), 16, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	l1, err = NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{8, 16}), 8, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	return l0, l1
}
