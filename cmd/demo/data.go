package main

import (
	"math"
	"math/rand"
)

// Sample is one synthetic grey image (row-major, Size x Size, values around 0), its gt boxes and
// their classes (ClassRectangle or ClassEllipse).
type Sample struct {
	Size   int
	Pixels []float64
	Boxes  [][4]float64
	Labels []int
}

// The two object classes of the scenes, as the second stage's labels (0 is background).
const (
	ClassRectangle = 1
	ClassEllipse   = 2
	numClasses     = 2
)

// classNames are the classes' names in summary.json, by label.
var classNames = [numClasses + 1]string{"background", "rectangle", "ellipse"}

// DataConfig describes the synthetic scenes.
type DataConfig struct {
	Size             int     // image side in pixels
	MinObjects       int     // objects per image, inclusive range
	MaxObjects       int     //
	MinSide, MaxSide float64 // object side range in pixels
	Noise            float64 // background noise standard deviation
}

// DefaultData is 128x128 images with 1-4 objects of 12-44 pixels.
func DefaultData(size int) DataConfig {
	scale := float64(size) / 128
	return DataConfig{Size: size, MinObjects: 1, MaxObjects: 4, MinSide: 12 * scale, MaxSide: 44 * scale, Noise: 0.25}
}

// Generate draws one scene from rng: a noisy background with a slow gradient, then 1-4
// rectangles or ellipses ("blobs") of random size, aspect and intensity (bright or dark). Objects
// may overlap by at most half of the smaller one's area, so every box stays visible.
func (c DataConfig) Generate(rng *rand.Rand) Sample {
	n := c.Size
	px := make([]float64, n*n)
	gx, gy := rng.NormFloat64()*0.2, rng.NormFloat64()*0.2
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			px[y*n+x] = gx*(float64(x)/float64(n)-0.5) + gy*(float64(y)/float64(n)-0.5) + rng.NormFloat64()*c.Noise
		}
	}
	count := c.MinObjects + rng.Intn(c.MaxObjects-c.MinObjects+1)
	var boxes [][4]float64
	var labels []int
	for attempt := 0; len(boxes) < count && attempt < 50; attempt++ {
		side := c.MinSide + rng.Float64()*(c.MaxSide-c.MinSide)
		aspect := math.Exp((rng.Float64()*2 - 1) * math.Log(2)) // h/w in [1/2, 2]
		w := math.Round(side / math.Sqrt(aspect))
		h := math.Round(side * math.Sqrt(aspect))
		w, h = math.Max(6, math.Min(w, float64(n)-4)), math.Max(6, math.Min(h, float64(n)-4))
		x1 := math.Round(2 + rng.Float64()*(float64(n)-4-w))
		y1 := math.Round(2 + rng.Float64()*(float64(n)-4-h))
		box := [4]float64{x1, y1, x1 + w - 1, y1 + h - 1}
		ok := true
		for _, b := range boxes {
			if overlapFraction(box, b) > 0.5 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		intensity := 0.8 + rng.Float64()*0.8
		if rng.Intn(3) == 0 {
			intensity = -intensity
		}
		ellipse := rng.Intn(2) == 0
		cx, cy := x1+(w-1)/2, y1+(h-1)/2
		for y := int(y1); y <= int(box[3]); y++ {
			for x := int(x1); x <= int(box[2]); x++ {
				if ellipse {
					dx, dy := (float64(x)-cx)/(w/2), (float64(y)-cy)/(h/2)
					if dx*dx+dy*dy > 1 {
						continue
					}
				}
				px[y*n+x] += intensity
			}
		}
		boxes = append(boxes, box)
		labels = append(labels, map[bool]int{false: ClassRectangle, true: ClassEllipse}[ellipse])
	}
	return Sample{Size: n, Pixels: px, Boxes: boxes, Labels: labels}
}

// overlapFraction is the intersection area over the smaller box's area (+1 pixel convention).
func overlapFraction(a, b [4]float64) float64 {
	iw := math.Min(a[2], b[2]) - math.Max(a[0], b[0]) + 1
	ih := math.Min(a[3], b[3]) - math.Max(a[1], b[1]) + 1
	if iw <= 0 || ih <= 0 {
		return 0
	}
	areaA := (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
	areaB := (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
	return iw * ih / math.Min(areaA, areaB)
}
