package rpn

import (
	"github.com/detlab/smoothl1/box"
	"math"
	"math/rand"
	"runtime"
	"strings"
	"testing"
)

// bigScene is the benchmark workload: a 1024x1024 image, a 64x64 feature map with stride 16 and
// the nine py-faster-rcnn anchors, and nGT random gt boxes of 30..300 pixels.
func bigScene(rng *rand.Rand, batch, nGT int) (*Anchors, []Image) {
	an, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{8, 16, 32}), 64, 64, 16)
	if err != nil {
		panic(err)
	}
	images := make([]Image, batch)
	for b := range images {
		images[b] = Image{Height: 1024, Width: 1024, Boxes: randomBoxes(rng, nGT, 1024, 30, 300)}
	}
	return an, images
}

func randomBoxes(rng *rand.Rand, n int, size, lo, hi float64) [][4]float64 {
	out := make([][4]float64, n)
	for i := range out {
		w, h := lo+rng.Float64()*(hi-lo), lo+rng.Float64()*(hi-lo)
		x, y := rng.Float64()*(size-w-1), rng.Float64()*(size-h-1)
		out[i] = [4]float64{math.Round(x), math.Round(y), math.Round(x + w), math.Round(y + h)}
	}
	return out
}

// TestAssignInvariantsWithSampling: where sampling triggers (1024x1024, 36,864 anchors, 20 gt),
// each image has labels in {-1, 0, 1}, at most 128 positives, at most 256 sampled, exactly 256
// when enough negatives exist, every positive kept inside the image with IoU >= 0.7 or the best
// IoU (> 0) of some gt, every negative with best IoU < 0.3; weights match the labels.
func TestAssignInvariantsWithSampling(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
		an, images := bigScene(rng, 2, 20)
		tg, err := AssignTargets(cfg, an, images)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, cfg, an, images, tg, true)
	}
}

