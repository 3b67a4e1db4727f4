package fastrcnn

import (
	"fmt"
	"math/rand"

	"github.com/detlab/smoothl1/box"
)

// Image is one training image's input to SampleTargets: the RPN's proposals and the
// ground-truth boxes with their class labels (1..K). Boxes are [x1, y1, x2, y2].
type Image struct {
	Proposals [][4]float64
	Boxes     [][4]float64
	Labels    []int
}

// Targets are a batch's sampled RoIs and their training targets, image by image (the rows of
// image 0, then image 1, ...). R is the number of rows (Rows) and C = 4(K+1) (Config.Columns).
type Targets struct {
	// Config is the configuration that made the targets; TargetNodes.Set refuses targets made
	// with a different one (up to the Seed).
	Config Config
	// RoIs holds R rows (batch index, x1, y1, x2, y2), ready for roi.Align / roi.Pool.
	RoIs []float64
	// Labels holds each row's class: 1..K foreground, 0 background.
	Labels []int
	// BBoxTargets (R x C, row-major) holds (encode(roi, gt) - Means) / Stds in columns
	// 4c..4c+3 of a foreground row of class c, 0 elsewhere.
	BBoxTargets []float64
	// InsideWeights are 1 where BBoxTargets are filled, else 0; OutsideWeights = (inside > 0).
	InsideWeights, OutsideWeights []float64
	// Source is each row's index in its image's candidate list (proposals, then the gt boxes
	// appended); MatchedGT its best gt (-1 when the image has none); IoU that best IoU (0 when none).
	Source, MatchedGT []int
	IoU               []float64
	// NumFg and NumBg count each image's sampled foreground and background rows.
	NumFg, NumBg []int
}

// Rows is the number of sampled RoIs of the batch, R.
func (t *Targets) Rows() int { return len(t.Labels) }

// SampleTargets matches, samples and encodes the second stage's training RoIs of each image,
// as torchvision's RoIHeads.select_training_samples (TorchvisionConfig) or py-faster-rcnn's
// proposal_target_layer (PyFasterRCNNConfig):
//
//  1. the gt boxes are appended to the proposals: the candidates;
//  2. each candidate's best gt by IoU (the first on ties, as argmax); foreground if that IoU is
//     >= FgIoU, with the gt's label; background (label 0) if it is in [BgIoULow, BgIoUHigh);
//     otherwise not sampled. An image without gt has every candidate at IoU 0;
//  3. at most maxFg foreground and BatchSize - #foreground background candidates are kept, the
//     excess dropped uniformly at random (seed Seed + b for image b);
//  4. the kept rows in Config.Order, with class-specific targets and weights.
//
// Errors name the image and the box: a proposal or gt box with a non-finite coordinate or x2 <
// x1 or y2 < y1, a gt box of zero width or height without +1 (its target would be infinite), a
// label outside [1, K], a label count that differs from the box count, an image with neither
// proposals nor gt boxes; and an empty batch or an invalid Config.
func SampleTargets(cfg Config, images []Image) (*Targets, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("fastrcnn: SampleTargets: no images")
	}
	for b, im := range images {
		if err := checkImage(cfg, b, im); err != nil {
			return nil, err
		}
	}
	t := &Targets{Config: cfg, NumFg: make([]int, len(images)), NumBg: make([]int, len(images))}
	for b, im := range images {
		sampleImage(cfg, b, im, t)
	}
	return t, nil
}

func checkImage(cfg Config, b int, im Image) error {
	if len(im.Proposals) == 0 && len(im.Boxes) == 0 {
		return fmt.Errorf("fastrcnn: image %d has no proposals and no gt boxes: nothing to sample", b)
	}
	if len(im.Labels) != len(im.Boxes) {
		return fmt.Errorf("fastrcnn: image %d has %d gt boxes but %d labels", b, len(im.Boxes), len(im.Labels))
	}
	for j, p := range im.Proposals {
		if err := box.Check(p); err != nil {
			return fmt.Errorf("fastrcnn: image %d, proposal %d: %w", b, j, err)
		}
	}
	for j, g := range im.Boxes {
		if err := box.Check(g); err != nil {
			return fmt.Errorf("fastrcnn: image %d, gt box %d: %w", b, j, err)
		}
		if !cfg.Coder.PlusOne && (g[2] == g[0] || g[3] == g[1]) {
			return fmt.Errorf("fastrcnn: image %d, gt box %d: box %v has zero width or height (its regression target would be -Inf)", b, j, g)
		}
		if l := im.Labels[j]; l < 1 || l > cfg.NumClasses {
			return fmt.Errorf("fastrcnn: image %d, gt box %d: label %d is outside [1, NumClasses=%d] (0 is background, implied)", b, j, l, cfg.NumClasses)
		}
	}
	return nil
}

