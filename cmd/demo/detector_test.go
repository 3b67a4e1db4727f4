package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestAP50: hand-derived. Rectangles A and B and an ellipse; detections of class rectangle by
// score: 0.9 on A (TP), 0.85 a second box on A (duplicate: FP), 0.7 nowhere (FP), 0.6 on B (TP);
// an ellipse detection on A does not count for rectangles. Precision 1, 1/2, 1/3, 1/2 at recall
// 1/2, 1/2, 1/2, 1: AP = 1/2 * 1 + 1/2 * 1/2 = 0.75.
func TestAP50(t *testing.T) {
	a, b, e := [4]float64{10, 10, 29, 29}, [4]float64{40, 40, 59, 49}, [4]float64{70, 5, 90, 25}
	samples := []Sample{{Size: 100, Boxes: [][4]float64{a, b, e}, Labels: []int{ClassRectangle, ClassRectangle, ClassEllipse}}}
	dets := [][]Detection{{
		{Box: [4]float64{60, 60, 70, 70}, Class: ClassRectangle, Score: 0.7},
		{Box: b, Class: ClassRectangle, Score: 0.6},
		{Box: a, Class: ClassRectangle, Score: 0.9},
		{Box: [4]float64{11, 10, 29, 29}, Class: ClassRectangle, Score: 0.85},
		{Box: a, Class: ClassEllipse, Score: 0.95},
		{Box: e, Class: ClassEllipse, Score: 0.5},
	}}
	if got := AP50(samples, dets, ClassRectangle); math.Abs(got-0.75) > 1e-15 {
		t.Fatalf("rectangle AP %v, want 0.75", got)
	}
	// ellipse: 0.95 on A is a false positive (A is a rectangle), then the TP: precision 0, 1/2
	// at recall 0, 1: AP = 1 * 1/2
	if got := AP50(samples, dets, ClassEllipse); math.Abs(got-0.5) > 1e-15 {
		t.Fatalf("ellipse AP %v, want 0.5", got)
	}
	if got := AP50([]Sample{{Size: 10}}, [][]Detection{nil}, ClassEllipse); got != 0 {
		t.Fatalf("AP without gt %v, want 0", got)
	}
}

// TestDetectorShort: a short two-stage run on small images writes every file, reports AP@0.5
// per class in [0, 1] under "ap50_before"/"ap50_after", and is deterministic for a seed.
func TestDetectorShort(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	o := Options{Steps: 12, Batch: 2, LR: 0.003, Sigma: 3, Seed: 4, Quiet: true, ImageSize: 64, HeldOut: 4}
	o.Out = t.TempDir()
	sum, metrics, err := RunDetector(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 12 || sum.Steps != 12 {
		t.Fatalf("%d metrics, summary steps %d", len(metrics), sum.Steps)
	}
	for _, m := range metrics {
		if m.HeadCls <= 0 || m.Total < m.Cls+m.Reg+m.HeadCls+m.HeadReg-1e-5 || m.Total > m.Cls+m.Reg+m.HeadCls+m.HeadReg+1e-5 {
			t.Fatalf("step %d: total %v is not rpn %v + %v plus head %v + %v", m.Step, m.Total, m.Cls, m.Reg, m.HeadCls, m.HeadReg)
		}
	}
	for _, f := range []string{"metrics.csv", "loss.png", "proposals.png", "detections.png", "summary.json"} {
		st, err := os.Stat(filepath.Join(o.Out, f))
		if err != nil || st.Size() == 0 {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(o.Out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Before map[string]float64 `json:"ap50_before"`
		After  map[string]float64 `json:"ap50_after"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]float64{s.Before, s.After} {
		for _, c := range []string{"rectangle", "ellipse"} {
			if v, ok := m[c]; !ok || v < 0 || v > 1 {
				t.Fatalf("summary.json AP %v lacks %q or is out of [0, 1]", m, c)
			}
		}
	}
	o.Out = t.TempDir()
	_, again, err := RunDetector(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range metrics {
		if metrics[i] != again[i] {
			t.Fatalf("step %d: %+v vs %+v", i+1, metrics[i], again[i])
		}
	}
}