// checkInvariants checks the labelling rules and budgets of tg against a brute-force IoU
// computation; with full, also that the sample is exactly AnchorsPerImage (enough negatives exist).
func checkInvariants(t *testing.T, cfg Config, an *Anchors, images []Image, tg *Targets, full bool) {
	t.Helper()
	A, H, W := an.A, an.H, an.W
	plane := A * H * W
	for b, im := range images {
		gtBest := make([]float64, len(im.Boxes))
		for n, anchor := range an.Boxes {
			if cfg.FilterBorder && !(anchor[0] >= 0 && anchor[1] >= 0 && anchor[2] < im.Width && anchor[3] < im.Height) {
				continue
			}
			for j, g := range im.Boxes {
				gtBest[j] = math.Max(gtBest[j], box.IoU(anchor, g, cfg.Coder.PlusOne))
			}
			_ = n
		}
		pos, neg := 0, 0
		for n, anchor := range an.Boxes {
			a, y, x := n%A, (n/A)/W, (n/A)%W
			li := b*plane + (a*H+y)*W + x
			l := tg.Labels[li]
			best, isGtBest, argmax := 0.0, false, 0
			for j, g := range im.Boxes {
				v := box.IoU(anchor, g, cfg.Coder.PlusOne)
				if v > best { // the first gt wins ties
					best, argmax = v, j
				}
				if v == gtBest[j] && v > 0 {
					isGtBest = true
				}
			}
			inside := !cfg.FilterBorder || (anchor[0] >= 0 && anchor[1] >= 0 && anchor[2] < im.Width && anchor[3] < im.Height)
			switch l {
			case 1:
				pos++
				if !inside || !(best >= cfg.PositiveIoU || isGtBest) {
					t.Fatalf("image %d anchor %d: positive with best IoU %v, gt-best %t, inside %t", b, n, best, isGtBest, inside)
				}
				// a positive's regression target encodes its best gt (torchvision's all_matches,
				// py-faster-rcnn's argmax), whatever made it positive
				want := cfg.Coder.Encode(anchor, im.Boxes[argmax])
				for k := 0; k < 4; k++ {
					if got := tg.BBoxTargets[b*4*plane+((4*a+k)*H+y)*W+x]; math.Float64bits(got) != math.Float64bits(want[k]) {
						t.Fatalf("image %d anchor %d: target %d is %v, want %v (gt %d, IoU %v)", b, n, k, got, want[k], argmax, best)
					}
				}
			case 0:
				neg++
				if !inside || (len(im.Boxes) > 0 && best >= cfg.NegativeIoU) {
					t.Fatalf("image %d anchor %d: negative with best IoU %v, inside %t", b, n, best, inside)
				}
			case -1:
			default:
				t.Fatalf("image %d anchor %d: label %v", b, n, l)
			}
			wantCls := 0.0
			if l >= 0 {
				wantCls = tg.ClsWeights[li]
				if wantCls <= 0 {
					t.Fatalf("image %d anchor %d: sampled with classification weight %v", b, n, wantCls)
				}
			} else if tg.ClsWeights[li] != 0 {
				t.Fatalf("image %d anchor %d: ignored with classification weight %v", b, n, tg.ClsWeights[li])
			}
			for k := 0; k < 4; k++ {
				ci := b*4*plane + ((4*a+k)*H+y)*W + x
				if (tg.InsideWeights[ci] == 1) != (l == 1) {
					t.Fatalf("image %d anchor %d: inside weight %v with label %v", b, n, tg.InsideWeights[ci], l)
				}
				if (tg.OutsideWeights[ci] > 0) != (l >= 0) {
					t.Fatalf("image %d anchor %d: outside weight %v with label %v", b, n, tg.OutsideWeights[ci], l)
				}
			}
		}
		if pos != tg.NumPos[b] || neg != tg.NumNeg[b] {
			t.Fatalf("image %d: counted %d/%d, NumPos/NumNeg %d/%d", b, pos, neg, tg.NumPos[b], tg.NumNeg[b])
		}
		maxPos := int(cfg.FgFraction * float64(cfg.AnchorsPerImage))
		if pos > maxPos || pos+neg > cfg.AnchorsPerImage {
			t.Fatalf("image %d: %d positives, %d negatives: over the %d/%d budget", b, pos, neg, maxPos, cfg.AnchorsPerImage)
		}
		if full && pos+neg != cfg.AnchorsPerImage {
			t.Fatalf("image %d: %d sampled, want %d (enough negatives exist)", b, pos+neg, cfg.AnchorsPerImage)
		}
	}
}

// TestAssignReproducible: the same seed gives identical targets, a different seed different
// negatives; GOMAXPROCS does not matter.
func TestAssignReproducible(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	an, images := bigScene(rng, 3, 20)
	cfg := DefaultConfig()
	cfg.Seed = 42
	a, err := AssignTargets(cfg, an, images)
	if err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1)
	b, err := AssignTargets(cfg, an, images)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			t.Fatalf("label %d differs between runs: %v vs %v", i, a.Labels[i], b.Labels[i])
		}
	}
	cfg.Seed = 43
	c, err := AssignTargets(cfg, an, images)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range a.Labels {
		if a.Labels[i] != c.Labels[i] {
			same = false
			break
		}
	}
	if same {
		t.Fatal("seeds 42 and 43 sampled the same anchors")
	}
}

