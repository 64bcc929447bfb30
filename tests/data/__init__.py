"""Tests of climviz.data."""
