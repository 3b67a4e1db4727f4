package main

import (
	"github.com/detlab/smoothl1/box"
	"github.com/detlab/smoothl1/rpn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Proposal is a decoded box with its foreground probability.
type Proposal struct {
	Box   [4]float64
	Score float64
}

// Proposals decodes one image's RPN outputs with the library's rpn.Proposals in
// py-faster-rcnn's form (proposal_layer): softmax foreground probabilities, boxes decoded,
// clipped to the image and filtered at minSize pixels (+1 widths), the preNMS best kept, NMS at
// nmsThresh, at most postNMS returned, best first. scores is this image's (2A, H, W) slice,
// deltas its (4A, H, W) slice. It returns nil when rpn.Proposals rejects the input.
func Proposals(an *rpn.Anchors, scores, deltas []float32, imgSize float64, coder rpn.BoxCoder, preNMS, postNMS int, nmsThresh, minSize float64) []Proposal {
	cfg := rpn.PyFasterRCNNProposals(false)
	cfg.Coder = coder
	cfg.PreNMSTopN, cfg.PostNMSTopN, cfg.NMSThresh, cfg.MinSize = preNMS, postNMS, nmsThresh, minSize
	s := tensor.New(tensor.WithShape(1, 2*an.A, an.H, an.W), tensor.WithBacking(scores))
	d := tensor.New(tensor.WithShape(1, 4*an.A, an.H, an.W), tensor.WithBacking(deltas))
	props, err := rpn.Proposals(cfg, []*rpn.Anchors{an}, []G.Value{s}, []G.Value{d}, []rpn.Image{{Height: imgSize, Width: imgSize}})
	if err != nil {
		return nil
	}
	out := make([]Proposal, len(props[0].Boxes))
	for i := range out {
		out[i] = Proposal{Box: props[0].Boxes[i], Score: props[0].Scores[i]}
	}
	return out
}

// Recall counts the gt boxes matched by some proposal with IoU >= thresh.
func Recall(gts [][4]float64, props []Proposal, thresh float64, plusOne bool) (found, total int) {
	for _, g := range gts {
		for _, p := range props {
			if box.IoU(g, p.Box, plusOne) >= thresh {
				found++
				break
			}
		}
	}
	return found, len(gts)
}
