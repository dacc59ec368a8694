"""Pydantic schemas of the API (validated at the edge) and of task payloads."""
