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
// replacement; it returns how many remain.
func disableExcess(labels []int8, label int8, keep int, rng *rand.Rand, indices []int) (int, []int) {
	indices = indices[:0]
	for i, l := range labels {
		if l == label {
			indices = append(indices, i)
		}
	}
	excess := len(indices) - max(keep, 0)
	if excess <= 0 {
		return len(indices), indices
	}
	// partial Fisher-Yates: the first `excess` entries become a uniform random subset
	for k := 0; k < excess; k++ {
		j := k + rng.Intn(len(indices)-k)
		indices[k], indices[j] = indices[j], indices[k]
		labels[indices[k]] = -1
	}
	return len(indices) - excess, indices
}
