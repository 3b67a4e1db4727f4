package box

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// TestMatcherHandDerived (no +1, IoUs by hand): box 0 = gt 0 (IoU 1, positive); box 1
// [14,0,24,10] against gt 1 [12,0,24,10]: 100/120 = 0.833 (positive); box 2 overlaps nothing
// (negative, match 0); box 3 [5,0,15,10]: 50/150 = 0.333 with gt 0 and 30/190 = 0.158 with gt 1,
// between the thresholds (-1) - negative with Low 0.4, and gt 0's best kept box (positive, a
// low-quality match) once box 0 is not kept, unless ClobberPositives applies the negative rule
// last. gt 2 [100,100,110,110] overlaps nothing and makes no box positive.
func TestMatcherHandDerived(t *testing.T) {
	boxes := [][4]float64{{0, 0, 10, 10}, {14, 0, 24, 10}, {30, 0, 40, 10}, {5, 0, 15, 10}}
	gts := [][4]float64{{0, 0, 10, 10}, {12, 0, 24, 10}, {100, 100, 110, 110}}
	for _, c := range []struct {
		name    string
		m       Matcher
		kept    []bool
		labels  []int8
		matched []int32
	}{
		{"torchvision", Matcher{High: 0.7, Low: 0.3, AllowLowQuality: true}, nil, []int8{1, 1, 0, -1}, []int32{0, 1, 0, 0}},
		{"no low-quality", Matcher{High: 0.7, Low: 0.3}, nil, []int8{1, 1, 0, -1}, []int32{0, 1, 0, 0}},
		{"low 0.4", Matcher{High: 0.7, Low: 0.4, AllowLowQuality: true}, nil, []int8{1, 1, 0, 0}, []int32{0, 1, 0, 0}},
		{"box 0 not kept", Matcher{High: 0.7, Low: 0.3, AllowLowQuality: true}, []bool{false, true, true, true}, []int8{-1, 1, 0, 1}, []int32{0, 1, 0, 0}},
		{"box 0 not kept, clobber, low 0.4", Matcher{High: 0.7, Low: 0.4, AllowLowQuality: true, ClobberPositives: true}, []bool{false, true, true, true}, []int8{-1, 1, 0, 0}, []int32{0, 1, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out Matches
			c.m.Match(boxes, nil, c.kept, gts, nil, &out)
			if !slices.Equal(out.Labels, c.labels) || !slices.Equal(out.Matched, c.matched) {
				t.Fatalf("labels %v matched %v, want %v %v", out.Labels, out.Matched, c.labels, c.matched)
			}
		})
	}
	var out Matches
	Matcher{High: 0.7, Low: 0.3}.Match(boxes, nil, []bool{true, false, true, true}, nil, nil, &out)
	if !slices.Equal(out.Labels, []int8{0, -1, 0, 0}) {
		t.Fatalf("no gt: %v, want every kept box negative", out.Labels)
	}
}

// TestMatcherCandidates: a candidates function that returns a superset of the overlapping boxes
// (here every box, as several runs of steps 1 and 2) gives exactly the result of visiting all.
func TestMatcherCandidates(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	boxes, _ := randomBoxes(rng, 200, 100, 4, 30)
	gts, _ := randomBoxes(rng, 6, 100, 10, 30)
	m := Matcher{High: 0.6, Low: 0.2, AllowLowQuality: true, PlusOne: true}
	var all, runs Matches
	m.Match(boxes, nil, nil, gts, nil, &all)
	m.Match(boxes, nil, nil, gts, func(_ [4]float64, r []Run) []Run {
		return append(r, Run{First: 0, Count: 100, Step: 2}, Run{First: 1, Count: 100, Step: 2})
	}, &runs)
	if !slices.Equal(all.Labels, runs.Labels) || !slices.Equal(all.Matched, runs.Matched) {
		t.Fatal("runs differ from visiting every box")
	}
}

// TestMatcherSameYRuns: on a grid of boxes (rows of 12 boxes sharing their y coordinates, with
// zeros of both signs among the coordinates), runs marked SameY, one per row and step 1 or 2,
// give exactly the labels, matches and best IoUs of visiting every box, with and without the
// +1 convention, among them gts that miss whole rows.
func TestMatcherSameYRuns(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	const rows, cols = 10, 12
	var boxes [][4]float64
	for y := 0; y < rows; y++ {
		y0, h := float64(y*10-20), 5+rng.Float64()*30
		for x := 0; x < cols; x++ {
			x0 := float64(x*9) - 10 + rng.Float64()*3
			b := [4]float64{x0, y0, x0 + 4 + rng.Float64()*25, y0 + h}
			if y0 == 0 && x%2 == 1 {
				b[1] = math.Copysign(0, -1) // -0: equal to the row's +0
			}
			boxes = append(boxes, b)
		}
	}
	gts, _ := randomBoxes(rng, 8, 100, 5, 40)
	for _, plusOne := range []bool{false, true} {
		m := Matcher{High: 0.5, Low: 0.2, AllowLowQuality: true, PlusOne: plusOne}
		var all, runs Matches
		m.Match(boxes, nil, nil, gts, nil, &all)
		m.Match(boxes, nil, nil, gts, func(_ [4]float64, r []Run) []Run {
			for y := 0; y < rows; y++ {
				r = append(r, Run{First: y * cols, Count: cols / 2, Step: 2, SameY: true},
					Run{First: y*cols + 1, Count: cols / 2, Step: 2, SameY: true})
			}
			return r
		}, &runs)
		if !slices.Equal(all.Labels, runs.Labels) || !slices.Equal(all.Matched, runs.Matched) ||
			!slices.Equal(all.MaxIoU, runs.MaxIoU) {
			t.Fatalf("plusOne %v: SameY runs differ from visiting every box", plusOne)
		}
	}
}

