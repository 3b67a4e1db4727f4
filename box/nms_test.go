package box

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// randomBoxes: n boxes with sides in [lo, lo+spread) inside a size x size area (the issue's
// benchmark scene: sides 16-316 in 1000x1000), scores uniform in [0, 1).
func randomBoxes(rng *rand.Rand, n int, size, lo, spread float64) ([][4]float64, []float64) {
	boxes, scores := make([][4]float64, n), make([]float64, n)
	for i := range boxes {
		w, h := lo+rng.Float64()*spread, lo+rng.Float64()*spread
		x, y := rng.Float64()*(size-w), rng.Float64()*(size-h)
		boxes[i] = [4]float64{x, y, x + w, y + h}
		scores[i] = rng.Float64()
	}
	return boxes, scores
}

// TestNMSEqualsQuadratic: the windowed NMS keeps exactly what the quadratic reference
// (suppressAll: every box against every kept box) keeps, on random scenes with clusters, ties,
// integer coordinates, both pixel conventions, thresholds 0 to 1 and maxKeep limits.
func TestNMSEqualsQuadratic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.Intn(400)
		boxes, scores := randomBoxes(rng, n, 50+rng.Float64()*500, 1+rng.Float64()*10, rng.Float64()*100)
		if trial%3 == 0 { // integer coordinates and tied scores
			for i := range boxes {
				for k := range boxes[i] {
					boxes[i][k] = math.Round(boxes[i][k])
				}
				scores[i] = math.Round(scores[i] * 5)
			}
		}
		if trial%5 == 0 { // clusters of near-duplicates
			for i := 1; i < n; i += 2 {
				boxes[i] = boxes[i-1]
				boxes[i][2] += rng.Float64() * 3
			}
		}
		thresh := []float64{0, 0.3, 0.5, 0.7, 0.95, 1, rng.Float64()}[trial%7]
		plusOne := trial%2 == 0
		maxKeep := []int{0, 0, 5, n / 2}[trial%4]
		got, err := NMS(boxes, scores, thresh, maxKeep, plusOne)
		if err != nil {
			t.Fatal(err)
		}
		want := suppressAll(boxes, byScore(scores, nil), thresh, maxKeep, plusOne)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n %d, thresh %v, plusOne %t, maxKeep %d): kept %v, quadratic %v", trial, n, thresh, plusOne, maxKeep, got, want)
		}
	}
}

// TestNMSHandDerived: boxes 0 and 1 overlap with IoU 50/150 = 1/3 (hand-derived, no +1: 10x10
// boxes shifted by 5); box 2 is disjoint. At 0.3 box 1 (lower score) is suppressed; at 0.5 it is
// kept. NaN scores are dropped; ties go to the lower index; non-finite boxes neither suppress
// nor are suppressed; a negative thresh keeps only the best box.
func TestNMSHandDerived(t *testing.T) {
	b := [][4]float64{{0, 0, 10, 10}, {5, 0, 15, 10}, {20, 20, 30, 30}}
	for _, c := range []struct {
		name   string
		boxes  [][4]float64
		scores []float64
		thresh float64
		want   []int
	}{
		{"suppressed at 0.3", b, []float64{0.9, 0.8, 0.1}, 0.3, []int{0, 2}},
		{"kept at 0.5", b, []float64{0.9, 0.8, 0.1}, 0.5, []int{0, 1, 2}},
		{"score order", b, []float64{0.1, 0.8, 0.9}, 0.3, []int{2, 1}},
		{"NaN score dropped", b, []float64{math.NaN(), 0.8, 0.9}, 0.3, []int{2, 1}},
		{"tie to lower index", b, []float64{0.5, 0.5, 0.5}, 0.3, []int{0, 2}},
		{"NaN box", [][4]float64{{0, 0, 10, 10}, {math.NaN(), 0, 10, 10}, {0, 0, 10, 10}}, []float64{3, 2, 1}, 0.5, []int{0, 1}},
		{"Inf box", [][4]float64{{0, 0, 10, 10}, {math.Inf(-1), 0, math.Inf(1), 10}, {0, 0, 10, 10}}, []float64{3, 2, 1}, 0.5, []int{0, 1}},
		{"negative thresh", b, []float64{0.9, 0.8, 0.1}, -0.1, []int{0}},
		{"empty", nil, nil, 0.5, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NMS(c.boxes, c.scores, c.thresh, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("kept %v, want %v", got, c.want)
			}
		})
	}
	if _, err := NMS(b, []float64{1}, 0.5, 0, false); err == nil {
		t.Fatal("length mismatch accepted")
	}
	if _, err := NMS(b, []float64{1, 2, 3}, math.NaN(), 0, false); err == nil {
		t.Fatal("NaN thresh accepted")
	}
	if _, err := BatchedNMS(b, []float64{1, 2, 3}, []int{0}, 0.5, 0, false); err == nil {
		t.Fatal("BatchedNMS length mismatch accepted")
	}
}

