// Package fastrcnn is the second stage of Faster R-CNN (Fast R-CNN's box head): the proposal
// targets and the head's training objective, exact to torchvision 0.14 (RoIHeads) and to
// py-faster-rcnn's proposal_target_layer with faster-rcnn.pytorch's head loss. It builds on
// package box (IoU, coding), op (SoftmaxCrossEntropy, SmoothL1) and feeds roi (Align, Pool);
// it does not import the RPN.
//
// # Proposal targets (SampleTargets)
//
// Per image b, the candidates are the proposals with the gt boxes appended. For candidate i with
// best gt j(i) = argmax_j IoU(i, j) (the first on ties) and u_i = IoU(i, j(i)) (0 without gt):
//
//	label_i = class(j(i))   if u_i >= FgIoU                        (foreground)
//	        = 0             if BgIoULow <= u_i < BgIoUHigh          (background)
//	        = not sampled   otherwise
//
// At most F = maxFg foreground (int(FgFraction·BatchSize), or np.round's half-to-even with
// RoundFg) and BatchSize - #fg background candidates are kept; the excess of each is dropped
// uniformly at random, with a math/rand source seeded Seed + b (a partial Fisher-Yates shuffle,
// as package rpn's sampler): the same inputs and seed give the same sample. A kept foreground row
// of class c gets, in columns 4c..4c+3 of its 4(K+1) (class 0 is background),
//
//	target = (encode(roi, gt_j(i)) - Means) / Stds,   inside = (1, 1, 1, 1),   outside = (inside > 0)
//
// with encode box.Coder's (dx, dy, dw, dh) = (wx (gcx - rcx)/rw, wy (gcy - rcy)/rh, ww ln(gw/rw),
// wh ln(gh/rh)), widths with +1 under Coder.PlusOne. Everything else is 0. Each row's RoI is
// (b, x1, y1, x2, y2), ready for roi.Align.
//
// Row order, a documented rule where the references differ or are random: ProposalOrder keeps
// the candidates' order (torchvision's torch.where(pos | neg)); FgFirst puts foreground rows
// first and background rows after, each in candidate order (py-faster-rcnn puts fg first too,
// but each part in npr.choice's random order). The loss does not depend on the order.
//
// An image without gt has every candidate at IoU 0: background for torchvision (as its
// assign_targets_to_proposals), nothing sampled with py-faster-rcnn's BG_THRESH_LO 0.1 (where
// py-faster-rcnn itself fails). Errors name the image and the box: non-finite coordinates,
// x2 < x1 or y2 < y1, a zero-width or zero-height gt without +1, a label outside [1, K], an
// image with neither proposals nor gt.
//
// # The presets
//
//	                     TorchvisionConfig(K)                PyFasterRCNNConfig(K)
//	matching             Matcher(0.5, 0.5, no low-quality)   FG_THRESH 0.5, BG [0.1, 0.5) (BgIoULow 0: faster-rcnn.pytorch)
//	sampling             512 per image, int(0.25·512) = 128  128 per image, np.round(0.25·128) = 32
//	encoding             BoxCoder((10, 10, 5, 5)), no +1      bbox_transform (+1), (t - 0) / (0.1, 0.1, 0.2, 0.2)
//	row order            ProposalOrder                        FgFirst
//	box loss             beta 1/9                             sigma 1 (beta 1)
//
// # The loss (Loss, Objective)
//
// The head gives logits z (Rows, K+1) and deltas d (Rows, 4(K+1)). With S the number of sampled
// rows of the batch,
//
//	cls   = (1/S) Σ_i [lse(z_i) - z_{i, label_i}]                                     (op.SoftmaxCrossEntropy)
//	reg   = (1/S) Σ_i Σ_k outside_ik smoothL1_beta(inside_ik (d_ik - target_ik))      (op.SmoothL1)
//	head  = cls + reg;      Objective: total = rpnTotal + head
//
// which is torchvision's fastrcnn_loss (cross_entropy's mean over the S rows, and smooth_l1_loss
// with beta 1/9 summed over each positive row's class slot, divided by labels.numel() = S) and
// faster-rcnn.pytorch's F.cross_entropy + _smooth_l1_loss(bbox_pred, targets, inside, outside,
// sigma=1, dim=[1]) (sum over the columns, mean over the S rows). Gradients:
//
//	dhead/dz_ik = (1/S) (softmax(z_i)_k - [k == label_i])
//	dhead/dd_ik = (1/S) outside_ik inside_ik smoothL1'_beta(inside_ik (d_ik - target_ik))
//
// and none to the targets, weights or 1/S (data).
//
// # One graph for every step
//
// TargetNodes are graph inputs for a fixed row count Rows (images · BatchSize holds any sample):
// Set writes a step's rows and pads the rest with ignored rows (label op.DefaultIgnoreIndex,
// zero targets and weights, RoI (0, 0, 0, 1, 1)), which add nothing to either sum and get zero
// gradients. The normalisation 1/S lives in one place, the scalar input Norm written by Set
// (0 when S = 0: the head then contributes 0, where PyTorch gives NaN); the sums themselves
// are plain sums. The nodes remember the Config they were made with: Loss takes beta from it, and
// Set refuses targets made with another Config (the Seed aside), so targets and loss cannot
// disagree.
package fastrcnn
