"""Rates (DESIGN §2.3): fits of circuit size against accuracy (fits) and ε ladders (ladder)."""
