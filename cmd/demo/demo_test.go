package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/rpn"
)

// TestGenerateScenes: deterministic for a seed; 1-4 objects whose boxes lie inside the image,
// at least 6 pixels wide, and whose pixels differ from the background on average.
func TestGenerateScenes(t *testing.T) {
	d := DefaultData(128)
	a := d.Generate(rand.New(rand.NewSource(5)))
	b := d.Generate(rand.New(rand.NewSource(5)))
	for i := range a.Pixels {
		if a.Pixels[i] != b.Pixels[i] {
			t.Fatal("same seed, different pixels")
		}
	}
	rng := rand.New(rand.NewSource(6))
	for i := 0; i < 200; i++ {
		s := d.Generate(rng)
		if len(s.Boxes) < 1 || len(s.Boxes) > 4 {
			t.Fatalf("scene %d has %d objects", i, len(s.Boxes))
		}
		for _, box := range s.Boxes {
			if box[0] < 0 || box[1] < 0 || box[2] > 127 || box[3] > 127 || box[2]-box[0]+1 < 6 || box[3]-box[1]+1 < 6 {
				t.Fatalf("scene %d: box %v outside the image or too small", i, box)
			}
		}
		// objects stand out: mean |pixel| inside each box exceeds the background's by 0.2
		// (objects have |intensity| >= 0.8, an ellipse fills pi/4 of its box; noise sd 0.25)
		inBox := func(x, y int) bool {
			for _, b := range s.Boxes {
				if float64(x) >= b[0] && float64(x) <= b[2] && float64(y) >= b[1] && float64(y) <= b[3] {
					return true
				}
			}
			return false
		}
		bg, nbg := 0.0, 0
		for y := 0; y < 128; y++ {
			for x := 0; x < 128; x++ {
				if !inBox(x, y) {
					bg += math.Abs(s.Pixels[y*128+x])
					nbg++
				}
			}
		}
		bg /= float64(nbg)
		for _, b := range s.Boxes {
			in, nin := 0.0, 0
			for y := int(b[1]); y <= int(b[3]); y++ {
				for x := int(b[0]); x <= int(b[2]); x++ {
					in += math.Abs(s.Pixels[y*128+x])
					nin++
				}
			}
			if in/float64(nin) < bg+0.2 {
				t.Fatalf("scene %d: box %v mean |pixel| %.3f vs background %.3f", i, b, in/float64(nin), bg)
			}
		}
	}
}

