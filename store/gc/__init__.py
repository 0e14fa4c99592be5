"""Garbage collection of the embedded store: roots, retention, delete, and collect.

roots.py names what is kept for good; retention.py records when paths were added and served;
collect.py marks from both (and from uploads in progress and young paths), sweeps path records,
and hands the castore mark to castore/local/sweep.py, which frees chunks and packs.
"""
