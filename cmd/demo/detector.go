package main

import (
	"fmt"
	"io"
	"math"
	"math/rand"
	"path/filepath"

	"github.com/detlab/smoothl1/box"
	"github.com/detlab/smoothl1/fastrcnn"
	"github.com/detlab/smoothl1/roi"
	"github.com/detlab/smoothl1/rpn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// headShape is the second stage: RoIAlign to pool x pool bins of the backbone's features
// (stride 8), one hidden layer, class logits (K+1) and class-specific deltas 4(K+1).
type headShape struct {
	pool, hidden int
}

var defaultHead = headShape{pool: 5, hidden: 128}

const (
	trainProposals = 300 // RPN proposals per image fed to the head sampler in training
	testProposals  = 50  // and at evaluation
	headRoIs       = 64  // RoIs sampled per image (py-faster-rcnn: 128)
	detectScore    = 0.05
	detectNMS      = 0.3
)

// InitHeadParams makes the head's weights: He-normal hidden layer, output layers small (std
// 0.01 for logits, 0.001 for deltas, as in Faster R-CNN), zero biases.
func InitHeadParams(rng *rand.Rand, c3 int, s headShape) *Params {
	p := &Params{}
	add := func(name string, rows, cols int, std float64) {
		data := make([]float32, rows*cols)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * std)
		}
		p.Names = append(p.Names, name)
		p.Values = append(p.Values, tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data)))
	}
	in := c3 * s.pool * s.pool
	add("fc", in, s.hidden, math.Sqrt(2/float64(in)))
	add("fc_bias", 1, s.hidden, 0)
	add("head_cls", s.hidden, numClasses+1, 0.01)
	add("head_cls_bias", 1, numClasses+1, 0)
	add("head_box", s.hidden, 4*(numClasses+1), 0.001)
	add("head_box_bias", 1, 4*(numClasses+1), 0)
	return p
}

// BuildHead adds the second stage to g: RoIAlign of features at rois (rows, 5), flatten, fully
// connected + ReLU, then logits (rows, K+1) and deltas (rows, 4(K+1)). It returns the head's
// learnable nodes in p's order.
func BuildHead(g *G.ExprGraph, p *Params, s headShape, features, rois *G.Node, rows int) (logits, deltas *G.Node, learn G.Nodes, err error) {
	nodes := map[string]*G.Node{}
	for i, name := range p.Names {
		v := p.Values[i]
		n := G.NewMatrix(g, tensor.Float32, G.WithShape(v.Shape()...), G.WithValue(v), G.WithName(name))
		nodes[name] = n
		learn = append(learn, n)
	}
	pooled, err := roi.Align(features, rois, s.pool, s.pool, roi.WithSpatialScale(1.0/8), roi.WithSamplingRatio(2))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("demo: head: %w", err)
	}
	flat, err := G.Reshape(pooled, tensor.Shape{rows, features.Shape()[1] * s.pool * s.pool})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("demo: head: %w", err)
	}
	dense := func(in *G.Node, w, b string) (*G.Node, error) {
		out, err := G.Mul(in, nodes[w])
		if err != nil {
			return nil, fmt.Errorf("demo: head %s: %w", w, err)
		}
		return G.BroadcastAdd(out, nodes[b], nil, []byte{0})
	}
	hidden, err := dense(flat, "fc", "fc_bias")
	if err != nil {
		return nil, nil, nil, err
	}
	if hidden, err = G.Rectify(hidden); err != nil {
		return nil, nil, nil, err
	}
	if logits, err = dense(hidden, "head_cls", "head_cls_bias"); err != nil {
		return nil, nil, nil, err
	}
	if deltas, err = dense(hidden, "head_box", "head_box_bias"); err != nil {
		return nil, nil, nil, err
	}
	return logits, deltas, learn, nil
}

// headConfig is the second stage's targets and loss: py-faster-rcnn's preset (the seed's
// setting) with faster-rcnn.pytorch's background band [0, 0.5) and headRoIs per image.
func headConfig(seed int64) fastrcnn.Config {
	c := fastrcnn.PyFasterRCNNConfig(numClasses)
	c.BgIoULow = 0
	c.BatchSize = headRoIs
	c.Seed = seed
	return c
}

