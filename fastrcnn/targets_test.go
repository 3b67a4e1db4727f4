package fastrcnn

import (
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/box"
)

// randomImage makes numGT gt boxes with labels 1..k in a size x size image and numProps
// proposals, most of them jittered gt copies (foreground and background band), a third random.
func randomImage(rng *rand.Rand, numGT, k, numProps int, size float64) Image {
	var im Image
	for j := 0; j < numGT; j++ {
		w, h := 20+rng.Float64()*60, 20+rng.Float64()*60
		x, y := rng.Float64()*(size-w), rng.Float64()*(size-h)
		im.Boxes = append(im.Boxes, [4]float64{x, y, x + w, y + h})
		im.Labels = append(im.Labels, 1+rng.Intn(k))
	}
	for i := 0; i < numProps; i++ {
		if numGT > 0 && i%3 != 2 {
			g := im.Boxes[i%numGT]
			w, h := g[2]-g[0], g[3]-g[1]
			s := 0.05 + 0.55*rng.Float64()
			dx, dy := (2*rng.Float64()-1)*s*w, (2*rng.Float64()-1)*s*h
			dw, dh := (2*rng.Float64()-1)*s*w, (2*rng.Float64()-1)*s*h
			im.Proposals = append(im.Proposals, [4]float64{g[0] + dx, g[1] + dy, g[2] + dx + dw, g[3] + dy + dh})
			continue
		}
		w, h := 5+rng.Float64()*50, 5+rng.Float64()*50
		x, y := rng.Float64()*(size-w), rng.Float64()*(size-h)
		im.Proposals = append(im.Proposals, [4]float64{x, y, x + w, y + h})
	}
	return im
}

// checkInvariants verifies what SampleTargets promises of every row, whatever was drawn: the
// returned error names the first violation.
func checkInvariants(cfg Config, images []Image, tg *Targets) string {
	C := cfg.Columns()
	R := tg.Rows()
	if len(tg.RoIs) != 5*R || len(tg.BBoxTargets) != C*R || len(tg.InsideWeights) != C*R || len(tg.OutsideWeights) != C*R ||
		len(tg.Source) != R || len(tg.MatchedGT) != R || len(tg.IoU) != R {
		return "array lengths disagree with the row count"
	}
	row := 0
	for b, im := range images {
		n := tg.NumFg[b] + tg.NumBg[b]
		if tg.NumFg[b] > cfg.maxFg() || n > cfg.BatchSize {
			return "image over budget"
		}
		cand := append(append([][4]float64(nil), im.Proposals...), im.Boxes...)
		seen := map[int]bool{}
		fg, bg := 0, 0
		prevSource, prevFg := -1, true
		for ; n > 0; n, row = n-1, row+1 {
			if int(tg.RoIs[5*row]) != b {
				return "batch index"
			}
			s := tg.Source[row]
			if s < 0 || s >= len(cand) || seen[s] {
				return "source out of range or repeated"
			}
			seen[s] = true
			if [4]float64(tg.RoIs[5*row+1:5*row+5]) != cand[s] {
				return "roi is not its source candidate"
			}
			l := tg.Labels[row]
			isFg := l > 0
			switch cfg.Order {
			case ProposalOrder:
				if s <= prevSource {
					return "rows not in proposal order"
				}
			case FgFirst:
				if isFg && !prevFg {
					return "foreground row after background"
				}
				if isFg == prevFg && s <= prevSource {
					return "rows of one part not in proposal order"
				}
			}
			prevSource, prevFg = s, isFg
			// the best IoU, recomputed
			best, arg := 0.0, -1
			for j, g := range im.Boxes {
				if v := box.IoU(cand[s], g, cfg.Coder.PlusOne); arg < 0 || v > best {
					best, arg = v, j
				}
			}
			if tg.IoU[row] != best || tg.MatchedGT[row] != arg {
				return "IoU or matched gt is not the best"
			}
			if isFg {
				fg++
				if best < cfg.FgIoU || l != im.Labels[arg] {
					return "foreground below FgIoU or with another label than its gt"
				}
			} else {
				bg++
				if l != 0 || !(best >= cfg.BgIoULow && best < cfg.BgIoUHigh) {
					return "background outside [BgIoULow, BgIoUHigh)"
				}
			}
			for c := 0; c <= cfg.NumClasses; c++ {
				for k := 0; k < 4; k++ {
					at := row*C + 4*c + k
					in, out, tv := tg.InsideWeights[at], tg.OutsideWeights[at], tg.BBoxTargets[at]
					if c == l && isFg {
						d := cfg.Coder.Encode(cand[s], im.Boxes[arg])
						if want := (d[k] - cfg.Means[k]) / cfg.Stds[k]; in != 1 || out != 1 || (tv != want && !(math.IsNaN(tv) && math.IsNaN(want))) {
							return "class slot not filled with the encoded target and weights 1"
						}
					} else if in != 0 || out != 0 || tv != 0 {
						return "a value outside the label's slot"
					}
				}
			}
		}
		if fg != tg.NumFg[b] || bg != tg.NumBg[b] {
			return "counts disagree with the labels"
		}
	}
	if row != R {
		return "rows beyond the images' counts"
	}
	return ""
}

