"""Transports: how frames reach the client and come back (WebSocket, WebRTC) and their wire formats.

The WebSocket wire format lives in :mod:`voxloop.transports.serializers`.
"""
