"""Convolution kernels with interchangeable implementations."""
