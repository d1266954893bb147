"""Sizing: the planner that picks a layout (llmdctl plan)."""
