"""Sampling tools: image grids and files, truncation, interpolation, style mixing."""
