"""Subscriptions (clause 5.8) and at-least-once notification delivery."""