// TestBatchedNMS: boxes of different groups never suppress each other, and the result is the
// union of per-group NMS ordered by score (ties by index), cut at maxKeep.
func TestBatchedNMS(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for trial := 0; trial < 100; trial++ {
		n := 1 + rng.Intn(300)
		boxes, scores := randomBoxes(rng, n, 200, 5, 60)
		groups := make([]int, n)
		ng := 1 + rng.Intn(4)
		for i := range groups {
			groups[i] = rng.Intn(ng) * 7 // arbitrary group labels
		}
		maxKeep := []int{0, 10}[trial%2]
		got, err := BatchedNMS(boxes, scores, groups, 0.5, maxKeep, trial%3 == 0)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for g := 0; g < ng; g++ {
			var idx []int
			for i := range groups {
				if groups[i] == 7*g {
					idx = append(idx, i)
				}
			}
			sub, subScores := make([][4]float64, len(idx)), make([]float64, len(idx))
			for k, i := range idx {
				sub[k], subScores[k] = boxes[i], scores[i]
			}
			kept, err := NMS(sub, subScores, 0.5, 0, trial%3 == 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range kept {
				want = append(want, idx[k])
			}
		}
		slices.SortFunc(want, func(a, b int) int { return higherFirst(scores, a, b) })
		if maxKeep > 0 && len(want) > maxKeep {
			want = want[:maxKeep]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: %v, want %v", trial, got, want)
		}
	}
}

// TestClipAndRemoveSmall: hand-derived clips to [0, W(-1)] x [0, H(-1)] and size tests with and
// without +1.
func TestClipAndRemoveSmall(t *testing.T) {
	b := [4]float64{-5, 3, 120, 90}
	if got, want := Clip(b, 80, 100, false), [4]float64{0, 3, 100, 80}; got != want {
		t.Fatalf("torchvision clip %v, want %v", got, want)
	}
	if got, want := Clip(b, 80, 100, true), [4]float64{0, 3, 99, 79}; got != want {
		t.Fatalf("py-faster-rcnn clip %v, want %v", got, want)
	}
	boxes := [][4]float64{{0, 0, 15, 15}, {0, 0, 16, 16}, {0, 0, 16, 14}, {math.NaN(), 0, 30, 30}}
	if got := RemoveSmall(boxes, 16, false); !slices.Equal(got, []int{1}) {
		t.Fatalf("no +1: %v, want [1]", got)
	}
	if got := RemoveSmall(boxes, 16, true); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("+1: %v, want [0 1] (15+1 = 16 >= 16; 14+1 < 16)", got)
	}
}

func BenchmarkNMS12000(b *testing.B) {
	// the issue's scene: 12,000 random boxes, sides 16-316 in 1000x1000, IoU 0.7
	boxes, scores := randomBoxes(rand.New(rand.NewSource(3)), 12000, 1000, 16, 300)
	b.Run("windowed", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := NMS(boxes, scores, 0.7, 0, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("quadratic-baseline", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			suppressAll(boxes, byScore(scores, nil), 0.7, 0, false)
		}
	})
	b.Run("floor-sort-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			byScore(scores, nil)
		}
	})
}

func ExampleNMS() {
	boxes := [][4]float64{{0, 0, 10, 10}, {1, 0, 11, 10}, {20, 20, 30, 30}}
	scores := []float64{0.9, 0.8, 0.7}
	keep, err := NMS(boxes, scores, 0.5, 0, false) // boxes 0 and 1: IoU 90/110 = 0.82 > 0.5
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(keep)
	// Output: [0 2]
}

func ExampleBatchedNMS() {
	boxes := [][4]float64{{0, 0, 10, 10}, {1, 0, 11, 10}, {20, 20, 30, 30}}
	scores := []float64{0.9, 0.8, 0.7}
	keep, err := BatchedNMS(boxes, scores, []int{0, 1, 0}, 0.5, 0, false) // 0 and 1 in different groups
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(keep)
	// Output: [0 1 2]
}

func ExampleIoU() {
	// 10x10 boxes shifted by 5: intersection 50, union 150
	fmt.Printf("%.4f %.4f\n", IoU([4]float64{0, 0, 10, 10}, [4]float64{5, 0, 15, 10}, false),
		IoU([4]float64{0, 0, 9, 9}, [4]float64{5, 0, 14, 9}, true)) // the same pixels with +1
	// Output: 0.3333 0.3333
}

func ExampleCoder() {
	c := PyFasterRCNNCoder()
	// rpn-reference.md: anchor [-84,-40,99,55], gt [10,20,110,80] -> [0.2853261, 0.4427083, -0.5998152, -0.4534743]
	d := c.Encode([4]float64{-84, -40, 99, 55}, [4]float64{10, 20, 110, 80})
	fmt.Printf("%.7f\n", d)
	fmt.Printf("%.1f\n", c.Decode([4]float64{-84, -40, 99, 55}, d)) // gt + (0, 0, 1, 1)
	// Output:
	// [0.2853261 0.4427083 -0.5998152 -0.4534743]
	// [10.0 20.0 111.0 81.0]
}

func ExampleClip() {
	fmt.Println(Clip([4]float64{-5, 3, 120, 90}, 80, 100, false), Clip([4]float64{-5, 3, 120, 90}, 80, 100, true))
	// Output: [0 3 100 80] [0 3 99 79]
}

func ExampleRemoveSmall() {
	boxes := [][4]float64{{0, 0, 15, 15}, {0, 0, 16, 16}}
	fmt.Println(RemoveSmall(boxes, 16, false), RemoveSmall(boxes, 16, true))
	// Output: [1] [0 1]
}
