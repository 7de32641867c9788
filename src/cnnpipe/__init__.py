"""cnnpipe: a reproducible image-classification pipeline built on DVC, PyTorch and torchvision."""

__version__ = "0.1.0"
