"""Tests of climviz.labels."""