// TestProposalsDecode: one anchor scored high with zero deltas comes out first, as its own
// (clipped) box; a second anchor overlapping it above the NMS threshold is suppressed.
func TestProposalsDecode(t *testing.T) {
	// 1x2 feature map, one 16x16 anchor per cell, stride 8: anchors [0,0,15,15] and [8,0,23,15]
	// (IoU with +1: 8*16/(256+256-128) = 1/3).
	an, err := rpn.NewAnchors([][4]float64{{0, 0, 15, 15}}, 1, 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	// scores (2A, H, W) = bg then fg, for 2 cells: fg - bg = 4 at cell 1, 0 at cell 0
	scores := []float32{0, 0, 0, 4}
	deltas := make([]float32, 8)
	props := Proposals(an, scores, deltas, 32, rpn.PyFasterRCNNCoder(), 10, 10, 0.7, 1)
	if len(props) != 2 {
		t.Fatalf("%d proposals, want 2 (IoU 1/3 < 0.7)", len(props))
	}
	// zero deltas decode to the anchor + (0, 0, 1, 1) (py-faster-rcnn convention), clipped to 31
	want := [4]float64{8, 0, 24, 16}
	if props[0].Box != want {
		t.Fatalf("top proposal %v, want %v", props[0].Box, want)
	}
	// probability sigmoid(4) = 0.98201
	if p := props[0].Score; p < 0.982 || p > 0.9821 {
		t.Fatalf("score %v, want sigmoid(4) = 0.98201", p)
	}
	props = Proposals(an, scores, deltas, 32, rpn.PyFasterRCNNCoder(), 10, 10, 0.3, 1)
	if len(props) != 1 {
		t.Fatalf("NMS at 0.3 kept %d proposals, want 1", len(props))
	}
	found, total := Recall([][4]float64{{8, 0, 23, 15}, {100, 100, 110, 110}}, props, 0.5, true)
	if found != 1 || total != 2 {
		t.Fatalf("recall %d/%d, want 1/2", found, total)
	}
}

// TestTrainShort: a short run on small images writes every file, and the loss falls.
func TestTrainShort(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	out := t.TempDir()
	sum, metrics, err := Run(Options{Steps: 40, Batch: 2, LR: 0.003, Sigma: 3, Seed: 3, Out: out, Quiet: true, ImageSize: 64, HeldOut: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 40 || sum.Steps != 40 {
		t.Fatalf("%d metrics, summary steps %d", len(metrics), sum.Steps)
	}
	if !(sum.LossLast < 0.6*sum.LossFirst) {
		t.Fatalf("loss did not fall: first %v, last %v", sum.LossFirst, sum.LossLast)
	}
	for _, f := range []string{"metrics.csv", "loss.png", "proposals.png", "summary.json"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil || st.Size() == 0 {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	fcsv, err := os.Open(filepath.Join(out, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer fcsv.Close()
	rows, err := csv.NewReader(fcsv).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 41 || rows[0][0] != "step" || rows[0][1] != "total" || rows[0][2] != "cls" || rows[0][3] != "reg" {
		t.Fatalf("metrics.csv header %v, %d rows", rows[0], len(rows))
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"steps", "seconds", "loss_first", "loss_last", "recall_before", "recall_after"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("summary.json lacks %q", k)
		}
	}
}

// TestTrainDeterministic: the same seed gives the same losses, bit for bit.
func TestTrainDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	o := Options{Steps: 5, Batch: 2, LR: 0.003, Sigma: 3, Seed: 9, Quiet: true, ImageSize: 32, HeldOut: 2}
	o.Out = t.TempDir()
	_, a, err := Run(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Out = t.TempDir()
	_, b, err := Run(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: %+v vs %+v", i+1, a[i], b[i])
		}
	}
}

// TestRejectsBadFlags: non-finite or non-positive flags are errors naming the flag and the value,
// before any work.
func TestRejectsBadFlags(t *testing.T) {
	base := Options{Steps: 5, Batch: 2, LR: 0.003, Sigma: 3, Seed: 1, Quiet: true, ImageSize: 32, HeldOut: 2, Out: t.TempDir()}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"lr +Inf", func(o *Options) { o.LR = math.Inf(1) }, "-lr must be a finite number > 0, got +Inf"},
		{"lr NaN", func(o *Options) { o.LR = math.NaN() }, "-lr must be a finite number > 0, got NaN"},
		{"lr 0", func(o *Options) { o.LR = 0 }, "-lr must be a finite number > 0, got 0"},
		{"sigma +Inf", func(o *Options) { o.Sigma = math.Inf(1) }, "-sigma must be a finite number > 0, got +Inf"},
		{"steps 0", func(o *Options) { o.Steps = 0 }, "-steps must be > 0, got 0"},
		{"size 8", func(o *Options) { o.ImageSize = 8 }, "-size must be >= 16, got 8"},
	} {
		o := base
		c.edit(&o)
		if _, _, err := Run(o, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestDivergenceStops: with a learning rate of 1e30 the parameters blow up after the first update;
// training stops at the first non-finite value with a DivergedError naming the step and
// suggesting a smaller -lr, and keeps metrics.csv up to the last finite step and a summary.json
// that says the run diverged. Before the NaN watch and the checks, gorgonia's maxPoolDiffOp
// panicked inside RunAll's goroutine, so the case runs in a child process.
func TestDivergenceStops(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	for _, lr := range []float64{1e30, 1e300} {
		out := t.TempDir()
		sum, metrics, err := Run(Options{Steps: 20, Batch: 2, LR: lr, Sigma: 3, Seed: 3, Out: out, Quiet: true, ImageSize: 32, HeldOut: 2}, nil)
		var de *DivergedError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "smaller -lr") {
			t.Fatalf("lr %v: %v, want a DivergedError suggesting a smaller -lr", lr, err)
		}
		if sum == nil || !sum.Diverged || sum.DivergedAt != de.Step || sum.Steps != len(metrics) || de.Step > 20 {
			t.Fatalf("lr %v: summary %+v, error step %d, %d metrics", lr, sum, de.Step, len(metrics))
		}
		rows, err := csv.NewReader(strings.NewReader(readFile(t, filepath.Join(out, "metrics.csv")))).ReadAll()
		if err != nil || len(rows) != len(metrics)+1 {
			t.Fatalf("lr %v: metrics.csv has %d rows (%v), want %d", lr, len(rows), err, len(metrics)+1)
		}
		var keys map[string]any
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(out, "summary.json"))), &keys); err != nil || keys["diverged"] != true {
			t.Fatalf("lr %v: summary.json %v (%v), want diverged: true", lr, keys, err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