// sampleImage appends image b's sampled rows to t. Matching and sampling are box's, shared with
// the RPN: box.Matcher with High = FgIoU and Low = BgIoUHigh labels foreground (1), background
// (0) and neither (-1); background below BgIoULow becomes neither; box.SampleBudget keeps at most
// maxFg foreground and BatchSize - #foreground background rows.
func sampleImage(cfg Config, b int, im Image, t *Targets) {
	cand := make([][4]float64, 0, len(im.Proposals)+len(im.Boxes))
	cand = append(append(cand, im.Proposals...), im.Boxes...)
	n := len(cand)
	var m box.Matches
	box.Matcher{High: cfg.FgIoU, Low: cfg.BgIoUHigh, PlusOne: cfg.Coder.PlusOne}.Match(cand, nil, nil, im.Boxes, nil, &m)
	kind := m.Labels // 1 foreground, 0 background, -1 neither; sampling turns the excess to -1
	for i := range kind {
		if kind[i] == 0 && !(m.MaxIoU[i] >= cfg.BgIoULow) {
			kind[i] = -1 // below the background band (py-faster-rcnn's BG_THRESH_LO)
		}
	}
	var fg, bg []int
	for i, k := range kind {
		switch k {
		case 1:
			fg = append(fg, i)
		case 0:
			bg = append(bg, i)
		}
	}
	rng := rand.New(rand.NewSource(cfg.Seed + int64(b)))
	numFg, numBg, _ := box.SampleBudget(kind, cfg.maxFg(), cfg.BatchSize, rng, nil)
	t.NumFg[b], t.NumBg[b] = numFg, numBg
	keep := make([]bool, n)
	labels := make([]int, n) // class, 0 background
	match := make([]int, n)
	for i, k := range kind {
		keep[i] = k >= 0
		match[i] = -1
		if len(im.Boxes) > 0 {
			match[i] = int(m.Matched[i])
		}
		if k == 1 {
			labels[i] = im.Labels[match[i]]
		}
	}
	best := m.MaxIoU

	var order []int
	switch cfg.Order {
	case FgFirst:
		for _, part := range [][]int{fg, bg} {
			for _, i := range part {
				if keep[i] {
					order = append(order, i)
				}
			}
		}
	default:
		for i := 0; i < n; i++ {
			if keep[i] {
				order = append(order, i)
			}
		}
	}
	cols := cfg.Columns()
	for _, i := range order {
		c := cand[i]
		t.RoIs = append(t.RoIs, float64(b), c[0], c[1], c[2], c[3])
		t.Labels = append(t.Labels, labels[i])
		t.Source = append(t.Source, i)
		t.MatchedGT = append(t.MatchedGT, match[i])
		t.IoU = append(t.IoU, best[i])
		row := len(t.BBoxTargets)
		t.BBoxTargets = append(t.BBoxTargets, make([]float64, cols)...)
		t.InsideWeights = append(t.InsideWeights, make([]float64, cols)...)
		t.OutsideWeights = append(t.OutsideWeights, make([]float64, cols)...)
		if l := labels[i]; l > 0 {
			d := cfg.Coder.Encode(c, im.Boxes[match[i]])
			for k := 0; k < 4; k++ {
				at := row + 4*l + k
				t.BBoxTargets[at] = (d[k] - cfg.Means[k]) / cfg.Stds[k]
				t.InsideWeights[at] = 1
				t.OutsideWeights[at] = 1
			}
		}
	}
}