// batchProposals runs rpn.Proposals (py-faster-rcnn's proposal_layer) on a batch's outputs.
func batchProposals(an *rpn.Anchors, scores, deltas G.Value, n, size, post int) ([][]Proposal, error) {
	cfg := rpn.PyFasterRCNNProposals(false)
	cfg.PreNMSTopN, cfg.PostNMSTopN, cfg.NMSThresh, cfg.MinSize = 600, post, 0.7, 4
	images := make([]rpn.Image, n)
	for i := range images {
		images[i] = rpn.Image{Height: float64(size), Width: float64(size)}
	}
	props, err := rpn.Proposals(cfg, []*rpn.Anchors{an}, []G.Value{scores}, []G.Value{deltas}, images)
	if err != nil {
		return nil, fmt.Errorf("demo: proposals: %w", err)
	}
	out := make([][]Proposal, n)
	for b, p := range props {
		for i := range p.Boxes {
			out[b] = append(out[b], Proposal{Box: p.Boxes[i], Score: p.Scores[i]})
		}
	}
	return out, nil
}

// proposer runs the backbone and RPN forward (no gradients) on a batch, sharing the training
// graph's parameters, to give the proposals the head trains on (approximate joint training:
// proposals are data, as in torchvision and py-faster-rcnn).
type proposer struct {
	net            *Graph
	m              G.VM
	scores, deltas G.Value
}

func newProposer(params *Params, batch, size int) (*proposer, error) {
	net, err := BuildNet(params, defaultNet, batch, size)
	if err != nil {
		return nil, err
	}
	p := &proposer{net: net}
	G.Read(net.Scores, &p.scores)
	G.Read(net.Deltas, &p.deltas)
	p.m = G.NewTapeMachine(net.G)
	return p, nil
}

func (p *proposer) run(an *rpn.Anchors, batch []Sample, post int) ([][]Proposal, error) {
	defer p.m.Reset()
	if err := G.Let(p.net.X, imagesTensor(batch)); err != nil {
		return nil, err
	}
	if err := p.m.RunAll(); err != nil {
		return nil, fmt.Errorf("demo: proposals forward: %w", err)
	}
	return batchProposals(an, p.scores, p.deltas, len(batch), batch[0].Size, post)
}

// Detection is one detected object.
type Detection struct {
	Box   [4]float64
	Class int
	Score float64
}

// detect runs the whole detector on samples: backbone and RPN, the top testProposals
// proposals, the head on them; per class, boxes decoded from the class's deltas (targets were
// normalised by the stds), clipped, scores above detectScore, NMS at detectNMS.
func detect(params, headParams *Params, an *rpn.Anchors, samples []Sample, size int) ([][]Detection, error) {
	n := len(samples)
	net, err := BuildNet(params, defaultNet, n, size)
	if err != nil {
		return nil, err
	}
	var scoresV, deltasV, featV G.Value
	G.Read(net.Scores, &scoresV)
	G.Read(net.Deltas, &deltasV)
	G.Read(net.Features, &featV)
	if err := G.Let(net.X, imagesTensor(samples)); err != nil {
		return nil, err
	}
	m := G.NewTapeMachine(net.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		return nil, fmt.Errorf("demo: detect: %w", err)
	}
	props, err := batchProposals(an, scoresV, deltasV, n, size, testProposals)
	if err != nil {
		return nil, err
	}
	rows := n * testProposals
	roiData := make([]float32, 5*rows)
	for i := 0; i < rows; i++ {
		copy(roiData[5*i:], []float32{0, 0, 0, 1, 1}) // padding
	}
	for b, ps := range props {
		for i, p := range ps {
			r := b*testProposals + i
			copy(roiData[5*r:], []float32{float32(b), float32(p.Box[0]), float32(p.Box[1]), float32(p.Box[2]), float32(p.Box[3])})
		}
	}
	hg := G.NewGraph()
	feat := featV.(*tensor.Dense).Clone().(*tensor.Dense)
	fn := G.NewTensor(hg, tensor.Float32, 4, G.WithShape(feat.Shape()...), G.WithValue(feat), G.WithName("features"))
	rn := G.NewMatrix(hg, tensor.Float32, G.WithShape(rows, 5), G.WithName("rois"),
		G.WithValue(tensor.New(tensor.WithShape(rows, 5), tensor.WithBacking(roiData))))
	logits, deltas, _, err := BuildHead(hg, headParams, defaultHead, fn, rn, rows)
	if err != nil {
		return nil, err
	}
	var logitsV, boxV G.Value
	G.Read(logits, &logitsV)
	G.Read(deltas, &boxV)
	hm := G.NewTapeMachine(hg)
	defer hm.Close()
	if err := hm.RunAll(); err != nil {
		return nil, fmt.Errorf("demo: detect head: %w", err)
	}
	lg, dl := logitsV.Data().([]float32), boxV.Data().([]float32)
	cfg := headConfig(0)
	K1 := numClasses + 1
	out := make([][]Detection, n)
	for b, ps := range props {
		for c := 1; c <= numClasses; c++ {
			var boxes [][4]float64
			var scores []float64
			for i, p := range ps {
				r := b*testProposals + i
				prob := softmaxAt(lg[r*K1:(r+1)*K1], c)
				if prob < detectScore {
					continue
				}
				var d [4]float64
				for k := 0; k < 4; k++ {
					d[k] = float64(dl[r*4*K1+4*c+k])*cfg.Stds[k] + cfg.Means[k]
				}
				boxes = append(boxes, box.Clip(cfg.Coder.Decode(p.Box, d), float64(size), float64(size), true))
				scores = append(scores, prob)
			}
			keep, err := box.NMS(boxes, scores, detectNMS, 0, true)
			if err != nil {
				return nil, fmt.Errorf("demo: detect: %w", err)
			}
			for _, k := range keep {
				out[b] = append(out[b], Detection{Box: boxes[k], Class: c, Score: scores[k]})
			}
		}
	}
	return out, nil
}

