"""Batched on-device image transforms and the input pipeline, shared by train, evaluate and predict."""
