"""Builders of each provider's exact HTTP wire format (JSON bodies, SSE streams, errors).

Used by the adapters' tests and by :mod:`gateway.testing`'s provider mocks, so both speak
exactly what the real APIs send.
"""
