package main

import (
	"fmt"
	"math"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Net is a small convolutional backbone to stride 8 and an RPN head:
//
//	conv3x3(1→c1) ReLU maxpool2 → conv3x3(c1→c2) ReLU maxpool2 → conv3x3(c2→c3) ReLU maxpool2
//	→ head conv3x3(c3→c3) ReLU → 1x1 conv → 2A objectness scores, 1x1 conv → 4A box deltas
//
// Parameters live in Params (tensors owned by the demo) so that a training graph and an
// inference graph of another batch size can share them.
type Params struct {
	Names  []string
	Values []*tensor.Dense
}

type netShape struct {
	c1, c2, c3, anchors int
}

var defaultNet = netShape{c1: 8, c2: 16, c3: 32, anchors: 9}

// InitParams makes He-normal conv weights from rng; the output layers start small (std 0.01 for
// scores, 0.001 for deltas, as in Faster R-CNN) with zero biases.
func InitParams(rng *rand.Rand, s netShape) *Params {
	p := &Params{}
	add := func(name string, shape []int, std float64) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * std)
		}
		p.Names = append(p.Names, name)
		p.Values = append(p.Values, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data)))
	}
	he := func(fanIn int) float64 { return math.Sqrt(2 / float64(fanIn)) }
	add("conv1", []int{s.c1, 1, 3, 3}, he(9))
	add("conv2", []int{s.c2, s.c1, 3, 3}, he(9*s.c1))
	add("conv3", []int{s.c3, s.c2, 3, 3}, he(9*s.c2))
	add("head", []int{s.c3, s.c3, 3, 3}, he(9*s.c3))
	add("head_bias", []int{1, s.c3, 1, 1}, 0)
	add("cls", []int{2 * s.anchors, s.c3, 1, 1}, 0.01)
	add("cls_bias", []int{1, 2 * s.anchors, 1, 1}, 0)
	add("box", []int{4 * s.anchors, s.c3, 1, 1}, 0.001)
	add("box_bias", []int{1, 4 * s.anchors, 1, 1}, 0)
	return p
}

// Graph is one built network: input, outputs and the learnable nodes (in Params order).
type Graph struct {
	G             *G.ExprGraph
	X             *G.Node
	Features      *G.Node // backbone output (B, c3, H/8, W/8), the second stage's input
	Scores        *G.Node // (B, 2A, H/8, W/8)
	Deltas        *G.Node // (B, 4A, H/8, W/8)
	Learnables    G.Nodes
	Batch, Size   int
	FeatH, FeatW  int
	AnchorsPerPos int
}

// BuildNet builds the network for a batch of size x size grey images, bound to p's values.
func BuildNet(p *Params, s netShape, batch, size int) (*Graph, error) {
	if size%8 != 0 {
		return nil, fmt.Errorf("demo: image size %d is not a multiple of 8", size)
	}
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(batch, 1, size, size), G.WithName("x"))
	nodes := make(map[string]*G.Node, len(p.Names))
	var learn G.Nodes
	for i, name := range p.Names {
		v := p.Values[i]
		n := G.NewTensor(g, tensor.Float32, 4, G.WithShape(v.Shape()...), G.WithValue(v), G.WithName(name))
		nodes[name] = n
		learn = append(learn, n)
	}
	conv := func(in *G.Node, w string, k int) (*G.Node, error) {
		pad := k / 2
		return G.Conv2d(in, nodes[w], tensor.Shape{k, k}, []int{pad, pad}, []int{1, 1}, []int{1, 1})
	}
	addBias := func(in *G.Node, b string) (*G.Node, error) {
		return G.BroadcastAdd(in, nodes[b], nil, []byte{0, 2, 3})
	}
	h := x
	var err error
	for _, w := range []string{"conv1", "conv2", "conv3"} {
		if h, err = conv(h, w, 3); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", w, err)
		}
		if h, err = G.Rectify(h); err != nil {
			return nil, err
		}
		if h, err = G.MaxPool2D(h, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}); err != nil {
			return nil, err
		}
	}
	features := h
	if h, err = conv(h, "head", 3); err != nil {
		return nil, err
	}
	if h, err = addBias(h, "head_bias"); err != nil {
		return nil, fmt.Errorf("demo: head bias: %w", err)
	}
	if h, err = G.Rectify(h); err != nil {
		return nil, err
	}
	scores, err := conv(h, "cls", 1)
	if err != nil {
		return nil, err
	}
	if scores, err = addBias(scores, "cls_bias"); err != nil {
		return nil, err
	}
	deltas, err := conv(h, "box", 1)
	if err != nil {
		return nil, err
	}
	if deltas, err = addBias(deltas, "box_bias"); err != nil {
		return nil, err
	}
	return &Graph{G: g, X: x, Features: features, Scores: scores, Deltas: deltas, Learnables: learn, Batch: batch, Size: size,
		FeatH: size / 8, FeatW: size / 8, AnchorsPerPos: s.anchors}, nil
}

// imagesTensor packs samples into a (B, 1, S, S) float32 tensor.
func imagesTensor(samples []Sample) *tensor.Dense {
	n := samples[0].Size
	data := make([]float32, len(samples)*n*n)
	for b, s := range samples {
		for i, v := range s.Pixels {
			data[b*n*n+i] = float32(v)
		}
	}
	return tensor.New(tensor.WithShape(len(samples), 1, n, n), tensor.WithBacking(data))
}
