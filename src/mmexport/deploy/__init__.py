"""Deployment: Triton model repositories and device bundles."""