func TestSampleTargetsTruncates(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	images := []Image{randomImage(rng, 4, 2, 600, 300), randomImage(rng, 1, 2, 300, 300), randomImage(rng, 0, 2, 50, 300)}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"torchvision", TorchvisionConfig(2)},
		{"py-faster-rcnn", PyFasterRCNNConfig(2)},
		{"small-batch", func() Config { c := TorchvisionConfig(2); c.BatchSize = 10; c.FgFraction = 0.35; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := SampleTargets(tc.cfg, images)
			if err != nil {
				t.Fatal(err)
			}
			if msg := checkInvariants(tc.cfg, images, a); msg != "" {
				t.Fatal(msg)
			}
			// image 0 has 400 jittered copies of its 4 gt: more fg than the budget (128 / 32 / 3)
			if a.NumFg[0] != tc.cfg.maxFg() {
				t.Fatalf("image 0: %d fg, want the budget %d", a.NumFg[0], tc.cfg.maxFg())
			}
			b, err := SampleTargets(tc.cfg, images)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same seed, different samples")
			}
			cfg := tc.cfg
			cfg.Seed = 7
			c, err := SampleTargets(cfg, images)
			if err != nil {
				t.Fatal(err)
			}
			if reflect.DeepEqual(a.Source, c.Source) {
				t.Fatal("another seed drew the same sample")
			}
		})
	}
}

// Hand-derived: the py-faster-rcnn rounding of the foreground budget (np.round, half to even)
// against torchvision's int().
func TestMaxFg(t *testing.T) {
	for _, tc := range []struct {
		batch int
		frac  float64
		round bool
		want  int
	}{{128, 0.25, true, 32}, {512, 0.25, false, 128}, {130, 0.25, true, 32}, {134, 0.25, true, 34}, {134, 0.25, false, 33}, {10, 0.35, false, 3}} {
		c := Config{BatchSize: tc.batch, FgFraction: tc.frac, RoundFg: tc.round}
		if got := c.maxFg(); got != tc.want {
			t.Errorf("maxFg(%d, %v, round %t) = %d, want %d", tc.batch, tc.frac, tc.round, got, tc.want)
		}
	}
}

// Hand-derived: with no gt, every candidate has IoU 0: background for torchvision ([0, 0.5)),
// nothing for py-faster-rcnn ([0.1, 0.5)).
func TestNoGT(t *testing.T) {
	images := []Image{{Proposals: [][4]float64{{0, 0, 10, 10}, {5, 5, 20, 30}}}}
	tv, err := SampleTargets(TorchvisionConfig(2), images)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tv.Labels, []int{0, 0}) || !reflect.DeepEqual(tv.MatchedGT, []int{-1, -1}) {
		t.Fatalf("torchvision: labels %v matched %v, want two background rows matched to no gt", tv.Labels, tv.MatchedGT)
	}
	py, err := SampleTargets(PyFasterRCNNConfig(2), images)
	if err != nil {
		t.Fatal(err)
	}
	if py.Rows() != 0 {
		t.Fatalf("py-faster-rcnn: %d rows, want 0 (IoU 0 is below BG_THRESH_LO 0.1)", py.Rows())
	}
}

