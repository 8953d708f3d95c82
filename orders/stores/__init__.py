"""Stores and their staff scope, cash shifts, stock transfers and stock adjustments."""
