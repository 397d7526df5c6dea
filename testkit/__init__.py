"""Builders of test and sample data; never imported by production code."""
