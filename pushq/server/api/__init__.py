"""The HTTP API: request models, handlers (one module per resource) and helpers."""
