// Package fastrcnn is the second stage of Faster R-CNN (Fast R-CNN's box head): proposal
// targets and the head's training objective, exact to torchvision 0.14 and py-faster-rcnn /
// faster-rcnn.pytorch.
package fastrcnn
