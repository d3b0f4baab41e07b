"""Shared mechanisms for every paper package: app, checkpoint, sweep, data, metrics, plotting.

Nothing paper-specific lives here.
"""
