"""Typed, strict spec models for pool and job files, and their loader."""
from orchestrator.spec.job import DistributedSpec, JobSpec, TaskResources, TaskSpec
from orchestrator.spec.loader import load_any, load_job, load_pool, validate_model
from orchestrator.spec.pool import NodeCounts, PoolSpec, RayOptions, StartTask

__all__ = [
    "DistributedSpec", "JobSpec", "TaskResources", "TaskSpec", "NodeCounts", "PoolSpec", "RayOptions",
    "StartTask", "load_any", "load_job", "load_pool", "validate_model",
]
