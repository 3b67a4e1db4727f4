package main

import (
	"math"
	"sort"

	"github.com/detlab/smoothl1/rpn"
)

// Proposal is a decoded box with its foreground probability.
type Proposal struct {
	Box   [4]float64
	Score float64
}

// Proposals decodes one image's RPN outputs as py-faster-rcnn's proposal layer does: foreground
// probability softmax(s_bg, s_fg)[fg] per anchor, boxes decoded from the deltas and clipped to
// the image, boxes under minSize pixels dropped, the preNMS best kept, NMS at nmsThresh, at
// most postNMS returned, best first. scores is this image's (2A, H, W) slice, deltas its
// (4A, H, W) slice.
func Proposals(an *rpn.Anchors, scores, deltas []float32, imgSize float64, coder rpn.BoxCoder, preNMS, postNMS int, nmsThresh, minSize float64) []Proposal {
	A, H, W := an.A, an.H, an.W
	HW := H * W
	cands := make([]Proposal, 0, len(an.Boxes))
	for n, anchor := range an.Boxes {
		a, yx := n%A, n/A
		bg, fg := float64(scores[a*HW+yx]), float64(scores[(A+a)*HW+yx])
		p := 1 / (1 + math.Exp(bg-fg))
		var d [4]float64
		for k := 0; k < 4; k++ {
			d[k] = float64(deltas[(4*a+k)*HW+yx])
		}
		box := rpn.ClipBox(coder.Decode(anchor, d), imgSize, imgSize, coder.PlusOne)
		if box[2]-box[0]+1 < minSize || box[3]-box[1]+1 < minSize {
			continue
		}
		cands = append(cands, Proposal{Box: box, Score: p})
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Score > cands[j].Score })
	if len(cands) > preNMS {
		cands = cands[:preNMS]
	}
	boxes := make([][4]float64, len(cands))
	sc := make([]float64, len(cands))
	for i, c := range cands {
		boxes[i], sc[i] = c.Box, c.Score
	}
	keep, _ := rpn.NMS(boxes, sc, nmsThresh, postNMS, coder.PlusOne)
	out := make([]Proposal, len(keep))
	for i, k := range keep {
		out[i] = cands[k]
	}
	return out
}

// Recall counts the gt boxes matched by some proposal with IoU >= thresh.
func Recall(gts [][4]float64, props []Proposal, thresh float64, plusOne bool) (found, total int) {
	for _, g := range gts {
		for _, p := range props {
			if rpn.IoU(g, p.Box, plusOne) >= thresh {
				found++
				break
			}
		}
	}
	return found, len(gts)
}