// TestSample: at most int(0.5*256) = 128 positives and 256 - positives negatives are kept, the
// rest turned to -1; with few positives the negatives fill the budget; a seed reproduces the
// choice.
func TestSample(t *testing.T) {
	mk := func(pos, neg int) []int8 {
		l := make([]int8, 0, pos+neg+10)
		for i := 0; i < pos; i++ {
			l = append(l, 1)
		}
		for i := 0; i < neg; i++ {
			l = append(l, 0)
		}
		for i := 0; i < 10; i++ {
			l = append(l, -1)
		}
		return l
	}
	count := func(l []int8, v int8) (n int) {
		for _, x := range l {
			if x == v {
				n++
			}
		}
		return n
	}
	for _, c := range []struct{ pos, neg, wantPos, wantNeg int }{{300, 1000, 128, 128}, {10, 1000, 10, 246}, {10, 20, 10, 20}, {0, 0, 0, 0}} {
		t.Run(fmt.Sprint(c.pos, "/", c.neg), func(t *testing.T) {
			l := mk(c.pos, c.neg)
			pos, neg, _ := Sample(l, 256, 0.5, rand.New(rand.NewSource(1)), nil)
			if pos != c.wantPos || neg != c.wantNeg || count(l, 1) != pos || count(l, 0) != neg {
				t.Fatalf("kept %d/%d (counted %d/%d), want %d/%d", pos, neg, count(l, 1), count(l, 0), c.wantPos, c.wantNeg)
			}
			again := mk(c.pos, c.neg)
			Sample(again, 256, 0.5, rand.New(rand.NewSource(1)), nil)
			if !slices.Equal(l, again) {
				t.Fatal("same seed, different sample")
			}
		})
	}
}

func ExampleMatcher() {
	// torchvision's RPN matcher; box 3 (IoU 1/3 with gt 0) lies between the thresholds
	m := Matcher{High: 0.7, Low: 0.3, AllowLowQuality: true}
	var out Matches
	m.Match([][4]float64{{0, 0, 10, 10}, {14, 0, 24, 10}, {30, 0, 40, 10}, {5, 0, 15, 10}}, nil, nil,
		[][4]float64{{0, 0, 10, 10}, {12, 0, 24, 10}}, nil, &out)
	fmt.Println(out.Labels, out.Matched)
	// Output: [1 1 0 -1] [0 1 0 0]
}

func ExampleSample() {
	labels := []int8{1, 1, 1, 0, 0, 0, 0, -1}
	pos, neg, _ := Sample(labels, 4, 0.5, rand.New(rand.NewSource(1)), nil) // at most 2 positives, 4 in all
	fmt.Println(pos, neg)
	// Output: 2 2
}

// TestSampleUniform: whichever set the shuffle draws (the kept entries when few are kept, the
// dropped ones when few are dropped), each entry is kept with probability keep/n. Over 40,000
// draws the count of each of n = 10 entries is binomial(40000, keep/10): the bound is 6 standard
// deviations (hand-derived: sqrt(40000 * p * (1 - p)) <= 100), far from any seed's luck and far
// below the bias a wrong shuffle gives (an off-by-one in the swap range keeps entry 0 always or
// never).
func TestSampleUniform(t *testing.T) {
	const n, trials = 10, 40000
	for _, keep := range []int{2, 5, 8} { // draws the kept, either, the dropped
		t.Run(fmt.Sprint("keep ", keep), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(keep)))
			var kept [n]int
			labels := make([]int8, n)
			var scratch []int
			for range trials {
				for i := range labels {
					labels[i] = 0
				}
				var got int
				got, scratch = disableExcess(labels, 0, keep, rng, scratch)
				if got != keep {
					t.Fatalf("kept %d, want %d", got, keep)
				}
				for i, l := range labels {
					if l == 0 {
						kept[i]++
					}
				}
			}
			p := float64(keep) / n
			sd := math.Sqrt(trials * p * (1 - p))
			for i, c := range kept {
				if math.Abs(float64(c)-trials*p) > 6*sd {
					t.Fatalf("entry %d kept %d times in %d, want %.0f ± %.0f", i, c, trials, trials*p, 6*sd)
				}
			}
		})
	}
}
