// Command demo trains a toy two-stage detector (Faster R-CNN: backbone, RPN, rpn.Proposals,
// roi.Align, a small box head, fastrcnn.Objective) on synthetic images of rectangles and
// ellipses with gorgonia, and writes metrics.csv, loss.png, proposals.png, detections.png and
// summary.json (with AP@0.5 per class before and after training). With -rpn-only it trains the
// RPN alone, as before.
//
//	go run ./cmd/demo [-steps 400] [-batch 4] [-lr 0.003] [-sigma 3] [-seed 1] [-out ./demo-out] [-quiet] [-rpn-only]
package main

import (
	"flag"
	"fmt"
	"os"
)

// Default training steps of the two modes.
const (
	detectorSteps = 400
	rpnSteps      = 300
)

func main() {
	var o Options
	flag.IntVar(&o.Steps, "steps", 0, "training steps (default 400 for the detector, 300 with -rpn-only)")
	flag.IntVar(&o.Batch, "batch", 4, "images per step")
	flag.Float64Var(&o.LR, "lr", 0.003, "Adam learning rate")
	flag.Float64Var(&o.Sigma, "sigma", 3, "Smooth L1 sigma (beta = 1/sigma^2)")
	flag.Int64Var(&o.Seed, "seed", 1, "seed of data, initialisation and sampling")
	flag.StringVar(&o.Out, "out", "./demo-out", "output directory")
	flag.BoolVar(&o.Quiet, "quiet", false, "no progress bar")
	flag.IntVar(&o.ImageSize, "size", 128, "image side in pixels (a multiple of 8)")
	flag.IntVar(&o.HeldOut, "heldout", 16, "held-out images for recall")
	rpnOnly := flag.Bool("rpn-only", false, "train the RPN alone (the first stage), as before the two-stage detector")
	flag.Parse()

	stepsSet := false
	flag.Visit(func(f *flag.Flag) { stepsSet = stepsSet || f.Name == "steps" })
	run := RunDetector
	if !stepsSet {
		o.Steps = detectorSteps
	}
	if *rpnOnly {
		run = Run
		if !stepsSet {
			o.Steps = rpnSteps
		}
	}
	sum, _, err := run(o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if sum != nil && sum.Diverged {
			fmt.Fprintf(os.Stderr, "wrote %s/{metrics.csv,summary.json} (%d steps with a finite loss)\n", o.Out, sum.Steps)
		}
		os.Exit(1)
	}
	fmt.Printf("trained %d steps in %.1fs\n", sum.Steps, sum.Seconds)
	fmt.Printf("loss   %.4f -> %.4f (%.0f%% of the first steps)\n", sum.LossFirst, sum.LossLast, 100*sum.LossLast/sum.LossFirst)
	fmt.Printf("recall %.2f -> %.2f (gt boxes found at IoU 0.5 among the top %d proposals, %d held-out images)\n",
		sum.RecallBefore, sum.RecallAfter, topProposals, o.HeldOut)
	if *rpnOnly {
		fmt.Printf("wrote %s/{metrics.csv,loss.png,proposals.png,summary.json}\n", o.Out)
		return
	}
	for _, c := range []string{"rectangle", "ellipse"} {
		fmt.Printf("AP@0.5 %-9s %.2f -> %.2f (%d held-out images)\n", c, sum.AP50Before[c], sum.AP50After[c], o.HeldOut)
	}
	fmt.Printf("wrote %s/{metrics.csv,loss.png,proposals.png,detections.png,summary.json}\n", o.Out)
}
