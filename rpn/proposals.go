package rpn

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/detlab/smoothl1/box"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ProposalConfig configures Proposals. Start from TorchvisionProposals or PyFasterRCNNProposals.
type ProposalConfig struct {
	// Objectness is the scores' layout: Sigmoid (B, A, H, W), score sigmoid(z); Softmax2
	// (B, 2A, H, W), score the foreground probability of the softmax over (bg, fg).
	Objectness Objectness
	// Coder decodes the deltas. Its PlusOne is the pixel convention of clipping, MinSize and NMS
	// too (py-faster-rcnn: +1 everywhere; torchvision: nowhere).
	Coder box.Coder
	// PerLevel is torchvision's order: per image and level, the PreNMSTopN anchors of highest
	// logit are decoded, clipped, filtered by MinSize and ScoreThresh, and NMS runs per level
	// (box.BatchedNMS with the level as the group). Without it, py-faster-rcnn's
	// proposal_layer: all anchors of the image decoded, clipped and filtered by MinSize, then
	// the PreNMSTopN of highest score, one NMS.
	PerLevel bool
	// PreNMSTopN (per level with PerLevel, else per image) and PostNMSTopN (per image); 0 means
	// no limit.
	PreNMSTopN, PostNMSTopN int
	// NMSThresh: a box is suppressed when its IoU with a kept box is > NMSThresh.
	NMSThresh float64
	// MinSize: boxes narrower or lower than MinSize pixels (with +1 under PlusOne) are removed.
	// py-faster-rcnn scales its MIN_SIZE by the image scale: pass MIN_SIZE * im_scale.
	MinSize float64
	// ScoreThresh: boxes with score < ScoreThresh are removed (torchvision: 0).
	ScoreThresh float64
}

// TorchvisionProposals is torchvision 0.14's FasterRCNN RPN: pre-NMS top-n 2000 per level
// (train) / 1000 (test), post-NMS 2000 / 1000 per image, NMS 0.7, min size 1e-3, score
// threshold 0, sigmoid scores, no +1, decode clamped at ln(1000/16).
func TorchvisionProposals(train bool) ProposalConfig {
	n := 1000
	if train {
		n = 2000
	}
	return ProposalConfig{Objectness: Sigmoid, Coder: box.TorchvisionCoder(), PerLevel: true,
		PreNMSTopN: n, PostNMSTopN: n, NMSThresh: 0.7, MinSize: 1e-3}
}

// PyFasterRCNNProposals is py-faster-rcnn's proposal_layer (config.py): pre-NMS top-n 12000
// (train) / 6000 (test), post-NMS 2000 / 300, NMS 0.7, min size 16 (at image scale 1), softmax
// scores, +1 pixel convention, no clamp.
func PyFasterRCNNProposals(train bool) ProposalConfig {
	pre, post := 6000, 300
	if train {
		pre, post = 12000, 2000
	}
	return ProposalConfig{Objectness: Softmax2, Coder: box.PyFasterRCNNCoder(),
		PreNMSTopN: pre, PostNMSTopN: post, NMSThresh: 0.7, MinSize: 16}
}

// Validate reports the first field out of range.
func (c ProposalConfig) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("rpn: ProposalConfig.%s is %v, want %s", name, v, want)
	}
	switch {
	case c.Objectness != Softmax2 && c.Objectness != Sigmoid:
		return bad("Objectness", c.Objectness, "Softmax2 or Sigmoid")
	case c.PreNMSTopN < 0:
		return bad("PreNMSTopN", c.PreNMSTopN, ">= 0 (0: no limit)")
	case c.PostNMSTopN < 0:
		return bad("PostNMSTopN", c.PostNMSTopN, ">= 0 (0: no limit)")
	case math.IsNaN(c.NMSThresh):
		return bad("NMSThresh", c.NMSThresh, "a number")
	case !(c.MinSize >= 0) || math.IsInf(c.MinSize, 0):
		return bad("MinSize", c.MinSize, "finite and >= 0")
	case math.IsNaN(c.ScoreThresh):
		return bad("ScoreThresh", c.ScoreThresh, "a number")
	}
	return c.Coder.Validate()
}

// ImageProposals are one image's proposals, best first.
type ImageProposals struct {
	Boxes  [][4]float64
	Scores []float64
	// Levels is the feature level of each box (index into Proposals' levels).
	Levels []int
}

