package rpn

import "github.com/detlab/smoothl1/box"

// BoxCoder is box.Coder (kept here so Config.Coder reads as before).
type BoxCoder = box.Coder

// PyFasterRCNNCoder is box.PyFasterRCNNCoder: py-faster-rcnn's bbox_transform.
func PyFasterRCNNCoder() BoxCoder { return box.PyFasterRCNNCoder() }

// TorchvisionCoder is box.TorchvisionCoder: torchvision's BoxCoder((1, 1, 1, 1)).
func TorchvisionCoder() BoxCoder { return box.TorchvisionCoder() }
