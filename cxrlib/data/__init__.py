"""Datasets, splits, the image cache and the phantom generator."""