// tinyAnchors: a 1x3 feature map with one 10x10 anchor per cell, stride 10, no +1:
// anchors [0,0,10,10], [10,0,20,10], [20,0,30,10].
func tinyAnchors(t *testing.T) *Anchors {
	an, err := NewAnchors([][4]float64{{0, 0, 10, 10}}, 1, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	return an
}

func tinyConfig() Config {
	cfg := TorchvisionConfig()
	return cfg
}

// TestAssignHandDerived covers the labelling rules on hand-computed IoUs (no +1):
//   - gt [0,0,10,10] has IoU 1 with anchor 0: positive (>= 0.7);
//   - gt [12,0,24,10]: IoU with anchor 1 = 8*10/(100+120-80) = 80/140 = 0.571, with anchor 2 =
//     4*10/(100+120-40) = 40/180 = 0.222: anchor 1 is the gt's best (positive though < 0.7);
//     anchor 2's best IoU 0.222 < 0.3: negative;
//   - a gt far away [100,100,110,110] overlaps nothing: best IoU 0, it makes no anchor positive
//     (py-faster-rcnn would make all zero-IoU anchors positive: rbgirshick/py-faster-rcnn#940).
func TestAssignHandDerived(t *testing.T) {
	an := tinyAnchors(t)
	im := Image{Height: 10, Width: 30, Boxes: [][4]float64{{0, 0, 10, 10}, {12, 0, 24, 10}, {100, 100, 110, 110}}}
	tg, err := AssignTargets(tinyConfig(), an, []Image{im})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "labels", tg.Labels, []float64{1, 1, 0}, 0)
	// Sampled S = 3: weights 1/3 (PerBatch).
	assertClose(t, "cls weights", tg.ClsWeights, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0)
	// anchor 1 [10,0,20,10] → gt [12,0,24,10]: dx = (18-15)/10 = 0.3, dy = 0, dw = ln(12/10), dh = 0
	// channels k = 0..3 of anchor 1 at x = 1: index k*3 + 1
	got := []float64{tg.BBoxTargets[1], tg.BBoxTargets[4], tg.BBoxTargets[7], tg.BBoxTargets[10]}
	assertClose(t, "anchor 1 targets", got, []float64{0.3, 0, math.Log(1.2), 0}, 1e-15)

	// Only the far gt: nothing overlaps, every anchor negative.
	im.Boxes = [][4]float64{{100, 100, 110, 110}}
	tg, err = AssignTargets(tinyConfig(), an, []Image{im})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "far gt labels", tg.Labels, []float64{0, 0, 0}, 0)

	// Clobber: gt [0,0,10,2] has IoU 20/100 = 0.2 with anchor 0 (its best) → positive by the
	// best-match rule, but 0.2 < 0.3 so with ClobberPositives it ends negative.
	im.Boxes = [][4]float64{{0, 0, 10, 2}}
	cfg := tinyConfig()
	tg, err = AssignTargets(cfg, an, []Image{im})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "no clobber", tg.Labels, []float64{1, 0, 0}, 0)
	cfg.ClobberPositives = true
	tg, err = AssignTargets(cfg, an, []Image{im})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "clobber", tg.Labels, []float64{0, 0, 0}, 0)
}

// TestAssignTies: gt [5,0,15,10] overlaps anchors 0 and 1 equally (IoU 50/150 = 1/3 each):
// both are its best anchors, both positive.
func TestAssignTies(t *testing.T) {
	im := Image{Height: 10, Width: 30, Boxes: [][4]float64{{5, 0, 15, 10}}}
	tg, err := AssignTargets(tinyConfig(), tinyAnchors(t), []Image{im})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "labels", tg.Labels, []float64{1, 1, 0}, 0)
}

// TestAssignNoGT: an image without gt boxes has every kept anchor negative (then sampled).
func TestAssignNoGT(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	an, images := bigScene(rng, 2, 5)
	images[1].Boxes = nil
	for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
		tg, err := AssignTargets(cfg, an, images)
		if err != nil {
			t.Fatal(err)
		}
		if tg.NumPos[1] != 0 || tg.NumNeg[1] != cfg.AnchorsPerImage {
			t.Fatalf("%v: empty image has %d positives and %d negatives, want 0 and %d", cfg.Objectness, tg.NumPos[1], tg.NumNeg[1], cfg.AnchorsPerImage)
		}
		checkInvariants(t, cfg, an, images, tg, true)
	}
}

