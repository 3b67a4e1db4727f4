package box

import "math/rand"

// Sample is torchvision's BalancedPositiveNegativeSampler and py-faster-rcnn's subsampling: of
// labels (1 positive, 0 negative, -1 ignored) it keeps at most int(fgFraction*perImage)
// positives and perImage - #kept positives negatives, turning a uniformly random subset of the
// excess (without replacement, drawn from rng) to -1. It returns the kept counts. indices is
// scratch (reused, returned).
func Sample(labels []int8, perImage int, fgFraction float64, rng *rand.Rand, indices []int) (pos, neg int, scratch []int) {
	return SampleBudget(labels, int(fgFraction*float64(perImage)), perImage, rng, indices)
}

// SampleBudget is Sample with the positive budget given: at most maxPos positives (py-faster-rcnn's
// second stage rounds FG_FRACTION * BATCH_SIZE, torchvision truncates) and perImage - #kept
// positives negatives.
func SampleBudget(labels []int8, maxPos, perImage int, rng *rand.Rand, indices []int) (pos, neg int, scratch []int) {
	pos, indices = disableExcess(labels, 1, maxPos, rng, indices)
	neg, indices = disableExcess(labels, 0, perImage-pos, rng, indices)
	return pos, neg, indices
}

// disableExcess turns all but keep of the entries equal to label to -1, chosen uniformly without
// replacement; it returns how many remain. A partial Fisher-Yates shuffle draws the smaller of
// the two sets, the entries kept or those dropped (an RPN keeps about 250 of some 30,000
// negatives): either way every subset of keep entries is equally likely.
func disableExcess(labels []int8, label int8, keep int, rng *rand.Rand, indices []int) (int, []int) {
	indices = indices[:0]
	for i, l := range labels {
		if l == label {
			indices = append(indices, i)
		}
	}
	keep = max(keep, 0)
	excess := len(indices) - keep
	if excess <= 0 {
		return len(indices), indices
	}
	// the first `draw` entries become a uniform random subset: the dropped ones, or the kept ones
	draw := min(excess, keep)
	for k := 0; k < draw; k++ {
		j := k + rng.Intn(len(indices)-k)
		indices[k], indices[j] = indices[j], indices[k]
	}
	dropped := indices[:excess]
	if draw == keep {
		dropped = indices[keep:]
	}
	for _, i := range dropped {
		labels[i] = -1
	}
	return keep, indices
}
