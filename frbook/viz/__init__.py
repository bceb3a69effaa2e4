"""Plots, as pure functions: data in, a matplotlib Figure out (no global state, testable headless).

``images``: grids of face images. ``features``: embeddings in the plane and on the sphere.
``evaluation``: score histograms, ROC and CMC curves.
"""
