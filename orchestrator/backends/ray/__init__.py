"""The Ray backend: pools are sets of node agents on a Ray cluster, jobs live in a pool manager."""
