"""Synthetic multimodal data (numpy only) for the built-in reference models."""
