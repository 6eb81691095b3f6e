"""Typed, strict spec models for pool and job files (``job``, ``pool``, ``sweep``, …) and their
loader (``loader``). Import from the modules themselves: this package imports nothing, so a
backend's block module can build on ``spec.common`` without loading ``spec.pool``, which
collects every backend's block when it is imported."""
