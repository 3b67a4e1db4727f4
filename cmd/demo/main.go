// Command demo trains a toy Region Proposal Network on synthetic images with gorgonia, the rpn
// objective and the fused Smooth L1 op, and writes metrics.csv, loss.png, proposals.png and
// summary.json.
//
//	go run ./cmd/demo [-steps 300] [-batch 4] [-lr 0.003] [-sigma 3] [-seed 1] [-out ./demo-out] [-quiet]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o Options
	flag.IntVar(&o.Steps, "steps", 300, "training steps")
	flag.IntVar(&o.Batch, "batch", 4, "images per step")
	flag.Float64Var(&o.LR, "lr", 0.003, "Adam learning rate")
	flag.Float64Var(&o.Sigma, "sigma", 3, "Smooth L1 sigma (beta = 1/sigma^2)")
	flag.Int64Var(&o.Seed, "seed", 1, "seed of data, initialisation and sampling")
	flag.StringVar(&o.Out, "out", "./demo-out", "output directory")
	flag.BoolVar(&o.Quiet, "quiet", false, "no progress bar")
	flag.IntVar(&o.ImageSize, "size", 128, "image side in pixels (a multiple of 8)")
	flag.IntVar(&o.HeldOut, "heldout", 16, "held-out images for recall")
	flag.Parse()

	sum, _, err := Run(o, os.Stderr)
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
	fmt.Printf("wrote %s/{metrics.csv,loss.png,proposals.png,summary.json}\n", o.Out)
}
