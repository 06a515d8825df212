"""The control plane: one FastAPI process that owns labwork's state (see DESIGN.md §1)."""
