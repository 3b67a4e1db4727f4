package rpn

import (
	"fmt"

	"github.com/detlab/smoothl1/box"
	"math"
	"math/rand"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Anchors is the anchor set of one feature map: Boxes[n] with n = (y*W + x)*A + a.
type Anchors struct {
	Boxes   [][4]float64
	A, H, W int

	// cell and the strides, set by NewAnchors, let the assignment visit only the anchors that can
	// overlap a gt box. They are used only while Boxes still equal the shifted cell anchors.
	cell             [][4]float64
	strideY, strideX float64
}

// NewAnchors shifts the cell anchors over an H x W feature map with the given stride.
func NewAnchors(cell [][4]float64, height, width int, stride float64) (*Anchors, error) {
	return newAnchors("NewAnchors", cell, height, width, stride, stride)
}

// NewAnchorsStrides is NewAnchors with different strides down (y) and across (x), as
// torchvision's AnchorGenerator has where the image size is not a multiple of the feature map's
// (TorchvisionLevels computes them).
func NewAnchorsStrides(cell [][4]float64, height, width int, strideY, strideX float64) (*Anchors, error) {
	return newAnchors("NewAnchorsStrides", cell, height, width, strideY, strideX)
}

func newAnchors(fn string, cell [][4]float64, height, width int, strideY, strideX float64) (*Anchors, error) {
	boxes, err := shiftAnchors(fn, cell, height, width, strideY, strideX)
	if err != nil {
		return nil, err
	}
	return &Anchors{Boxes: boxes, A: len(cell), H: height, W: width, cell: append([][4]float64(nil), cell...), strideY: strideY, strideX: strideX}, nil
}

// onGrid reports whether Boxes are still the cell anchors shifted by the stride.
func (an *Anchors) onGrid() bool {
	if len(an.cell) != an.A || !(an.strideX > 0) || !(an.strideY > 0) {
		return false
	}
	for n, b := range an.Boxes {
		a, yx := n%an.A, n/an.A
		sx, sy := float64(float64(yx%an.W)*an.strideX), float64(float64(yx/an.W)*an.strideY)
		c := an.cell[a]
		if b != [4]float64{c[0] + sx, c[1] + sy, c[2] + sx, c[3] + sy} {
			return false
		}
	}
	return true
}

// span is, for one cell anchor, the grid cells [x0, x1] x [y0, y1] whose shifted copy can reach a
// box.
type span struct{ x0, x1, y0, y1 int }

// cellSpans sets spans[a], for each cell anchor a, to the grid cells whose shifted copy can
// reach box g: every anchor with a positive intersection with g lies in them. Anchors on a grid
// only (onGrid).
func (an *Anchors) cellSpans(g [4]float64, spans []span) {
	sx, sy := an.strideX, an.strideY
	lo := func(v float64, hi int) int { return gridIndex(math.Ceil, v, 0, hi, true) }
	up := func(v float64, hi int) int { return gridIndex(math.Floor, v, -1, hi, false) }
	// per cell anchor a: cells whose shifted box reaches into [g0 - 1, g2 + 1] x [g1 - 1, g3 + 1]
	for a, c := range an.cell {
		spans[a] = span{
			x0: lo((g[0]-1-c[2])/sx, an.W), x1: up((g[2]+1-c[0])/sx, an.W-1),
			y0: lo((g[1]-1-c[3])/sy, an.H), y1: up((g[3]+1-c[1])/sy, an.H-1),
		}
	}
}

// shapeRuns appends the runs of cell anchor a within sp, one per grid row (numbered from
// offset): the row's anchors share their y coordinates, and sizes bounds their sizes.
func (an *Anchors) shapeRuns(a int, sp span, offset int, sizes *box.SizeRange, runs []box.Run) []box.Run {
	if sp.x0 > sp.x1 {
		return runs
	}
	for y := sp.y0; y <= sp.y1; y++ {
		runs = append(runs, box.Run{First: offset + (y*an.W+sp.x0)*an.A + a, Count: sp.x1 - sp.x0 + 1, Step: an.A, SameY: true, Sizes: sizes})
	}
	return runs
}

// gridIndex is round(v) clamped to [lo, hi], clamped in float64 before the conversion: int of
// a float64 beyond the int range is implementation-defined (amd64 gives MinInt64 for 1e21, so
// a huge box would reach no cell). Finite boxes and strides give finite or ±Inf v, never NaN;
// a NaN would give the widest window (lo for a first cell, hi for a last), never a narrower one.
func gridIndex(round func(float64) float64, v float64, lo, hi int, first bool) int {
	switch {
	case math.IsNaN(v) && first:
		return max(lo, 0)
	case math.IsNaN(v):
		return hi
	case v <= float64(lo):
		return lo
	case v >= float64(hi):
		return hi
	}
	return int(round(v))
}

func (an *Anchors) validate() error {
	if an == nil {
		return fmt.Errorf("rpn: anchors are nil")
	}
	if an.A <= 0 || an.H <= 0 || an.W <= 0 {
		return fmt.Errorf("rpn: anchors have A=%d H=%d W=%d; each must be >= 1", an.A, an.H, an.W)
	}
	if len(an.Boxes) != an.A*an.H*an.W {
		return fmt.Errorf("rpn: %d anchor boxes for A*H*W = %d*%d*%d = %d", len(an.Boxes), an.A, an.H, an.W, an.A*an.H*an.W)
	}
	for n, b := range an.Boxes {
		if err := box.Check(b); err != nil {
			return fmt.Errorf("rpn: anchor %d: %w", n, err)
		}
	}
	return nil
}

// Image is one training image: its size and ground-truth boxes [x1, y1, x2, y2].
type Image struct {
	Height, Width float64
	Boxes         [][4]float64
}

// checkImageSize accepts finite sizes > 0.
func checkImageSize(b int, im Image) error {
	if !(im.Height > 0) || !(im.Width > 0) || math.IsInf(im.Height, 0) || math.IsInf(im.Width, 0) {
		return fmt.Errorf("image %d has size %vx%v; height and width must be finite and > 0", b, im.Height, im.Width)
	}
	return nil
}

// Targets are the per-anchor training targets of a batch, laid out for the network:
// Labels and ClsWeights (B, A, H, W); BBoxTargets, InsideWeights and OutsideWeights (B, 4A, H, W)
// with channel 4a + k, k in (dx, dy, dw, dh). Row-major, float64.
type Targets struct {
	B, A, H, W int
	// Labels: 1 positive, 0 negative, -1 ignored (outside the border, between thresholds or not
	// sampled).
	Labels []float64
	// ClsWeights weigh each anchor's classification term: 1/(N_v(b)*B) (PerImage), 1/S
	// (PerBatch) or 1/(AnchorsPerImage*B) (PerAnchorBudget) where the label is 0 or 1, else 0.
	ClsWeights []float64
	// BBoxTargets are the encoded matched gt boxes of every kept anchor with Config.EncodeAllKept,
	// else of the sampled positives only (0 elsewhere).
	BBoxTargets []float64
	// InsideWeights are 1 on the 4 deltas of positive anchors, else 0.
	InsideWeights []float64
	// OutsideWeights are 1/N_v(b) (PerImage), 1/S (PerBatch) or 1/(AnchorsPerImage*B)
	// (PerAnchorBudget) on sampled anchors, else 0.
	OutsideWeights []float64
	// NumPos and NumNeg count the sampled positives and negatives of each image (all levels).
	NumPos, NumNeg []int

	// config is the Config that made the targets (nil for hand-made Targets): Loss and
	// TargetNodes.Set check that its normalisation is the Loss's.
	config *Config
}

// Config returns the Config the targets were assigned with, and false for Targets not made by
// AssignTargets or AssignTargetsLevels.
func (t *Targets) Config() (Config, bool) {
	if t == nil || t.config == nil {
		return Config{}, false
	}
	return *t.config, true
}

// AssignTargets labels the anchors of each image, samples them and encodes the regression
// targets, as py-faster-rcnn's anchor_target_layer (DefaultConfig) or torchvision's
// assign_targets_to_anchors + BalancedPositiveNegativeSampler + encode (TorchvisionConfig):
//
//  1. with FilterBorder, anchors not inside the image (up to AllowedBorder) are ignored;
//  2. label 0 where the anchor's best IoU < NegativeIoU; label 1 for each gt's best anchors
//     (ties included, skipping a gt whose best IoU is 0); label 1 where the best IoU >=
//     PositiveIoU; with ClobberPositives the negative rule is applied last;
//  3. at most FgFraction*AnchorsPerImage positives and AnchorsPerImage - #positives negatives
//     are kept, the rest chosen at random (seed Seed + b) turned to -1;
//  4. an image without gt boxes has every kept anchor negative.
//
// No anchors x gt matrix is held: each IoU is computed once, on the fly (each gt's tied best
// anchors are kept as they are found), with O(#anchors + #gt + #ties) memory per image, and for anchors made by NewAnchors
// only for the anchors whose grid cell lets them overlap the gt. Images are processed in parallel;
// results do not depend on scheduling. It is AssignTargetsLevels with one level. A training loop
// that assigns every step can keep an Assigner, which reuses the Targets and scratch.
//
// Errors name the image and box: a gt box with a non-finite coordinate, x2 < x1 or y2 < y1, or
// (without PlusOne) zero width or height; an image size that is not finite and > 0.
func AssignTargets(cfg Config, anchors *Anchors, images []Image) (*Targets, error) {
	return (*Assigner)(nil).AssignTargets(cfg, anchors, images)
}

// AssignTargetsLevels is AssignTargets for a multi-level (FPN) RPN, as torchvision's
// RegionProposalNetwork with one AnchorGenerator size per level: the levels' anchors of an
// image are matched as one list (level by level, (y, x, a) within a level), so a gt's best
// anchor may lie on any level and ties across levels are all positive; one sampler draws
// AnchorsPerImage anchors over all levels. It returns one Targets per level, laid out for that
// level's outputs; their NumPos and NumNeg, and the normalisation in the weights, count the
// whole image (all levels), so the levels' losses add up to the loss over the concatenation
// (LossLevels). Errors as AssignTargets, naming the level.
func AssignTargetsLevels(cfg Config, levels []*Anchors, images []Image) ([]*Targets, error) {
	return (*Assigner)(nil).AssignTargetsLevels(cfg, levels, images)
}

// Assigner is AssignTargets and AssignTargetsLevels for a training loop: it keeps the Targets
// it returned and its per-image scratch, and the next call overwrites them (when the batch and
// the feature maps have the same sizes) instead of allocating new ones. The results are those of
// AssignTargets, whatever the earlier calls were. A Targets it returned is valid until its next
// call: bind it (TargetNodes.Set copies) or copy it before. The zero value is ready; an Assigner
// is not safe for concurrent use; a nil *Assigner allocates afresh, as the package's functions.
// A training loop that only feeds the targets to a graph needs no Targets at all:
// TargetNodes.Assign writes them straight into the graph's tensors.
type Assigner struct {
	ts      []*Targets
	scratch []*scratch     // by worker
	images  []*imageResult // by image
	areas   []float64
	boxes   [][4]float64 // the levels' anchors as one list (more than one level)
}

// areasFor returns a slice of n anchor areas to fill, grown as needed.
func (a *Assigner) areasFor(n int) []float64 {
	if cap(a.areas) < n {
		a.areas = make([]float64, n)
	}
	a.areas = a.areas[:n]
	return a.areas
}

// AssignTargets is the package's AssignTargets, reusing a's buffers.
func (a *Assigner) AssignTargets(cfg Config, anchors *Anchors, images []Image) (*Targets, error) {
	if anchors == nil {
		return nil, fmt.Errorf("rpn: anchors are nil")
	}
	ts, err := a.assignLevels(cfg, []*Anchors{anchors}, images)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// AssignTargetsLevels is the package's AssignTargetsLevels, reusing a's buffers.
func (a *Assigner) AssignTargetsLevels(cfg Config, levels []*Anchors, images []Image) ([]*Targets, error) {
	if len(levels) == 0 {
		return nil, fmt.Errorf("rpn: AssignTargetsLevels: no levels")
	}
	return a.assignLevels(cfg, levels, images)
}

// reusable returns a's Targets when they have the sizes of these levels and B images.
func (a *Assigner) reusable(levels []*Anchors, B int) []*Targets {
	if len(a.ts) != len(levels) {
		return nil
	}
	for l, an := range levels {
		t, plane := a.ts[l], an.A*an.H*an.W
		if t.B != B || t.A != an.A || t.H != an.H || t.W != an.W || len(t.Labels) != B*plane ||
			len(t.ClsWeights) != B*plane || len(t.BBoxTargets) != 4*B*plane || len(t.InsideWeights) != 4*B*plane ||
			len(t.OutsideWeights) != 4*B*plane || len(t.NumPos) != B || len(t.NumNeg) != B {
			return nil // a caller changed them
		}
	}
	return a.ts
}

// anchorSet is the anchors of all levels as one list: anchor i of the image is anchor
// i - offsets[l] of the level l whose range holds it.
type anchorSet struct {
	levels  []*Anchors
	offsets []int
	grids   []bool
	boxes   [][4]float64 // concatenated (level 0's own slice when there is one level)
	shapes  int          // cell anchors of the levels on a grid
	// sizes[l][a] bounds the sizes of level l's anchors of cell anchor a (levels on a grid)
	sizes    [][]box.SizeRange
	plusOne  bool
	spanBase []int // level l's spans start at spanBase[l] in a worker's scratch
}

// shape is one cell anchor of one level, with its IoU bound for the gt at hand.
type shape struct {
	level, a int
	bound    float64
}

// window appends the runs of anchors (all levels) that can overlap g: first every anchor of the
// levels not on a grid, then, shape by shape (one cell anchor of one level), in decreasing order
// of the bound on their IoU with g, each shape's rows within reach of g. The order makes a
// pruning Matcher find the gt's best IoU early; the results do not depend on it.
func (set *anchorSet) window(g [4]float64, runs []box.Run, spans []span, order []shape) ([]box.Run, []shape) {
	runs, order = runs[:0], order[:0]
	for l, an := range set.levels {
		if !set.grids[l] {
			runs = append(runs, box.Run{First: set.offsets[l], Count: len(an.Boxes), Step: 1})
			continue
		}
		an.cellSpans(g, spans[set.spanBase[l]:])
		for a := range an.A {
			order = append(order, shape{l, a, set.sizes[l][a].IoUBound(g, set.plusOne)})
		}
	}
	// insertion sort, stable: a handful of shapes (3 to 15 in the usual RPNs)
	for i := 1; i < len(order); i++ {
		for k := i; k > 0 && order[k].bound > order[k-1].bound; k-- {
			order[k], order[k-1] = order[k-1], order[k]
		}
	}
	for _, sh := range order {
		an := set.levels[sh.level]
		runs = an.shapeRuns(sh.a, spans[set.spanBase[sh.level]+sh.a], set.offsets[sh.level], &set.sizes[sh.level][sh.a], runs)
	}
	return runs, order
}

// sizeRanges fills set.sizes from the anchors of the levels on a grid.
func (set *anchorSet) sizeRanges() {
	set.sizes = make([][]box.SizeRange, len(set.levels))
	for l, an := range set.levels {
		if !set.grids[l] {
			continue
		}
		r := make([]box.SizeRange, an.A)
		for a := range r {
			r[a] = box.SizeRange{MinW: math.Inf(1), MaxW: math.Inf(-1), MinH: math.Inf(1), MaxH: math.Inf(-1)}
		}
		for n, b := range an.Boxes {
			w, h := b[2]-b[0], b[3]-b[1]
			sr := &r[n%an.A]
			sr.MinW, sr.MaxW, sr.MinH, sr.MaxH = min(sr.MinW, w), max(sr.MaxW, w), min(sr.MinH, h), max(sr.MaxH, h)
		}
		set.sizes[l] = r
	}
}

// assignLevels assigns into a's Targets (a nil: fresh ones).
func (a *Assigner) assignLevels(cfg Config, levels []*Anchors, images []Image) ([]*Targets, error) {
	if a == nil {
		a = new(Assigner) // fresh buffers, returned to the caller
	}
	set, err := a.match(cfg, levels, images)
	if err != nil {
		return nil, err
	}
	B := len(images)
	ts := a.reusable(levels, B)
	if ts == nil {
		ts = make([]*Targets, len(levels))
		for l, an := range levels {
			plane := an.A * an.H * an.W
			ts[l] = &Targets{
				B: B, A: an.A, H: an.H, W: an.W,
				Labels:         make([]float64, B*plane),
				ClsWeights:     make([]float64, B*plane),
				BBoxTargets:    make([]float64, B*4*plane),
				InsideWeights:  make([]float64, B*4*plane),
				OutsideWeights: make([]float64, B*4*plane),
				NumPos:         make([]int, B),
				NumNeg:         make([]int, B),
			}
		}
		a.ts = ts
	}
	dests := make([]dest[float64], len(ts))
	for l, t := range ts {
		dests[l] = dest[float64]{t.Labels, t.ClsWeights, t.BBoxTargets, t.InsideWeights, t.OutsideWeights}
	}
	writeTargets(cfg, set, a.images[:B], dests)
	recorded := cfg
	for _, t := range ts { // the image's counts over all levels, in every level's Targets
		for b, r := range a.images[:B] {
			t.NumPos[b], t.NumNeg[b] = r.numPos, r.numNeg
		}
		t.config = &recorded
	}
	return ts, nil
}

// match checks the inputs and labels, samples and encodes every image into a.images[:B]
// (phase 1 of an assignment; writeTargets is phase 2). Images are spread over GOMAXPROCS
// workers; each image's result depends on the image alone.
func (a *Assigner) match(cfg Config, levels []*Anchors, images []Image) (*anchorSet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set := &anchorSet{levels: levels}
	total := 0
	for l, an := range levels {
		if err := an.validate(); err != nil {
			if len(levels) > 1 {
				return nil, fmt.Errorf("rpn: level %d: %w", l, err)
			}
			return nil, err
		}
		set.offsets = append(set.offsets, total)
		set.grids = append(set.grids, an.onGrid())
		set.spanBase = append(set.spanBase, set.shapes)
		if set.grids[l] {
			set.shapes += an.A
		}
		total += len(an.Boxes)
	}
	set.plusOne = cfg.Coder.PlusOne
	set.sizeRanges()
	if len(levels) == 1 {
		set.boxes = levels[0].Boxes
	} else {
		a.boxes = a.boxes[:0] // copied every call: the levels' boxes may have changed
		for _, an := range levels {
			a.boxes = append(a.boxes, an.Boxes...)
		}
		set.boxes = a.boxes
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("rpn: AssignTargets: no images")
	}
	for b, im := range images {
		if err := checkImageSize(b, im); err != nil {
			return nil, fmt.Errorf("rpn: %w", err)
		}
		for j, g := range im.Boxes {
			if err := box.Check(g); err != nil {
				return nil, fmt.Errorf("rpn: image %d, gt box %d: %w", b, j, err)
			}
			if !cfg.Coder.PlusOne && (g[2] == g[0] || g[3] == g[1]) {
				return nil, fmt.Errorf("rpn: image %d, gt box %d: box %v has zero width or height (its regression target would be -Inf)", b, j, g)
			}
		}
	}
	B := len(images)
	areas := a.areasFor(len(set.boxes)) // read-only, shared by the workers
	for i, b := range set.boxes {
		areas[i] = box.Area(b, cfg.Coder.PlusOne)
	}
	for len(a.images) < B {
		a.images = append(a.images, new(imageResult))
	}
	workers := min(runtime.GOMAXPROCS(0), B)
	for w := 0; w < workers; w++ {
		a.scratchFor(w, len(set.boxes), set.shapes)
	}
	forEachImage(B, workers, func(w, b int) {
		matchImage(cfg, set, areas, images[b], b, a.scratch[w], a.images[b])
	})
	return set, nil
}

// forEachImage runs fn(w, b) for every image b < B on workers goroutines (w is the worker: its
// scratch), the images taken in turn. What fn writes for b must depend on b alone, so that the
// results do not depend on scheduling.
func forEachImage(B, workers int, fn func(w, b int)) {
	if workers <= 1 {
		for b := 0; b < B; b++ {
			fn(0, b)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for b := int(next.Add(1)) - 1; b < B; b = int(next.Add(1)) - 1 {
				fn(w, b)
			}
		}()
	}
	wg.Wait()
}

// scratch holds one image's per-anchor matching state, reused across the images of a worker.
type scratch struct {
	kept    []bool
	matches box.Matches
	indices []int
	spans   []span
	order   []shape
	memo    box.LogMemo
}

// scratchFor returns worker w's scratch for n anchors and the given number of cell anchors (all
// levels), grown as needed.
func (a *Assigner) scratchFor(w, n, cells int) *scratch {
	for len(a.scratch) <= w {
		a.scratch = append(a.scratch, &scratch{})
	}
	s := a.scratch[w]
	if cap(s.kept) < n {
		s.kept = make([]bool, n)
	}
	if cap(s.spans) < cells {
		s.spans = make([]span, cells)
	}
	s.kept, s.spans = s.kept[:n], s.spans[:cells]
	return s
}

// imageResult is one image's assignment before it is laid out: the final labels of its anchors
// (all levels, after sampling), the regression targets of the anchors that have one (in anchor
// order) and the sampled counts.
type imageResult struct {
	labels         []int8
	enc            []encoded
	numPos, numNeg int
}

// encoded is anchor i's regression target (dx, dy, dw, dh).
type encoded struct {
	i int32
	d [4]float64
}

// matchImage labels, samples and encodes image b: box.Matcher over the anchors of all levels
// (visiting, per gt, only the grid cells that can overlap it), box.Sample, then Coder.Encode of
// the sampled positives (every kept anchor with EncodeAllKept).
func matchImage(cfg Config, set *anchorSet, areas []float64, im Image, b int, s *scratch, r *imageResult) {
	boxes := set.boxes
	gts := im.Boxes
	for i, bx := range boxes {
		s.kept[i] = !cfg.FilterBorder || (bx[0] >= -cfg.AllowedBorder && bx[1] >= -cfg.AllowedBorder &&
			bx[2] < im.Width+cfg.AllowedBorder && bx[3] < im.Height+cfg.AllowedBorder)
	}
	// Prune: the labels are exact, and so is the match of every anchor whose best IoU reaches a
	// threshold; the other anchors' matches are read only with EncodeAllKept
	matcher := box.Matcher{High: cfg.PositiveIoU, Low: cfg.NegativeIoU, AllowLowQuality: true,
		ClobberPositives: cfg.ClobberPositives, PlusOne: cfg.Coder.PlusOne, Prune: !cfg.EncodeAllKept}
	candidates := func(g [4]float64, runs []box.Run) []box.Run {
		runs, s.order = set.window(g, runs, s.spans, s.order)
		return runs
	}
	matcher.Match(boxes, areas, s.kept, gts, candidates, &s.matches)
	labels := s.matches.Labels
	r.numPos, r.numNeg, s.indices = box.Sample(labels, cfg.AnchorsPerImage, cfg.FgFraction, rand.New(rand.NewSource(cfg.Seed+int64(b))), s.indices)
	r.labels = append(r.labels[:0], labels...)
	r.enc = r.enc[:0]
	if len(gts) == 0 {
		return
	}
	nEnc := 0 // sized first: with EncodeAllKept most anchors have a target, and growing copies
	for i, l := range labels {
		if s.kept[i] && (cfg.EncodeAllKept || l == 1) {
			nEnc++
		}
	}
	r.enc = slices.Grow(r.enc, nEnc)
	for i, l := range labels {
		if s.kept[i] && (cfg.EncodeAllKept || l == 1) {
			r.enc = append(r.enc, encoded{int32(i), cfg.Coder.EncodeMemo(boxes[i], gts[s.matches.Matched[i]], &s.memo)})
		}
	}
}

// dest is where one level's targets are written, in the dtype T: Labels and ClsWeights
// (B, A, H, W), BBoxTargets, InsideWeights and OutsideWeights (B, 4A, H, W).
type dest[T float] struct {
	labels, clsW, bbox, inside, outside []T
}

// writeTargets lays the images' results out in every level's dest (phase 2 of an assignment),
// writing every element once, so nothing of an earlier assignment survives: label (b, a, y, x)
// and delta k at (b, 4a + k, y, x) for anchor (y*W + x)*A + a of a level; the weights of the
// Config's normalisation on sampled anchors, inside weight 1 on positives, 0 elsewhere. Values
// are converted from float64 to T, as TargetNodes.Set does. Each (image, channel) plane is
// written front to back in turn: writing an anchor's 4A + 2 channels together would keep that
// many streams 4*H*W bytes apart in flight, which alias in the cache.
func writeTargets[T float](cfg Config, set *anchorSet, results []*imageResult, dests []dest[T]) {
	B, total := len(results), 0
	for _, r := range results {
		total += r.numPos + r.numNeg
	}
	forEachImage(B, min(runtime.GOMAXPROCS(0), B), func(_, b int) {
		r := results[b]
		cw, wPos, wNeg := imageWeights(cfg, r.numPos, r.numNeg, total, B)
		// what a label gives its anchor's label, classification, inside and outside weights
		var byLabel [3][4]T // by label + 1
		byLabel[0] = [4]T{-1, 0, 0, 0}
		byLabel[1] = [4]T{0, T(cw), 0, T(wNeg)}
		byLabel[2] = [4]T{1, T(cw), 1, T(wPos)}
		for l, an := range set.levels {
			d, hw := dests[l], an.H*an.W
			labels := r.labels[set.offsets[l] : set.offsets[l]+an.A*hw] // anchor (yx, a) at yx*A + a
			for a := 0; a < an.A; a++ {
				p, q := (b*an.A+a)*hw, (b*4*an.A+4*a)*hw // label plane, delta 0's plane
				lab, cls := d.labels[p:p+hw], d.clsW[p:p+hw]
				in, out := d.inside[q:q+hw], d.outside[q:q+hw]
				for yx := range lab {
					v := &byLabel[labels[yx*an.A+a]+1]
					lab[yx], cls[yx], in[yx], out[yx] = v[0], v[1], v[2], v[3]
				}
				clear(d.bbox[q : q+hw])
				for k := 1; k < 4; k++ { // deltas 1-3 have delta 0's weights
					copy(d.inside[q+k*hw:q+(k+1)*hw], in)
					copy(d.outside[q+k*hw:q+(k+1)*hw], out)
					clear(d.bbox[q+k*hw : q+(k+1)*hw])
				}
			}
		}
		// the regression targets: r.enc is in anchor order, so level by level
		l := 0
		for _, e := range r.enc {
			i := int(e.i)
			for i >= set.offsets[l]+len(set.levels[l].Boxes) {
				l++
			}
			an := set.levels[l]
			hw, local := an.H*an.W, i-set.offsets[l]
			yx, a := local/an.A, local%an.A
			p := (b*4*an.A+4*a)*hw + yx
			for k, v := range e.d {
				dests[l].bbox[p+k*hw] = T(v)
			}
		}
	})
}

// imageWeights are an image's classification weight and its outside weights on positives and
// negatives, given its sampled counts, the batch's total and the batch size B.
func imageWeights(cfg Config, numPos, numNeg, total, B int) (cls, pos, neg float64) {
	var w float64
	switch cfg.Normalisation {
	case PerImage:
		if nv := numPos + numNeg; nv > 0 {
			w = 1 / float64(nv)
		}
	case PerBatch:
		if total > 0 {
			w = 1 / float64(total)
		}
	case PerAnchorBudget:
		w = 1 / (float64(cfg.AnchorsPerImage) * float64(B))
	}
	// the classification sum is also averaged over the images for PerImage
	cls = w
	if cfg.Normalisation == PerImage {
		cls = w / float64(B)
	}
	// outside weights: w on every sampled anchor, or with a positive weight p, p/#pos on
	// positives and (1-p)/#neg on negatives (py-faster-rcnn's RPN_POSITIVE_WEIGHT)
	pos, neg = w, w
	if p := cfg.PositiveWeight; p > 0 {
		pos, neg = 0, 0
		if numPos > 0 {
			pos = p / float64(numPos)
		}
		if numNeg > 0 {
			neg = (1 - p) / float64(numNeg)
		}
	}
	return cls, pos, neg
}
