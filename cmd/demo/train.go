package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/detlab/smoothl1/internal/values"
	"github.com/detlab/smoothl1/rpn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Options are the demo's flags.
type Options struct {
	Steps     int
	Batch     int
	LR        float64
	Sigma     float64
	Seed      int64
	Out       string
	Quiet     bool
	ImageSize int
	HeldOut   int
}

// Summary is written to summary.json.
type Summary struct {
	Steps        int     `json:"steps"`
	Seconds      float64 `json:"seconds"`
	LossFirst    float64 `json:"loss_first"`
	LossLast     float64 `json:"loss_last"`
	RecallBefore float64 `json:"recall_before"`
	RecallAfter  float64 `json:"recall_after"`
	// AP50Before and AP50After are the detector's AP@0.5 per class on the held-out images
	// (two-stage runs only).
	AP50Before map[string]float64 `json:"ap50_before,omitempty"`
	AP50After  map[string]float64 `json:"ap50_after,omitempty"`
	// Diverged says training stopped at step DivergedAt on a non-finite loss or parameter; the
	// other fields then describe the steps before it.
	Diverged   bool `json:"diverged"`
	DivergedAt int  `json:"diverged_at_step,omitempty"`
}

// finite reports whether v is a finite number (not NaN, not ±Inf).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// validate checks the options, naming the flag and its value.
func (o Options) validate() error {
	switch {
	case o.Steps <= 0:
		return fmt.Errorf("demo: -steps must be > 0, got %d", o.Steps)
	case o.Batch <= 0:
		return fmt.Errorf("demo: -batch must be > 0, got %d", o.Batch)
	case !(o.LR > 0) || !finite(o.LR):
		return fmt.Errorf("demo: -lr must be a finite number > 0, got %v", o.LR)
	case !(o.Sigma > 0) || !finite(o.Sigma):
		return fmt.Errorf("demo: -sigma must be a finite number > 0, got %v", o.Sigma)
	case o.HeldOut <= 0:
		return fmt.Errorf("demo: -heldout must be > 0, got %d", o.HeldOut)
	case o.ImageSize < 16:
		return fmt.Errorf("demo: -size must be >= 16, got %d", o.ImageSize)
	}
	return nil
}

// DivergedError is returned when training meets a non-finite loss or parameter.
type DivergedError struct {
	Step   int
	What   string
	LR     float64
	Reason error // gorgonia's NaN watch, when it stopped the run
}

func (e *DivergedError) Error() string {
	s := fmt.Sprintf("demo: training diverged at step %d: %s; try a smaller -lr (now %v)", e.Step, e.What, e.LR)
	if e.Reason != nil {
		s += " (" + e.Reason.Error() + ")"
	}
	return s
}

func (e *DivergedError) Unwrap() error { return e.Reason }

// Metric is one training step's losses: Total, the RPN's Cls and Reg, and the second stage's
// HeadCls and HeadReg (0 in RPN-only runs).
type Metric struct {
	Step                              int
	Total, Cls, Reg, HeadCls, HeadReg float64
}

const (
	topProposals = 50
	recallIoU    = 0.5
)

// anchorsFor fits py-faster-rcnn anchors to the toy objects: base 8 (the stride), ratios 0.5, 1,
// 2, scales 2, 4, 6 → sides of about 16, 32 and 48 pixels at 128x128 (scaled with the image).
func anchorsFor(size, featH, featW int) (*rpn.Anchors, error) {
	scale := float64(size) / 128
	return rpn.NewAnchors(rpn.GenerateAnchors(8, []float64{0.5, 1, 2}, []float64{2 * scale, 4 * scale, 6 * scale}), featH, featW, 8)
}

// session is what both demos share: the data, the backbone and RPN graph for a training batch
// with its target nodes and objective, and the held-out images.
type session struct {
	opts                     Options
	cfg                      rpn.Config
	data                     DataConfig
	trainRng                 *rand.Rand
	params                   *Params
	held                     []Sample
	net                      *Graph
	an                       *rpn.Anchors
	rpnNodes                 *rpn.TargetNodes
	rpnTotal, rpnCls, rpnReg *G.Node
}

