// Package op is a fused Smooth L1 loss for gorgonia: the box-regression loss of Faster R-CNN, exact
// to faster-rcnn.pytorch's _smooth_l1_loss and to PyTorch's F.smooth_l1_loss, with hand-derived
// first and second derivatives for both gorgonia machines.
//
// # Forward
//
// With inside weights w_in, outside weights w_out (either may be absent, meaning 1) and
//
//	x = w_in * (pred - target)
//
// the elementwise loss is, in Caffe's sigma form and PyTorch's beta form (beta = 1/sigma^2),
//
//	f(x) = 0.5 * sigma^2 * x^2     if |x| < 1/sigma^2      (= 0.5 * x^2 / beta   if |x| < beta)
//	       |x| - 0.5 / sigma^2     otherwise               (= |x| - 0.5 * beta   otherwise)
//
// The quadratic branch is strict: at |x| = beta the linear branch applies. beta = 0 is plain L1.
// Huber loss with threshold delta is delta * f with beta = delta.
//
// The reductions of w_out * f(x):
//
//	None      elementwise, shape of pred
//	Sum       Σ_i w_out_i f(x_i)                      (0 for an empty tensor)
//	Mean      Σ_i w_out_i f(x_i) / N                  (NaN for an empty tensor, as in PyTorch)
//	SumDims   sum over the listed axes, then the mean over the remaining elements: the seed's
//	          `for i in sorted(dim, reverse=True): loss = loss.sum(i)` followed by `.mean()`.
//	          For a (B, 4A, H, W) tensor, dims {1, 2, 3} give total / B.
//
// One fused pass reads the inputs once; float32 inputs are summed in float64; sums are formed
// over fixed chunks added in a fixed order, so results do not depend on GOMAXPROCS. On amd64
// CPUs with AVX2 the loss sum and the gradient run as assembly kernels that do the same IEEE
// operations in the same order as the Go loops, four float64 lanes at a time: the results are
// bit-identical to the Go loops, which run elsewhere and when built with -tags purego.
//
// # Derivatives
//
//	f'(x)  = sigma^2 * x  if |x| < 1/sigma^2,  sign(x) otherwise,  0 at x = 0
//	f''(x) = sigma^2      if |x| < 1/sigma^2,  0 otherwise
//
//	dL/dpred_i   = g * (norm * w_out_i * w_in_i * f'(x_i))
//	dL/dtarget_i = -dL/dpred_i                                  (WithTargetGrad only)
//
// where g is the upstream gradient and norm is 1 (Sum), 1/N (Mean) or 1/remaining (SumDims).
// The branch mask |x| < beta carries no gradient (the seed's .detach()), and the weights are
// constants (as in Caffe): no gradient flows to them. At x = 0 with beta = 0 the gradient is 0,
// not PyTorch 1.13's -1 (pytorch/pytorch#96813).
//
// Targets are data by default: the op reports a gradient for pred only, and G.Grad(loss, target)
// is gorgonia's "Non Differentiable WRTs" error. WithTargetGrad adds the target's gradient, the
// negation of pred's.
//
// SymDiff (TapeMachine, G.Grad) applies a diff op to the forward's inputs, the forward's output
// (so every machine runs it after the forward) and the upstream gradient; DoDiff (LispMachine)
// adds the same values into the inputs' gradient buffers. The diff op is differentiable in turn,
// with the second derivative above, so Hessian-vector products through G.Grad twice are exact.
//
// # Saving for backward
//
// Once a gradient is asked of the loss, the forward writes, in the same sweep that sums the loss,
// factor_i = T(norm * w_out_i * w_in_i * f'(x_i)) into a buffer the op owns (T: the dtype). The
// diff op multiplies it by g in place (g = 1, the usual case, costs nothing) and returns it: one
// read of the inputs per training step, no gradient tensor allocated per step. The save is taken
// only if the forward wrote it for these very input values and output in this run and nobody
// took it since; otherwise (a gradient asked twice, a changed value, second order) the factor is
// recomputed from the inputs with the same arithmetic, so both paths give the same bits. The
// returned gradient is that buffer, rewritten in place by the next run: copy it to keep it.
// Only the loss node the op was built for writes it (its forward checks that its inputs are that
// node's input values; the op value applied elsewhere recomputes), once per run, and the
// TapeMachine reruns only after Reset, which empties its registers, so no register can hold the
// buffer when the forward rewrites it. Details in saved.go.
//
// # Inputs
//
// Every input may be a view (a column Slice, a .T(), a column-major tensor): it is read through a
// row-major copy, and a contiguous tensor costs nothing extra. Targets, weights and even pred may
// be constants (G.NewConstant), as with gorgonia's own ops; all-constant inputs are an error, since
// there is no graph to build in. Empty tensors work through G.Grad on both machines for the
// scalar reductions (a cost over an empty None loss needs gorgonia's Sum, which panics on it).
//
// # Softmax cross-entropy
//
// SoftmaxCrossEntropy is PyTorch's F.cross_entropy for logits (N, K) and labels (N) in the logits'
// dtype, with an ignore index (default -100) and None, Sum or Mean (over the rows not ignored):
//
//	loss_i   = m + log Σ_k exp(z_ik - m) - z_{i,y_i},   m = max_k z_ik   (0 where y_i is ignored)
//	dL/dz_ik = g_i * norm * (softmax(z_i)_k - [k == y_i])
//
// with a hand-derived second order (the softmax Jacobian); labels get no gradient and must be whole
// numbers in [0, K) or the ignore index, checked when the op runs. It is the class loss of Fast
// R-CNN's box head (package fastrcnn).
//
// # Errors
//
// The constructors validate everything once and return an error naming the argument and the
// values: nil nodes, nodes of different graphs (constants belong to none), scalar inputs (rank >= 1 is required), dtypes
// other than float32/float64 or mixed, shape mismatches, sigma <= 0, NaN or Inf, beta < 0, NaN or
// Inf, dims out of range or repeated. NaN and Inf in the data propagate as in PyTorch.
package op