// softmaxAt is softmax(z)[c], computed stably.
func softmaxAt(z []float32, c int) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	s := 0.0
	for _, v := range z {
		s += math.Exp(float64(v) - m)
	}
	return math.Exp(float64(z[c])-m) / s
}

// AP50 is the average precision at IoU 0.5 of class c over the samples (PASCAL VOC's all-point
// interpolated AP, +1 pixel IoU): detections by decreasing score, each a true positive if it
// overlaps an unmatched gt of class c at IoU >= 0.5; AP = Σ (r_k - r_{k-1}) max_{j >= k} p_j.
// A class without gt has AP 0.
func AP50(samples []Sample, dets [][]Detection, c int) float64 {
	type scored struct {
		img   int
		det   Detection
		order int
	}
	var all []scored
	numGT := 0
	for b, s := range samples {
		for _, l := range s.Labels {
			if l == c {
				numGT++
			}
		}
		for _, d := range dets[b] {
			if d.Class == c {
				all = append(all, scored{b, d, len(all)})
			}
		}
	}
	if numGT == 0 {
		return 0
	}
	// by decreasing score, ties by detection order (stable)
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && all[j].det.Score > all[j-1].det.Score; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	used := make([][]bool, len(samples))
	for b, s := range samples {
		used[b] = make([]bool, len(s.Boxes))
	}
	prec := make([]float64, len(all))
	rec := make([]float64, len(all))
	tp := 0
	for k, a := range all {
		best, arg := 0.0, -1
		for j, g := range samples[a.img].Boxes {
			if samples[a.img].Labels[j] != c {
				continue
			}
			if v := box.IoU(a.det.Box, g, true); v > best {
				best, arg = v, j
			}
		}
		if best >= 0.5 && !used[a.img][arg] {
			used[a.img][arg] = true
			tp++
		}
		prec[k] = float64(tp) / float64(k+1)
		rec[k] = float64(tp) / float64(numGT)
	}
	ap, prevRec := 0.0, 0.0
	for k := range all {
		pmax := 0.0
		for j := k; j < len(all); j++ {
			pmax = math.Max(pmax, prec[j])
		}
		ap += (rec[k] - prevRec) * pmax
		prevRec = rec[k]
	}
	return ap
}

// apPerClass is AP50 for each class, keyed by name.
func apPerClass(samples []Sample, dets [][]Detection) map[string]float64 {
	out := map[string]float64{}
	for c := 1; c <= numClasses; c++ {
		out[classNames[c]] = AP50(samples, dets, c)
	}
	return out
}

