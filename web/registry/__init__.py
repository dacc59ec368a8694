"""Model registry: uploads, versions, metadata."""
