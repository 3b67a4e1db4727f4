// Package roi is RoIAlign and RoIPool for gorgonia, exact to torchvision 0.14's
// torchvision.ops.roi_align and roi_pool (their CPU kernels), with hand-derived gradients for
// both gorgonia machines: the second stage of Faster R-CNN pools a fixed-size feature per region.
//
// Both ops take features (N, C, H, W) and rois (K, 5), rows (n, x1, y1, x2, y2) of a batch
// index and a box in image coordinates, of the features' dtype (float32 or float64), and give
// (K, C, outH, outW). Arithmetic is in the inputs' dtype, in torchvision's order.
//
// # RoIAlign
//
// With s the spatial scale and offset = 0.5 if aligned else 0, along each axis (y shown; x
// alike with x1, x2, W, outW):
//
//	start  = y1*s - offset
//	length = y2*s - offset - start        (not aligned: max(length, 1), so degenerate rois are 1x1)
//	bin    = length / outH
//	grid   = samplingRatio if > 0, else ceil(length / outH)        (adaptive)
//	y(ph, iy) = start + ph*bin + (iy + 0.5) * bin / grid,   iy = 0 .. grid-1
//
// aligned=True (Detectron2's ROIAlignV2) makes a box's corners pixel corners: the -0.5 puts
// the sample of a 1-pixel box on that pixel's centre. Each sample (y, x) is bilinear:
//
//	outside: y < -1 or y > H or x < -1 or x > W   → contributes 0 (the samples still count)
//	clamp:   y <= 0 → y = 0;   y_low = floor(y);   y_low >= H-1 → y_low = y_high = H-1, y = H-1;
//	         else y_high = y_low + 1                                        (x alike)
//	ly = y - y_low, hy = 1 - ly, lx = x - x_low, hx = 1 - lx
//	value = hy*hx*v(y_low, x_low) + hy*lx*v(y_low, x_high) + ly*hx*v(y_high, x_low) + ly*lx*v(y_high, x_high)
//
// and a bin is the mean over its grid_h x grid_w samples:
//
//	out[k, c, ph, pw] = Σ_iy Σ_ix value(y(ph, iy), x(pw, ix)) / max(grid_h*grid_w, 1)
//
// A sample is inside exactly when both its coordinates are, and the weights are products
// w_y * w_x, so the kernel builds each roi's valid samples per axis once, shared by the
// channels, and adds up per bin the weights each axis' samples give each pixel row (Wy) and
// column (Wx): a bin is Σ_y Wy(y) Σ_x Wx(x) v(y, x) / count, the inner sums shared by the bin
// rows that read a row. The pixels and weights are torchvision's; the products and sums are
// grouped differently, so the last bits differ (1e-12 in float64), and a ±Inf pixel whose
// samples weigh it both 0 and more than 0 gives ±Inf where torchvision's 0 * Inf gives NaN. A negative length (aligned rois with x2 < x1) gives a negative bin: with a fixed
// sampling ratio the samples run backwards, as in torchvision; adaptive grids of ceil(negative)
// <= 0 samples give 0. (torchvision 0.14 fails when exactly one axis' adaptive grid is negative,
// "cannot create std::vector larger than max_size()"; this package gives 0 there too.)
//
// Gradient. Align is linear in the features, out = A features, so
//
//	dL/dfeatures = A^T up:   each bin's upstream / count is added through the same four weights
//	                         to the same four pixels, for every sample
//
// rois are data: no gradient (DiffWRT false; G.Grad with respect to rois is gorgonia's error).
// Second order: the diff op up ↦ A^T up is linear in up and does not read the features, so
// its derivative with respect to up is A again (the forward op applied to the second
// upstream) and with respect to the features 0; Hessian-vector products through G.Grad twice
// are exact.
//
// # RoIPool
//
// torchvision's rounding, in the dtype (round half away from zero):
//
//	start = round(y1*s), end = round(y2*s), length = max(end - start + 1, 1)
//	bin   = length / outH
//	rows of bin ph: [floor(ph*bin) + start, ceil((ph+1)*bin) + start), clamped to [0, H]
//
// (columns alike). A bin is the maximum over its rectangle, scanned row by row from -FLT_MAX
// (float32's largest magnitude, for float64 too) with a strict >: the first maximum in
// row-major order wins ties (-0 and +0 are equal), NaN is passed over, an empty bin is 0 with
// no argmax, and a bin with nothing above -FLT_MAX is -FLT_MAX with no argmax.
//
// Gradient: each bin's upstream is added at its argmax (none without one). Once a gradient is
// asked of a Pool node, its forward pass also saves every bin's argmax in a buffer the op owns
// and reuses, and the scatter takes it when it is fresh and was made from the very values the
// scatter is given (the same features, rois and output objects, the features and rois still
// holding the values the forward read, bit for bit); otherwise (a gradient asked twice, an op
// shared by several nodes, an output Pool did not return, an input changed in place) the
// scatter finds the
// argmaxes again from the features, as the forward pass does, with the same bits, so a stale
// argmax is never used. The diff op takes the features, the rois, Pool's output and the
// upstream as inputs (as gorgonia's softmax diff op takes its forward output; the output's
// values are not read). Both passes find an argmax the same way: per band of bin rows, each
// column's first maximum (the scan down the column), then per bin the largest of its columns'
// maxima and, among the columns equal to it, the first pixel in row-major order; that is the
// scan's argmax, bit for bit. The scatter's derivative with respect to its upstream is the
// gather v ↦ v[argmax] and the gather's is the scatter, so second order works as for Align (0
// with respect to the features, where the argmax is locally constant).
//
// # Execution
//
// Both passes run over channel ranges in parallel (GOMAXPROCS workers for large inputs, each
// taking the next range when done). A range owns whole (image, channel) planes, so the backward
// scatter has no races and adds into each plane in a fixed order (roi, then row, then bin): the
// results do not depend on the number of workers. Inputs are read through values.Contiguous,
// so views give the results of their contiguous copies. A pass allocates its result; the
// workers' tables are reused from a sync.Pool (and Pool's saved argmaxes from the op).
//
// In float32 on amd64 CPUs with AVX2 (golang.org/x/sys/cpu), the inner loops run in assembly
// (kernel_amd64.s), eight lanes at a time: Align's row sums, bin rows, shares and row scatter
// (lanes: bins or pixels, from dense per-roi tables of the x taps), Pool's band of column
// maxima and its bins' argmaxes. Each has a Go twin, the loop used elsewhere (float64, other
// CPUs, the purego build tag), with the same operations in the same order, each product rounded
// before it is added (no fused multiply-add): the results are the same bits (a NaN's payload
// aside, where two NaNs meet), which TestPoolBandAsm, FuzzPoolBand and TestAlignAsm check.
//
// # Errors
//
// Align and Pool validate the nodes and parameters once: nil nodes, nodes of different graphs,
// features not of rank 4, rois not (K, 5), dtypes other than float32/float64 or mixed, output
// sizes <= 0 (or > 4096), a spatial scale not finite and > 0 (or 0 in float32), a sampling
// ratio < -1, Align's options given to Pool. The rois' values are data, checked when the graph
// runs: a batch index that is not an integer in [0, N) (NaN, Inf, 0.5, -1, N), a coordinate
// that is NaN or Inf, a corner that overflows the dtype when scaled, an adaptive grid above
// 2^20 points per axis (a roi of about a million feature pixels per bin; give a sampling
// ratio), a Pool corner beyond ±2^30 feature pixels. The machine returns the error, naming the
// roi and the value; nothing panics. An empty map (H or W = 0) gives zeros.
package roi
