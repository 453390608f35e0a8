"""Datasets: the built-in dataset catalogue, coding-sheet readers and frame paths (DAG stage read_sheet)."""
