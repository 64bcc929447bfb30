"""Tests of climviz.models."""