// TestAssignRejectsBadBoxes: degenerate or non-finite gt boxes are errors naming image and box.
func TestAssignRejectsBadBoxes(t *testing.T) {
	an := tinyAnchors(t)
	for _, c := range []struct {
		name string
		cfg  Config
		box  [4]float64
		want string
	}{
		{"x2 < x1", DefaultConfig(), [4]float64{5, 0, 4, 5}, "x2 < x1"},
		{"y2 < y1", DefaultConfig(), [4]float64{0, 5, 4, 4}, "y2 < y1"},
		{"NaN", DefaultConfig(), [4]float64{0, math.NaN(), 4, 4}, "non-finite"},
		{"Inf", TorchvisionConfig(), [4]float64{0, 0, math.Inf(1), 4}, "non-finite"},
		{"zero width without +1", TorchvisionConfig(), [4]float64{3, 0, 3, 4}, "zero width"},
	} {
		images := []Image{{Height: 10, Width: 30, Boxes: [][4]float64{{0, 0, 10, 10}}}, {Height: 10, Width: 30, Boxes: [][4]float64{{0, 0, 5, 5}, c.box}}}
		_, err := AssignTargets(c.cfg, an, images)
		if err == nil || !strings.Contains(err.Error(), "image 1, gt box 1") || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: error %v, want one naming image 1, gt box 1 and %q", c.name, err, c.want)
		}
	}
	// zero width is a 1-pixel box with the +1 convention: accepted
	if _, err := AssignTargets(DefaultConfig(), an, []Image{{Height: 10, Width: 30, Boxes: [][4]float64{{3, 0, 3, 4}}}}); err != nil {
		t.Fatalf("+1 convention rejected a 1-pixel-wide box: %v", err)
	}
}

// TestAssignMemory500GT: 36,864 anchors x 500 gt without an anchors x gt matrix. A float64
// matrix would be 36,864*500*8 = 147 MB; the assignment allocates its outputs (about 6.2 MB for
// one image: 5 planes of 36,864 or 147,456 float64s) plus O(anchors + gt) scratch.
func TestAssignMemory500GT(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rng := rand.New(rand.NewSource(14))
	an, images := bigScene(rng, 1, 500)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := AssignTargets(DefaultConfig(), an, images); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	matrix := uint64(len(an.Boxes) * 500 * 8)
	t.Logf("allocated %.1f MB; an anchors x gt float64 matrix is %.1f MB", float64(allocated)/1e6, float64(matrix)/1e6)
	if allocated > matrix/10 {
		t.Fatalf("allocated %d bytes, more than a tenth of the %d-byte IoU matrix", allocated, matrix)
	}
}

// TestWindowedEqualsBruteForce: anchors made by NewAnchors visit only the grid cells that can
// overlap each gt; the same boxes without the grid (every anchor visited) give identical
// targets, for both configs, on the 1024x1024 scene with 20 and 500 gt boxes.
func TestWindowedEqualsBruteForce(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	for _, nGT := range []int{20, 500} {
		an, images := bigScene(rng, 1, nGT)
		plain := &Anchors{Boxes: an.Boxes, A: an.A, H: an.H, W: an.W}
		if !an.onGrid() || plain.onGrid() {
			t.Fatal("grid detection wrong")
		}
		for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
			a, err := AssignTargets(cfg, an, images)
			if err != nil {
				t.Fatal(err)
			}
			b, err := AssignTargets(cfg, plain, images)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][2][]float64{{a.Labels, b.Labels}, {a.BBoxTargets, b.BBoxTargets}, {a.OutsideWeights, b.OutsideWeights}} {
				for i := range p[0] {
					if p[0][i] != p[1][i] {
						t.Fatalf("%d gt, %v: windowed %v, brute force %v at %d", nGT, cfg.Objectness, p[0][i], p[1][i], i)
					}
				}
			}
		}
	}
}

