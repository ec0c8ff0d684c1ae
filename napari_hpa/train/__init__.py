"""Training (layer 3, optional extra ``train``): architectures, losses, data, loop, ONNX export.

Only this package imports torch and timm.  This ``__init__`` stays free of
heavy imports so that ``napari-hpa --help`` stays fast; import the submodules:

* :mod:`.models`  -- ``build_model(arch, in_chans=4, num_classes=28, pretrained=None, **kw)``
* :mod:`.losses`  -- focal, symmetric Lovasz hinge, hard-negative BCE, their combination, weighted BCE
* :mod:`.data`    -- data folder + labels CSV, D4 / random-scale-crop augmentation, stratified folds
* :mod:`.randomise` -- domain randomisation of training inputs (gain, gamma, offset, blur, noise)
* :mod:`.loop`    -- the training loop (checkpoints, resume, ``config.json``, ``log.csv``)
* :mod:`.export`  -- ONNX export meeting the model contract, parity check, int8 quantisation

Their commands, ``napari-hpa train`` and ``napari-hpa export``, are in :mod:`napari_hpa.cli.train`.
"""

#: The architectures of :mod:`.models` by name (here, so that they can be read without torch).
FIXED_ARCHS = ("densenet121", "dual-resnet34", "gapnet", "arcface-resnet")
#: ... and any timm backbone with the 1st-place head.
ARCHS = (*FIXED_ARCHS, "timm:NAME")
#: Classification losses (see :mod:`.losses`); ``combo`` is the default.
LOSSES = ("combo", "focal", "lovasz", "hardneg", "bce", "wbce")
#: What a training window (``--crop``) learns to predict (see :mod:`.data`); ``image`` is the default.
CROP_TARGETS = ("image", "masks")
#: ``--domain-rand`` levels (see :mod:`.randomise`, whose ``PROFILES`` they name); ``none`` is the default.
DOMAIN_RAND = ("none", "default", "mild", "strong")
#: ``--precision`` of the training forward passes (see :func:`.loop._forward`); ``fp32`` is the default.
PRECISIONS = ("fp32", "bf16")
MAP_WEIGHT = 5.0  # dual-resnet34: attention-map BCE weight (the 4th place's)