// Hand-derived: gt only (no proposals) gives the gt box itself, IoU 1, target 0.
func TestGTOnly(t *testing.T) {
	cfg := TorchvisionConfig(2)
	tg, err := SampleTargets(cfg, []Image{{Boxes: [][4]float64{{10, 10, 50, 40}}, Labels: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Rows() != 1 || tg.Labels[0] != 2 || tg.IoU[0] != 1 {
		t.Fatalf("rows %d labels %v IoU %v, want one row of class 2 at IoU 1", tg.Rows(), tg.Labels, tg.IoU)
	}
	want := make([]float64, 12)
	want[8], want[9], want[10], want[11] = 1, 1, 1, 1
	if !reflect.DeepEqual(tg.InsideWeights, want) || !reflect.DeepEqual(tg.BBoxTargets, make([]float64, 12)) {
		t.Fatalf("inside %v targets %v, want weights in slot 2 and zero targets", tg.InsideWeights, tg.BBoxTargets)
	}
}

func TestSampleTargetsBadInput(t *testing.T) {
	ok := Image{Proposals: [][4]float64{{0, 0, 10, 10}}, Boxes: [][4]float64{{1, 1, 9, 9}}, Labels: []int{1}}
	nan := math.NaN()
	bad := func(f func(*Config)) Config { c := PyFasterRCNNConfig(2); f(&c); return c }
	for _, tc := range []struct {
		name   string
		cfg    Config
		images []Image
		want   string
	}{
		{"no images", PyFasterRCNNConfig(2), nil, "no images"},
		{"empty image", PyFasterRCNNConfig(2), []Image{ok, {}}, "image 1 has no proposals and no gt boxes"},
		{"label 0", PyFasterRCNNConfig(2), []Image{{Boxes: [][4]float64{{0, 0, 5, 5}}, Labels: []int{0}}}, "image 0, gt box 0: label 0 is outside [1, NumClasses=2]"},
		{"label K+1", PyFasterRCNNConfig(2), []Image{ok, {Boxes: [][4]float64{{0, 0, 5, 5}, {1, 1, 4, 4}}, Labels: []int{1, 3}}}, "image 1, gt box 1: label 3 is outside"},
		{"labels count", PyFasterRCNNConfig(2), []Image{{Boxes: [][4]float64{{0, 0, 5, 5}}}}, "image 0 has 1 gt boxes but 0 labels"},
		{"nan proposal", PyFasterRCNNConfig(2), []Image{ok, {Proposals: [][4]float64{{0, 0, 1, 1}, {0, nan, 1, 1}}}}, "image 1, proposal 1: box [0 NaN 1 1] has a non-finite coordinate"},
		{"inf gt", PyFasterRCNNConfig(2), []Image{{Boxes: [][4]float64{{0, 0, math.Inf(1), 1}}, Labels: []int{1}}}, "image 0, gt box 0: box [0 0 +Inf 1] has a non-finite"},
		{"inverted proposal", PyFasterRCNNConfig(2), []Image{{Proposals: [][4]float64{{5, 0, 1, 1}}}}, "image 0, proposal 0: box [5 0 1 1] has x2 < x1"},
		{"inverted gt", PyFasterRCNNConfig(2), []Image{{Boxes: [][4]float64{{0, 5, 1, 1}}, Labels: []int{1}}}, "image 0, gt box 0: box [0 5 1 1] has x2 < x1 or y2 < y1"},
		{"zero-width gt without +1", TorchvisionConfig(2), []Image{{Boxes: [][4]float64{{3, 0, 3, 1}}, Labels: []int{1}}}, "image 0, gt box 0: box [3 0 3 1] has zero width or height"},
		{"NumClasses 0", bad(func(c *Config) { c.NumClasses = 0 }), []Image{ok}, "Config.NumClasses is 0"},
		{"FgIoU NaN", bad(func(c *Config) { c.FgIoU = nan }), []Image{ok}, "Config.FgIoU is NaN"},
		{"bg high above fg", bad(func(c *Config) { c.BgIoUHigh = 0.6 }), []Image{ok}, "Config.BgIoUHigh is 0.6"},
		{"bg low above high", bad(func(c *Config) { c.BgIoULow = 0.7 }), []Image{ok}, "Config.BgIoUHigh is 0.5"},
		{"batch 0", bad(func(c *Config) { c.BatchSize = 0 }), []Image{ok}, "Config.BatchSize is 0"},
		{"fraction 2", bad(func(c *Config) { c.FgFraction = 2 }), []Image{ok}, "Config.FgFraction is 2"},
		{"order", bad(func(c *Config) { c.Order = 5 }), []Image{ok}, "Config.Order is Order(5)"},
		{"beta", bad(func(c *Config) { c.Beta = math.Inf(1) }), []Image{ok}, "Config.Beta is +Inf"},
		{"std 0", bad(func(c *Config) { c.Stds[2] = 0 }), []Image{ok}, "Config.Stds[2] is 0"},
		{"mean NaN", bad(func(c *Config) { c.Means[1] = nan }), []Image{ok}, "Config.Means[1] is NaN"},
		{"coder weight", bad(func(c *Config) { c.Coder.Weights[0] = -1 }), []Image{ok}, "Config.Coder: box: Coder weight 0 is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SampleTargets(tc.cfg, tc.images)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
