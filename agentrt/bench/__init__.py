"""Benchmarks behind ``agentrt bench``: each prints a table and writes JSON and PNG plots."""