// RunDetector trains the two-stage detector (backbone, RPN, rpn.Proposals, roi.Align, a small
// head, fastrcnn.Objective) and writes metrics.csv, loss.png, proposals.png, detections.png and
// summary.json (with "ap50_before" and "ap50_after") to opts.Out. Progress goes to log (nil:
// none).
func RunDetector(opts Options, log io.Writer) (*Summary, []Metric, error) {
	s, err := newSession(opts)
	if err != nil {
		return nil, nil, err
	}
	headParams := InitHeadParams(rand.New(rand.NewSource(opts.Seed+11)), defaultNet.c3, defaultHead)
	rows := opts.Batch * headRoIs
	headNodes, err := fastrcnn.NewTargetNodes(s.net.G, tensor.Float32, rows, headConfig(opts.Seed), nil)
	if err != nil {
		return nil, nil, err
	}
	rois, err := headNodes.RoIs()
	if err != nil {
		return nil, nil, err
	}
	logits, deltas, headLearn, err := BuildHead(s.net.G, headParams, defaultHead, s.net.Features, rois, rows)
	if err != nil {
		return nil, nil, err
	}
	total, headCls, headReg, err := fastrcnn.Objective(s.rpnTotal, logits, deltas, headNodes)
	if err != nil {
		return nil, nil, err
	}
	learn := append(append(G.Nodes{}, s.net.Learnables...), headLearn...)
	var totalV, rpnClsV, rpnRegV, headClsV, headRegV G.Value
	G.Read(total, &totalV)
	G.Read(s.rpnCls, &rpnClsV)
	G.Read(s.rpnReg, &rpnRegV)
	G.Read(headCls, &headClsV)
	G.Read(headReg, &headRegV)
	if _, err := G.Grad(total, learn...); err != nil {
		return nil, nil, fmt.Errorf("demo: gradients: %w", err)
	}
	prop, err := newProposer(s.params, opts.Batch, opts.ImageSize)
	if err != nil {
		return nil, nil, err
	}
	defer prop.m.Close()

	detsBefore, err := detect(s.params, headParams, s.an, s.held, opts.ImageSize)
	if err != nil {
		return nil, nil, err
	}
	recallBefore, propsBefore, err := evaluate(s.params, s.held, s.an, opts)
	if err != nil {
		return nil, nil, err
	}
	// before each step: the current network's proposals for the batch, and the head's targets
	prepare := func(step int, seed int64, batch []Sample) error {
		props, err := prop.run(s.an, batch, trainProposals)
		if err != nil {
			return err
		}
		images := make([]fastrcnn.Image, len(batch))
		for i, b := range batch {
			images[i] = fastrcnn.Image{Boxes: b.Boxes, Labels: b.Labels}
			for _, p := range props[i] {
				images[i].Proposals = append(images[i].Proposals, p.Box)
			}
		}
		tg, err := fastrcnn.SampleTargets(headConfig(seed), images)
		if err != nil {
			return fmt.Errorf("demo: step %d: %w", step, err)
		}
		return headNodes.Set(tg)
	}
	metric := func(step int) Metric {
		return Metric{Step: step, Total: scalar(totalV), Cls: scalar(rpnClsV), Reg: scalar(rpnRegV),
			HeadCls: scalar(headClsV), HeadReg: scalar(headRegV)}
	}
	sum, metrics, seconds, err := s.train(learn, prepare, metric, log)
	if err != nil {
		return sum, metrics, err
	}
	detsAfter, err := detect(s.params, headParams, s.an, s.held, opts.ImageSize)
	if err != nil {
		return nil, nil, err
	}
	recallAfter, propsAfter, err := evaluate(s.params, s.held, s.an, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := drawDetections(filepath.Join(opts.Out, "detections.png"), s.held[:min(8, len(s.held))], detsAfter, 0.5); err != nil {
		return nil, nil, err
	}
	sum = &Summary{RecallBefore: recallBefore, RecallAfter: recallAfter,
		AP50Before: apPerClass(s.held, detsBefore), AP50After: apPerClass(s.held, detsAfter)}
	if err := s.finish(sum, metrics, seconds, propsBefore, propsAfter); err != nil {
		return nil, nil, err
	}
	return sum, metrics, nil
}
