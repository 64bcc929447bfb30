"""Tests of climviz.training."""
