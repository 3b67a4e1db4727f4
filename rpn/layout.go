package rpn

// layout is the index arithmetic of one feature map's tensors, written once: anchor n =
// (y*W + x)*A + a (the anchors' order, py-faster-rcnn's and torchvision's), and the network's
// row-major tensors
//
//	per anchor  (B, A, H, W):   element (b, a, y, x)       labels, weights, sigmoid scores
//	per class   (B, C*A, H, W): element (b, c*A + a, y, x) Softmax2 scores: c = 0 bg, 1 fg
//	per delta   (B, 4A, H, W):  element (b, 4a + k, y, x)  deltas, targets, box weights
type layout struct{ A, H, W int }

// anchors is A*H*W, the anchors of one image.
func (l layout) anchors() int { return l.A * l.H * l.W }

// cell splits anchor index n into (a, yx) with yx = y*W + x.
func (l layout) cell(n int) (a, yx int) { return n % l.A, n / l.A }

// perAnchor is the index of anchor n of image b in a (B, A, H, W) tensor.
func (l layout) perAnchor(b, n int) int {
	a, yx := l.cell(n)
	return (b*l.A+a)*l.H*l.W + yx
}

// perClass is the index of class c of anchor n of image b in a (B, C*A, H, W) tensor.
func (l layout) perClass(b, n, c, classes int) int {
	a, yx := l.cell(n)
	return ((b*classes+c)*l.A+a)*l.H*l.W + yx
}

// perDelta is the index of delta k of anchor n of image b in a (B, 4A, H, W) tensor.
func (l layout) perDelta(b, n, k int) int {
	a, yx := l.cell(n)
	return (b*4*l.A+4*a+k)*l.H*l.W + yx
}
