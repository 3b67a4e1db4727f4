package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar with step, ETA and the latest losses, redrawn in place
// with a carriage return, at most every 100 ms.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress {
	now := time.Now()
	return &progress{w: w, total: total, start: now}
}

func (p *progress) update(step int, total, cls, reg float64) {
	if p == nil || p.w == nil {
		return
	}
	now := time.Now()
	if step < p.total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	done := width * step / p.total
	elapsed := now.Sub(p.start)
	eta := time.Duration(0)
	if step > 0 {
		eta = time.Duration(float64(elapsed) / float64(step) * float64(p.total-step))
	}
	fmt.Fprintf(p.w, "\r[%s%s] %4d/%d  ETA %5.1fs  total %.4f  cls %.4f  reg %.4f ",
		strings.Repeat("=", done), strings.Repeat(" ", width-done), step, p.total, eta.Seconds(), total, cls, reg)
	if step == p.total {
		fmt.Fprintf(p.w, "\n")
	}
}
