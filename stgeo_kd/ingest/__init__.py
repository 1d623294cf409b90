"""Readers that turn users' files (road networks, sensor tables, adjacency matrices) into clean arrays."""
