package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotLosses draws the total, classification and regression losses against the step.
func plotLosses(path string, metrics []Metric) error {
	p := plot.New()
	p.Title.Text = "RPN training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{}
	series := []struct {
		name string
		get  func(Metric) float64
		c    color.RGBA
	}{
		{"total", func(m Metric) float64 { return m.Total }, color.RGBA{0, 0, 0, 255}},
		{"cls", func(m Metric) float64 { return m.Cls }, color.RGBA{31, 119, 180, 255}},
		{"reg", func(m Metric) float64 { return m.Reg }, color.RGBA{214, 39, 40, 255}},
	}
	for _, s := range series {
		pts := make(plotter.XYs, len(metrics))
		for i, m := range metrics {
			// a log axis needs positive values; a zero loss is drawn at 1e-6
			pts[i].X, pts[i].Y = float64(m.Step), math.Max(s.get(m), 1e-6)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = s.c
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}

// drawProposals renders each held-out image twice, before training (left) and after (right),
// with the gt boxes in green and the top proposals in red (brighter = higher score).
func drawProposals(path string, samples []Sample, before, after [][]Proposal, top int) error {
	const zoom, gap = 2, 8
	n := samples[0].Size * zoom
	img := image.NewRGBA(image.Rect(0, 0, 2*n+3*gap, len(samples)*(n+gap)+gap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for r, s := range samples {
		for c, props := range [][]Proposal{before[r], after[r]} {
			ox, oy := gap+c*(n+gap), gap+r*(n+gap)
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, v := range s.Pixels {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			for y := 0; y < n; y++ {
				for x := 0; x < n; x++ {
					v := (s.Pixels[(y/zoom)*s.Size+x/zoom] - lo) / (hi - lo)
					g := uint8(40 + 180*v)
					img.Set(ox+x, oy+y, color.RGBA{g, g, g, 255})
				}
			}
			k := min(top, len(props))
			for i := k - 1; i >= 0; i-- {
				shade := uint8(255 - 150*i/max(1, k))
				rect(img, props[i].Box, ox, oy, zoom, color.RGBA{shade, 30, 30, 255})
			}
			for _, b := range s.Boxes {
				rect(img, b, ox, oy, zoom, color.RGBA{20, 220, 40, 255})
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func rect(img *image.RGBA, b [4]float64, ox, oy, zoom int, c color.RGBA) {
	x1, y1 := ox+int(b[0])*zoom, oy+int(b[1])*zoom
	x2, y2 := ox+int(b[2]+1)*zoom-1, oy+int(b[3]+1)*zoom-1
	clip := image.Rect(ox, oy, ox+img.Bounds().Dx(), oy+img.Bounds().Dy())
	set := func(x, y int) {
		if (image.Point{x, y}).In(clip) {
			img.Set(x, y, c)
		}
	}
	for x := x1; x <= x2; x++ {
		set(x, y1)
		set(x, y2)
	}
	for y := y1; y <= y2; y++ {
		set(x1, y)
		set(x2, y)
	}
}
