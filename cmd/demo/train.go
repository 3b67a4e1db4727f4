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

// Metric is one training step's losses.
type Metric struct {
	Step            int
	Total, Cls, Reg float64
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

// Run trains the toy RPN and writes metrics.csv, loss.png, proposals.png and summary.json to
// opts.Out. Progress goes to log (nil: none).
func Run(opts Options, log io.Writer) (*Summary, []Metric, error) {
	if err := opts.validate(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, nil, err
	}
	cfg := rpn.DefaultConfig()
	cfg.Sigma = opts.Sigma
	cfg.Seed = opts.Seed
	data := DefaultData(opts.ImageSize)
	trainRng := rand.New(rand.NewSource(opts.Seed))
	heldRng := rand.New(rand.NewSource(opts.Seed + 1_000_003)) // another seed: held-out scenes
	params := InitParams(rand.New(rand.NewSource(opts.Seed+7)), defaultNet)

	held := make([]Sample, opts.HeldOut)
	for i := range held {
		held[i] = data.Generate(heldRng)
	}

	net, err := BuildNet(params, defaultNet, opts.Batch, opts.ImageSize)
	if err != nil {
		return nil, nil, err
	}
	an, err := anchorsFor(opts.ImageSize, net.FeatH, net.FeatW)
	if err != nil {
		return nil, nil, err
	}
	tn, err := rpn.NewTargetNodes(net.G, tensor.Float32, opts.Batch, an.A, an.H, an.W, nil)
	if err != nil {
		return nil, nil, err
	}
	total, cls, reg, err := rpn.Loss(net.Scores, net.Deltas, tn, cfg)
	if err != nil {
		return nil, nil, err
	}
	var totalV, clsV, regV G.Value
	G.Read(total, &totalV)
	G.Read(cls, &clsV)
	G.Read(reg, &regV)
	if _, err := G.Grad(total, net.Learnables...); err != nil {
		return nil, nil, fmt.Errorf("demo: gradients: %w", err)
	}

	before, propsBefore, err := evaluate(params, held, an, opts)
	if err != nil {
		return nil, nil, err
	}

	// The NaN watch stops a run whose values went NaN with an error, before gorgonia's backward
	// ops index with them (maxPoolDiffOp panics on a NaN activation).
	m := G.NewTapeMachine(net.G, G.BindDualValues(net.Learnables...), G.WithNaNWatch())
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
			batch[i] = data.Generate(trainRng)
			images[i] = rpn.Image{Height: float64(opts.ImageSize), Width: float64(opts.ImageSize), Boxes: batch[i].Boxes}
		}
		cfg.Seed = opts.Seed + int64(step)*int64(opts.Batch)
		tg, err := rpn.AssignTargets(cfg, an, images)
		if err != nil {
			return nil, nil, err
		}
		if err := tn.Set(tg); err != nil {
			return nil, nil, err
		}
		if err := G.Let(net.X, imagesTensor(batch)); err != nil {
			return nil, nil, err
		}
		if err := m.RunAll(); err != nil {
			if strings.Contains(err.Error(), "NaN found") {
				return diverged(opts, metrics, &DivergedError{Step: step, What: "a value became NaN", LR: opts.LR, Reason: err})
			}
			return nil, nil, fmt.Errorf("demo: step %d: %w", step, err)
		}
		mt := Metric{Step: step, Total: scalar(totalV), Cls: scalar(clsV), Reg: scalar(regV)}
		if !finite(mt.Total) {
			return diverged(opts, metrics, &DivergedError{Step: step, What: fmt.Sprintf("the loss is %v", mt.Total), LR: opts.LR})
		}
		if err := solver.Step(G.NodesToValueGrads(net.Learnables)); err != nil {
			return nil, nil, fmt.Errorf("demo: step %d: solver: %w", step, err)
		}
		metrics = append(metrics, mt)
		if name, ok := finiteParams(net.Learnables); !ok {
			return diverged(opts, metrics, &DivergedError{Step: step, What: "the update made parameter " + name + " non-finite", LR: opts.LR})
		}
		m.Reset()
		bar.update(step, mt.Total, mt.Cls, mt.Reg)
	}
	seconds := time.Since(start).Seconds()

	after, propsAfter, err := evaluate(params, held, an, opts)
	if err != nil {
		return nil, nil, err
	}
	k := min(10, max(1, opts.Steps/10))
	sum := &Summary{Steps: opts.Steps, Seconds: seconds,
		LossFirst: meanTotal(metrics[:k]), LossLast: meanTotal(metrics[len(metrics)-k:]),
		RecallBefore: before, RecallAfter: after}

	if err := writeCSV(filepath.Join(opts.Out, "metrics.csv"), metrics); err != nil {
		return nil, nil, err
	}
	if err := plotLosses(filepath.Join(opts.Out, "loss.png"), metrics); err != nil {
		return nil, nil, err
	}
	n := min(4, len(held))
	if err := drawProposals(filepath.Join(opts.Out, "proposals.png"), held[:n], propsBefore[:n], propsAfter[:n], 10); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.Out, "summary.json"), append(b, '\n'), 0o644); err != nil {
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
	_ = w.Write([]string{"step", "total", "cls", "reg"})
	for _, m := range metrics {
		_ = w.Write([]string{strconv.Itoa(m.Step), fmtF(m.Total), fmtF(m.Cls), fmtF(m.Reg)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