func newSession(opts Options) (*session, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	s := &session{opts: opts, cfg: rpn.DefaultConfig(), data: DefaultData(opts.ImageSize)}
	s.cfg.Sigma = opts.Sigma
	s.cfg.Seed = opts.Seed
	s.trainRng = rand.New(rand.NewSource(opts.Seed))
	heldRng := rand.New(rand.NewSource(opts.Seed + 1_000_003)) // another seed: held-out scenes
	s.params = InitParams(rand.New(rand.NewSource(opts.Seed+7)), defaultNet)
	s.held = make([]Sample, opts.HeldOut)
	for i := range s.held {
		s.held[i] = s.data.Generate(heldRng)
	}
	var err error
	if s.net, err = BuildNet(s.params, defaultNet, opts.Batch, opts.ImageSize); err != nil {
		return nil, err
	}
	if s.an, err = anchorsFor(opts.ImageSize, s.net.FeatH, s.net.FeatW); err != nil {
		return nil, err
	}
	if s.rpnNodes, err = rpn.NewTargetNodes(s.net.G, tensor.Float32, opts.Batch, s.an.A, s.an.H, s.an.W, nil); err != nil {
		return nil, err
	}
	if s.rpnTotal, s.rpnCls, s.rpnReg, err = rpn.Loss(s.net.Scores, s.net.Deltas, s.rpnNodes, s.cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// train runs opts.Steps Adam steps on learn, whose gradients of the objective G.Grad has
// added to the graph. Each step draws a batch, binds its RPN targets and images, calls prepare
// (nil: none) to bind whatever else the graph reads, runs, and reads the step's Metric. A
// non-finite loss or parameter, or gorgonia's NaN watch, stops it: it then writes what it has
// (diverged) and returns the DivergedError.
func (s *session) train(learn G.Nodes, prepare func(step int, seed int64, batch []Sample) error, metric func(step int) Metric,
	log io.Writer) (*Summary, []Metric, float64, error) {
	opts := s.opts
	// The NaN watch stops a run whose values went NaN with an error, before gorgonia's backward
	// ops index with them (maxPoolDiffOp panics on a NaN activation).
	m := G.NewTapeMachine(s.net.G, G.BindDualValues(learn...), G.WithNaNWatch())
	defer m.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(opts.LR))
	var bar *progress
	if !opts.Quiet && log != nil {
		bar = newProgress(log, opts.Steps)
	}
	metrics := make([]Metric, 0, opts.Steps)
	start := time.Now()
	for step := 1; step <= opts.Steps; step++ {
		batch := make([]Sample, opts.Batch)
		images := make([]rpn.Image, opts.Batch)
		for i := range batch {
			batch[i] = s.data.Generate(s.trainRng)
			images[i] = rpn.Image{Height: float64(opts.ImageSize), Width: float64(opts.ImageSize), Boxes: batch[i].Boxes}
		}
		s.cfg.Seed = opts.Seed + int64(step)*int64(opts.Batch)
		if err := s.rpnNodes.Assign(s.cfg, s.an, images); err != nil {
			return nil, nil, 0, err
		}
		if prepare != nil {
			if err := prepare(step, s.cfg.Seed, batch); err != nil {
				return nil, nil, 0, err
			}
		}
		if err := G.Let(s.net.X, imagesTensor(batch)); err != nil {
			return nil, nil, 0, err
		}
		if err := m.RunAll(); err != nil {
			if strings.Contains(err.Error(), "NaN found") {
				sum, ms, err := diverged(opts, metrics, &DivergedError{Step: step, What: "a value became NaN", LR: opts.LR, Reason: err})
				return sum, ms, 0, err
			}
			return nil, nil, 0, fmt.Errorf("demo: step %d: %w", step, err)
		}
		mt := metric(step)
		if !finite(mt.Total) {
			sum, ms, err := diverged(opts, metrics, &DivergedError{Step: step, What: fmt.Sprintf("the loss is %v", mt.Total), LR: opts.LR})
			return sum, ms, 0, err
		}
		if err := solver.Step(G.NodesToValueGrads(learn)); err != nil {
			return nil, nil, 0, fmt.Errorf("demo: step %d: solver: %w", step, err)
		}
		metrics = append(metrics, mt)
		if name, ok := finiteParams(learn); !ok {
			sum, ms, err := diverged(opts, metrics, &DivergedError{Step: step, What: "the update made parameter " + name + " non-finite", LR: opts.LR})
			return sum, ms, 0, err
		}
		m.Reset()
		bar.update(step, mt.Total, mt.Cls+mt.HeadCls, mt.Reg+mt.HeadReg)
	}
	return nil, metrics, time.Since(start).Seconds(), nil
}

// finish completes sum (steps, time, losses of the first and last steps) and writes
// metrics.csv, loss.png, proposals.png (four held-out images, proposals before and after) and
// summary.json.
func (s *session) finish(sum *Summary, metrics []Metric, seconds float64, propsBefore, propsAfter [][]Proposal) error {
	k := min(10, max(1, s.opts.Steps/10))
	sum.Steps, sum.Seconds = s.opts.Steps, seconds
	sum.LossFirst, sum.LossLast = meanTotal(metrics[:k]), meanTotal(metrics[len(metrics)-k:])
	if err := writeCSV(filepath.Join(s.opts.Out, "metrics.csv"), metrics); err != nil {
		return err
	}
	if err := plotLosses(filepath.Join(s.opts.Out, "loss.png"), metrics); err != nil {
		return err
	}
	n := min(4, len(s.held))
	if err := drawProposals(filepath.Join(s.opts.Out, "proposals.png"), s.held[:n], propsBefore[:n], propsAfter[:n], 10); err != nil {
		return err
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.opts.Out, "summary.json"), append(b, '\n'), 0o644)
}

