package main

import (
	"fmt"
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
	p.Title.Text = "training loss"
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
	if len(metrics) > 0 && metrics[0].HeadCls != 0 {
		series[1].name, series[2].name = "rpn cls", "rpn reg"
		series = append(series, series[1], series[1])
		series[3].name, series[3].get, series[3].c = "head cls", func(m Metric) float64 { return m.HeadCls }, color.RGBA{44, 160, 44, 255}
		series[4].name, series[4].get, series[4].c = "head reg", func(m Metric) float64 { return m.HeadReg }, color.RGBA{148, 103, 189, 255}
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
			drawScene(img, s, ox, oy, zoom)
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
	return savePNG(path, img)
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

// drawDetections renders held-out images side by side (two rows) with their gt boxes in green and
// the detections scoring at least minScore: rectangles in orange, ellipses in blue, each labelled
// with its class letter (R or E) and score.
func drawDetections(path string, samples []Sample, dets [][]Detection, minScore float64) error {
	const zoom, gap = 3, 10
	n := samples[0].Size * zoom
	cols := (len(samples) + 1) / 2
	rows := min(2, len(samples))
	img := image.NewRGBA(image.Rect(0, 0, cols*(n+gap)+gap, rows*(n+gap)+gap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	classColor := [numClasses + 1]color.RGBA{{}, {255, 140, 0, 255}, {40, 110, 255, 255}}
	for i, s := range samples {
		ox, oy := gap+(i%cols)*(n+gap), gap+(i/cols)*(n+gap)
		drawScene(img, s, ox, oy, zoom)
		for _, b := range s.Boxes {
			rect(img, b, ox, oy, zoom, color.RGBA{20, 220, 40, 255})
		}
		for _, d := range dets[i] {
			if d.Score < minScore {
				continue
			}
			c := classColor[d.Class]
			rect(img, d.Box, ox, oy, zoom, c)
			label := fmt.Sprintf("%s%.2f", map[int]string{ClassRectangle: "R", ClassEllipse: "E"}[d.Class], d.Score)
			tx := ox + int(d.Box[0])*zoom + 1
			ty := oy + int(d.Box[1])*zoom + 2
			drawText(img, label, tx, ty, c, image.Rect(ox, oy, ox+n, oy+n))
		}
	}
	return savePNG(path, img)
}

// glyphs is a 3x5 pixel font for the labels: each row of a glyph is 3 bits, top row first.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1},
	'8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7}, '.': {0, 0, 0, 0, 2}, 'R': {6, 5, 6, 5, 5},
	'E': {7, 4, 6, 4, 7},
}

// drawText writes s at (x, y) in the 3x5 font scaled 2x, on a dark backing for contrast, inside clip.
func drawText(img *image.RGBA, s string, x, y int, c color.RGBA, clip image.Rectangle) {
	const scale = 2
	set := func(px, py int, col color.RGBA) {
		if (image.Point{px, py}).In(clip) {
			img.Set(px, py, col)
		}
	}
	w := len(s) * 4 * scale
	for py := y - 1; py < y+5*scale+1; py++ {
		for px := x - 1; px < x+w; px++ {
			set(px, py, color.RGBA{0, 0, 0, 255})
		}
	}
	for i, r := range s {
		g := glyphs[r]
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row]>>(2-col)&1 == 1 {
					for dy := 0; dy < scale; dy++ {
						for dx := 0; dx < scale; dx++ {
							set(x+(4*i+col)*scale+dx, y+row*scale+dy, c)
						}
					}
				}
			}
		}
	}
}

// drawScene draws sample s in grey levels (its range stretched), zoomed, at (ox, oy).
func drawScene(img *image.RGBA, s Sample, ox, oy, zoom int) {
	n := s.Size * zoom
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
}

func savePNG(path string, img image.Image) error {
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
