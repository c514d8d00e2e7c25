"""Daemon services: durable jobs, folder watching, the OSC server and live input."""