// Run trains the toy RPN alone and writes metrics.csv, loss.png, proposals.png and
// summary.json to opts.Out. Progress goes to log (nil: none).
func Run(opts Options, log io.Writer) (*Summary, []Metric, error) {
	s, err := newSession(opts)
	if err != nil {
		return nil, nil, err
	}
	var totalV, clsV, regV G.Value
	G.Read(s.rpnTotal, &totalV)
	G.Read(s.rpnCls, &clsV)
	G.Read(s.rpnReg, &regV)
	if _, err := G.Grad(s.rpnTotal, s.net.Learnables...); err != nil {
		return nil, nil, fmt.Errorf("demo: gradients: %w", err)
	}
	before, propsBefore, err := evaluate(s.params, s.held, s.an, opts)
	if err != nil {
		return nil, nil, err
	}
	metric := func(step int) Metric {
		return Metric{Step: step, Total: scalar(totalV), Cls: scalar(clsV), Reg: scalar(regV)}
	}
	sum, metrics, seconds, err := s.train(s.net.Learnables, nil, metric, log)
	if err != nil {
		return sum, metrics, err
	}
	after, propsAfter, err := evaluate(s.params, s.held, s.an, opts)
	if err != nil {
		return nil, nil, err
	}
	sum = &Summary{RecallBefore: before, RecallAfter: after}
	if err := s.finish(sum, metrics, seconds, propsBefore, propsAfter); err != nil {
		return nil, nil, err
	}
	return sum, metrics, nil
}

// diverged writes what the run has so far (metrics.csv up to the last finite step and a
// summary.json saying where it diverged) and returns err.
func diverged(opts Options, metrics []Metric, err *DivergedError) (*Summary, []Metric, error) {
	sum := &Summary{Steps: len(metrics), Diverged: true, DivergedAt: err.Step}
	if k := min(10, len(metrics)); k > 0 {
		sum.LossFirst, sum.LossLast = meanTotal(metrics[:k]), meanTotal(metrics[len(metrics)-k:])
	}
	if werr := writeCSV(filepath.Join(opts.Out, "metrics.csv"), metrics); werr != nil {
		return nil, metrics, fmt.Errorf("%w; writing metrics.csv: %v", err, werr)
	}
	b, jerr := json.MarshalIndent(sum, "", "  ")
	if jerr == nil {
		jerr = os.WriteFile(filepath.Join(opts.Out, "summary.json"), append(b, '\n'), 0o644)
	}
	if jerr != nil {
		return nil, metrics, fmt.Errorf("%w; writing summary.json: %v", err, jerr)
	}
	return sum, metrics, err
}

// finiteParams reports whether every learnable's value is finite, naming the first that is not.
func finiteParams(learnables G.Nodes) (string, bool) {
	for _, n := range learnables {
		for _, v := range values.Float64s(n.Value()) {
			if !finite(v) {
				return n.Name(), false
			}
		}
	}
	return "", true
}

func meanTotal(ms []Metric) float64 {
	s := 0.0
	for _, m := range ms {
		s += m.Total
	}
	return s / float64(len(ms))
}

func scalar(v G.Value) float64 {
	switch s := v.(type) {
	case *G.F32:
		return float64(*s)
	case *G.F64:
		return float64(*s)
	}
	if v != nil {
		if d, ok := v.Data().(float32); ok {
			return float64(d)
		}
	}
	return 0
}

// evaluate runs the network on the held-out images and returns the recall of their gt boxes at
// IoU 0.5 among the top 50 proposals, and each image's proposals.
func evaluate(params *Params, held []Sample, an *rpn.Anchors, opts Options) (float64, [][]Proposal, error) {
	net, err := BuildNet(params, defaultNet, len(held), opts.ImageSize)
	if err != nil {
		return 0, nil, err
	}
	var scoresV, deltasV G.Value
	G.Read(net.Scores, &scoresV)
	G.Read(net.Deltas, &deltasV)
	if err := G.Let(net.X, imagesTensor(held)); err != nil {
		return 0, nil, err
	}
	m := G.NewTapeMachine(net.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		return 0, nil, fmt.Errorf("demo: evaluation: %w", err)
	}
	scores := scoresV.Data().([]float32)
	deltas := deltasV.Data().([]float32)
	A, HW := an.A, an.H*an.W
	found, total := 0, 0
	props := make([][]Proposal, len(held))
	coder := rpn.PyFasterRCNNCoder()
	for b, s := range held {
		sc := scores[b*2*A*HW : (b+1)*2*A*HW]
		dl := deltas[b*4*A*HW : (b+1)*4*A*HW]
		props[b] = Proposals(an, sc, dl, float64(opts.ImageSize), coder, 600, topProposals, 0.7, 4)
		f, t := Recall(s.Boxes, props[b], recallIoU, true)
		found += f
		total += t
	}
	if total == 0 {
		return 0, props, nil
	}
	return float64(found) / float64(total), props, nil
}

func writeCSV(path string, metrics []Metric) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"step", "total", "cls", "reg", "head_cls", "head_reg"})
	for _, m := range metrics {
		_ = w.Write([]string{strconv.Itoa(m.Step), fmtF(m.Total), fmtF(m.Cls), fmtF(m.Reg), fmtF(m.HeadCls), fmtF(m.HeadReg)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
