"""Plots, as pure functions: data in, a matplotlib Figure out (no global state, testable headless).

``images``: grids of face images. ``features``: embeddings in the plane and on the sphere.
``evaluation``: score histograms, ROC and CMC curves. ``training``: what a training logged, step
by step. ``adaptive``: chapter 4's adaptive and sub-center losses at work. ``comparison``: paired
differences between losses, accuracy against time and against a loss's hyperparameters.
"""