// Proposals turns the network's outputs after a run into per-image proposals, as torchvision's
// RegionProposalNetwork.filter_proposals (cfg.PerLevel) or py-faster-rcnn's proposal_layer.
// levels are the anchors of each feature level; objectness[l] and deltas[l] that level's
// values (float32 or float64 *tensor.Dense, views allowed): objectness (B, A, H, W) (Sigmoid) or
// (B, 2A, H, W) (Softmax2), deltas (B, 4A, H, W); images gives each image's height and width
// (its Boxes are not used). A single-level RPN passes one level.
//
// Boxes come best first: by decreasing score, ties by lower anchor index (anchors numbered
// level by level, then (y, x, a) within a level) - a deterministic rule where the references'
// sorts leave ties unspecified. Scores are computed in float64 (float32 inputs are converted
// exactly). Anchors with a NaN score are dropped; boxes with a NaN coordinate fail the size test.
// Images are processed in parallel; results do not depend on scheduling.
//
// Errors name the argument: a config field out of range (ProposalConfig.Validate), no levels,
// no images, level counts that differ, shapes or dtypes that do not fit the anchors and images,
// an image size that is not finite and > 0.
func Proposals(cfg ProposalConfig, levels []*Anchors, objectness, deltas []G.Value, images []Image) ([]ImageProposals, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(levels) == 0 {
		return nil, fmt.Errorf("rpn: Proposals: no levels")
	}
	if len(objectness) != len(levels) || len(deltas) != len(levels) {
		return nil, fmt.Errorf("rpn: Proposals: %d levels of anchors, %d of objectness and %d of deltas; want one each per level", len(levels), len(objectness), len(deltas))
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("rpn: Proposals: no images")
	}
	for b, im := range images {
		if err := checkImageSize(b, im); err != nil {
			return nil, fmt.Errorf("rpn: Proposals: %w", err)
		}
	}
	B := len(images)
	in := make([]levelInput, len(levels))
	offset := 0
	for l, an := range levels {
		if err := an.validate(); err != nil {
			return nil, fmt.Errorf("rpn: Proposals: level %d: %w", l, err)
		}
		lay := layout{an.A, an.H, an.W}
		classes := 1
		if cfg.Objectness == Softmax2 {
			classes = 2
		}
		s, err := readValue(objectness[l], tensor.Shape{B, classes * an.A, an.H, an.W}, fmt.Sprintf("objectness[%d]", l), cfg.Objectness.String())
		if err != nil {
			return nil, err
		}
		d, err := readValue(deltas[l], tensor.Shape{B, 4 * an.A, an.H, an.W}, fmt.Sprintf("deltas[%d]", l), "")
		if err != nil {
			return nil, err
		}
		if (s.f32 == nil) != (d.f32 == nil) {
			return nil, fmt.Errorf("rpn: Proposals: objectness[%d] and deltas[%d] have different dtypes", l, l)
		}
		in[l] = levelInput{anchors: an, lay: lay, scores: s, deltas: d, offset: offset}
		offset += lay.anchors()
	}
	out := make([]ImageProposals, B)
	next := make(chan int, B)
	for b := 0; b < B; b++ {
		next <- b
	}
	close(next)
	var wg sync.WaitGroup
	for w := min(runtime.GOMAXPROCS(0), B); w > 0; w-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := scratchPool.Get().(*proposalScratch)
			defer scratchPool.Put(s)
			for b := range next {
				out[b] = proposeImage(cfg, in, b, images[b], s)
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// levelInput is one level's anchors and values.
type levelInput struct {
	anchors        *Anchors
	lay            layout
	scores, deltas floatValues
	offset         int // of the level's first anchor in the image's concatenated anchors
}

// floatValues is a contiguous float32 or float64 tensor's data.
type floatValues struct {
	f32 []float32
	f64 []float64
}

func (f floatValues) at(i int) float64 {
	if f.f32 != nil {
		return float64(f.f32[i])
	}
	return f.f64[i]
}

// readValue checks v's shape and dtype and returns its data, row-major (views are copied).
func readValue(v G.Value, want tensor.Shape, name, form string) (floatValues, error) {
	d, ok := v.(*tensor.Dense)
	if !ok || d == nil {
		return floatValues{}, fmt.Errorf("rpn: Proposals: %s is %T, want a *tensor.Dense of shape %v", name, v, want)
	}
	if !d.Shape().Eq(want) {
		if form != "" {
			form = " (" + form + ")"
		}
		return floatValues{}, fmt.Errorf("rpn: Proposals: %s has shape %v, want %v%s", name, d.Shape(), want, form)
	}
	c, err := values.Contiguous(d)
	if err != nil {
		return floatValues{}, fmt.Errorf("rpn: Proposals: %s: %w", name, err)
	}
	if want.TotalSize() == 0 {
		return floatValues{f64: []float64{}}, nil
	}
	switch data := c.Data().(type) {
	case []float32:
		return floatValues{f32: data[:want.TotalSize()]}, nil
	case []float64:
		return floatValues{f64: data[:want.TotalSize()]}, nil
	}
	return floatValues{}, fmt.Errorf("rpn: Proposals: %s has dtype %v; want float32 or float64", name, d.Dtype())
}

// scratchPool keeps workers' buffers between calls (a level's logits and indices are a few MB at
// FPN scale).
var scratchPool = sync.Pool{New: func() any { return new(proposalScratch) }}

// proposalScratch is one worker's reusable buffers.
type proposalScratch struct {
	keys  []float64
	index []int32
	cands candidates
}

// candidates are an image's boxes before NMS, in increasing anchor order.
type candidates struct {
	boxes  [][4]float64
	scores []float64
	levels []int
	anchor []int
}

func (c *candidates) reset() {
	c.boxes, c.scores, c.levels, c.anchor = c.boxes[:0], c.scores[:0], c.levels[:0], c.anchor[:0]
}

func (c *candidates) add(b [4]float64, score float64, level, anchor int) {
	c.boxes = append(c.boxes, b)
	c.scores = append(c.scores, score)
	c.levels = append(c.levels, level)
	c.anchor = append(c.anchor, anchor)
}

// logitAndScore returns anchor n's logit (z, or s_fg - s_bg for Softmax2) and score (sigmoid(z),
// torch.sigmoid's 1/(1 + exp(-z)); or Caffe's softmax exp(s_fg - m)/(exp(s_bg - m) + exp(s_fg - m))
// with m = max(s_bg, s_fg)).
func logitAndScore(kind Objectness, in levelInput, b, n int) (logit, score float64) {
	if kind == Sigmoid {
		z := in.scores.at(in.lay.perAnchor(b, n))
		return z, 1 / (1 + math.Exp(-z))
	}
	bg, fg := in.scores.at(in.lay.perClass(b, n, 0, 2)), in.scores.at(in.lay.perClass(b, n, 1, 2))
	m := max(bg, fg)
	eb, ef := math.Exp(bg-m), math.Exp(fg-m)
	return fg - bg, ef / (eb + ef)
}

// levelLogits appends the level's non-NaN logits of image b to keys and their anchor indices
// n = (y*W + x)*A + a to index, reading the planes directly (no score is computed).
func levelLogits(kind Objectness, in levelInput, b int, keys []float64, index []int32) ([]float64, []int32) {
	plane := in.lay.anchors()
	if kind == Sigmoid {
		if in.scores.f32 != nil {
			return appendLogits(in.lay, in.scores.f32[b*plane:(b+1)*plane], nil, keys, index)
		}
		return appendLogits(in.lay, in.scores.f64[b*plane:(b+1)*plane], nil, keys, index)
	}
	if in.scores.f32 != nil {
		s := in.scores.f32[2*b*plane : 2*(b+1)*plane]
		return appendLogits(in.lay, s[plane:], s[:plane], keys, index)
	}
	s := in.scores.f64[2*b*plane : 2*(b+1)*plane]
	return appendLogits(in.lay, s[plane:], s[:plane], keys, index)
}

// appendLogits reads one image's (A, H, W) planes: the logit fg (Sigmoid, bg nil) or fg - bg.
func appendLogits[T float](lay layout, fg, bg []T, keys []float64, index []int32) ([]float64, []int32) {
	hw := lay.H * lay.W
	for a := 0; a < lay.A; a++ {
		for yx := 0; yx < hw; yx++ {
			z := float64(fg[a*hw+yx])
			if bg != nil {
				z -= float64(bg[a*hw+yx])
			}
			if z != z { // NaN
				continue
			}
			keys = append(keys, z)
			index = append(index, int32(yx*lay.A+a))
		}
	}
	return keys, index
}

// decode returns anchor n's decoded box, clipped to the image.
func decode(cfg ProposalConfig, in levelInput, b, n int, im Image) [4]float64 {
	var d [4]float64
	for k := range d {
		d[k] = in.deltas.at(in.lay.perDelta(b, n, k))
	}
	return box.Clip(cfg.Coder.Decode(in.anchors.Boxes[n], d), im.Height, im.Width, cfg.Coder.PlusOne)
}

func proposeImage(cfg ProposalConfig, in []levelInput, b int, im Image, s *proposalScratch) ImageProposals {
	c := &s.cands
	c.reset()
	if cfg.PerLevel {
		for l, lv := range in {
			// the PreNMSTopN highest logits of the level (ties: lower anchor first), in anchor order
			if n := lv.lay.anchors(); cap(s.keys) < n {
				s.keys, s.index = make([]float64, 0, n), make([]int32, 0, n)
			}
			s.keys, s.index = levelLogits(cfg.Objectness, lv, b, s.keys[:0], s.index[:0])
			top := selectTop(s.keys, s.index, cfg.PreNMSTopN)
			slices.Sort(top)
			for _, i := range top {
				_, score := logitAndScore(cfg.Objectness, lv, b, int(i))
				bx := decode(cfg, lv, b, int(i), im)
				if box.Large(bx, cfg.MinSize, cfg.Coder.PlusOne) && score >= cfg.ScoreThresh {
					c.add(bx, score, l, lv.offset+int(i))
				}
			}
		}
		keep, _ := box.BatchedNMS(c.boxes, c.scores, c.levels, cfg.NMSThresh, cfg.PostNMSTopN, cfg.Coder.PlusOne)
		return c.pick(keep)
	}
	// py-faster-rcnn: decode, clip and filter every anchor, then the best PreNMSTopN, one NMS
	for l, lv := range in {
		for i := 0; i < lv.lay.anchors(); i++ {
			_, score := logitAndScore(cfg.Objectness, lv, b, i)
			if math.IsNaN(score) || score < cfg.ScoreThresh {
				continue
			}
			bx := decode(cfg, lv, b, i, im)
			if box.Large(bx, cfg.MinSize, cfg.Coder.PlusOne) {
				c.add(bx, score, l, lv.offset+i)
			}
		}
	}
	s.keys, s.index = append(s.keys[:0], c.scores...), s.index[:0]
	for k := range c.scores {
		s.index = append(s.index, int32(k))
	}
	top := selectTop(s.keys, s.index, cfg.PreNMSTopN)
	slices.Sort(top)
	var pre candidates
	for _, k := range top {
		pre.add(c.boxes[k], c.scores[k], c.levels[k], c.anchor[k])
	}
	keep, _ := box.NMS(pre.boxes, pre.scores, cfg.NMSThresh, cfg.PostNMSTopN, cfg.Coder.PlusOne)
	return pre.pick(keep)
}

// pick copies the kept candidates, in keep's order.
func (c *candidates) pick(keep []int) ImageProposals {
	p := ImageProposals{Boxes: make([][4]float64, len(keep)), Scores: make([]float64, len(keep)), Levels: make([]int, len(keep))}
	for k, i := range keep {
		p.Boxes[k], p.Scores[k], p.Levels[k] = c.boxes[i], c.scores[i], c.levels[i]
	}
	return p
}

// selectTop reorders index (parallel to keys: index[i] has key keys[i]) so that its first k
// entries are those of the k largest keys, ties by lower index value, and returns them
// (unordered). k <= 0 or >= len means all. Quickselect with a deterministic pseudo-random pivot:
// O(len) expected, the order is a strict total order so equal keys cannot make it quadratic.
func selectTop(keys []float64, index []int32, k int) []int32 {
	n := len(index)
	if k <= 0 || k >= n {
		return index
	}
	lo, hi := 0, n-1
	state := uint64(0x9E3779B97F4A7C15)
	for lo < hi {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		p := lo + int(state%uint64(hi-lo+1))
		keys[p], keys[hi] = keys[hi], keys[p]
		index[p], index[hi] = index[hi], index[p]
		pk, pi := keys[hi], index[hi]
		store := lo
		for i := lo; i < hi; i++ {
			// entry i goes before the pivot: a larger key, or an equal key and a lower index
			if ki := keys[i]; ki > pk || (ki == pk && index[i] < pi) {
				keys[i], keys[store] = keys[store], ki
				index[i], index[store] = index[store], index[i]
				store++
			}
		}
		keys[store], keys[hi] = keys[hi], keys[store]
		index[store], index[hi] = index[hi], index[store]
		switch {
		case store == k-1 || store == k:
			return index[:k]
		case store < k:
			lo = store + 1
		default:
			hi = store - 1
		}
	}
	return index[:k]
}