// TestPositiveWeight: with RPN_POSITIVE_WEIGHT p = 0.25 the outside weights are p/#pos on
// positives and (1-p)/#neg on negatives. The scene of ExampleLoss (1 positive, 52 negatives):
// 0.25/1 = 0.25 and 0.75/52; the classification weights stay 1/N_v = 1/53.
func TestPositiveWeight(t *testing.T) {
	an, err := NewAnchors(GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2}), 4, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.PositiveWeight = 0.25
	tg, err := AssignTargets(cfg, an, []Image{{Height: 64, Width: 80, Boxes: [][4]float64{{20, 10, 50, 40}}}})
	if err != nil {
		t.Fatal(err)
	}
	if tg.NumPos[0] != 1 || tg.NumNeg[0] != 52 {
		t.Fatalf("%d positives, %d negatives; want 1 and 52", tg.NumPos[0], tg.NumNeg[0])
	}
	plane := an.A * an.H * an.W
	HW := an.H * an.W
	for n := 0; n < plane; n++ {
		a, yx := n/HW, n%HW
		l := tg.Labels[n]
		want := map[float64]float64{1: 0.25, 0: 0.75 / 52, -1: 0}[l]
		for k := 0; k < 4; k++ {
			if got := tg.OutsideWeights[(4*a+k)*HW+yx]; got != want {
				t.Fatalf("anchor plane index %d (label %v): outside weight %v, want %v", n, l, got, want)
			}
		}
		wantCls := 0.0
		if l >= 0 {
			wantCls = 1.0 / 53
		}
		if tg.ClsWeights[n] != wantCls {
			t.Fatalf("anchor plane index %d: classification weight %v, want %v", n, tg.ClsWeights[n], wantCls)
		}
	}
}

// TestAssignPrunedLowQualityMatch: an anchor made positive as a small gt's best (IoU below the
// thresholds) encodes its own best gt, even when the matcher skipped that IoU. Hand-derived
// scenes (TorchvisionConfig, no +1): 16x16 and 64x64 cell anchors, stride 16; anchor i =
// [40, 40, 56, 56] is the best of the small gt [46, 46, 50, 50] (IoU 16/256 = 0.0625, the only
// anchor that overlaps it more).
//   - "larger IoU": gt 1 = [20, 20, 80, 80] overlaps anchor i with IoU 256/3600 = 0.0711; its
//     best is the 64x64 anchor [16, 16, 80, 80] (IoU 3600/4096 = 0.879), so the 16x16 shape's
//     bound for it (0.0711) is below 0.3 and 0.879 and its IoUs are skipped. Anchor i must encode
//     gt 1 (as torchvision's all_matches).
//   - "equal IoU, earlier gt": gt 0 = [16, 16, 80, 80] has IoU 256/4096 = 0.0625 with anchor i,
//     bit-equal to the small gt's (now gt 1), and its best is the 64x64 anchor equal to it (IoU
//     1), so it skips the 16x16 shape. The first gt wins equal IoUs: anchor i must encode gt 0.
func TestAssignPrunedLowQualityMatch(t *testing.T) {
	an, err := NewAnchors([][4]float64{{-8, -8, 8, 8}, {-32, -32, 32, 32}}, 8, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TorchvisionConfig()
	const y, x, a = 3, 3, 0 // anchor i: cell (3, 3), shape 0: [-8, -8, 8, 8] + 48
	anchor := [4]float64{40, 40, 56, 56}
	if an.Boxes[(y*an.W+x)*an.A+a] != anchor {
		t.Fatalf("anchor i is %v", an.Boxes[(y*an.W+x)*an.A+a])
	}
	for _, tc := range []struct {
		name string
		gts  [][4]float64
		want int // the gt anchor i must encode
	}{
		{"larger IoU", [][4]float64{{46, 46, 50, 50}, {20, 20, 80, 80}}, 1},
		{"equal IoU, earlier gt", [][4]float64{{16, 16, 80, 80}, {46, 46, 50, 50}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images := []Image{{Height: 128, Width: 128, Boxes: tc.gts}}
			tg, err := AssignTargets(cfg, an, images)
			if err != nil {
				t.Fatal(err)
			}
			hw := an.H * an.W
			if l := tg.Labels[a*hw+y*an.W+x]; l != 1 {
				t.Fatalf("anchor i has label %v, want 1 (the small gt's best)", l)
			}
			want := cfg.Coder.Encode(anchor, tc.gts[tc.want])
			for k := 0; k < 4; k++ {
				if got := tg.BBoxTargets[(4*a+k)*hw+y*an.W+x]; got != want[k] {
					t.Fatalf("target %d is %v, want %v (gt %d's encoding)", k, got, want[k], tc.want)
				}
			}
			checkInvariants(t, cfg, an, images, tg, false)
		})
	}
}
