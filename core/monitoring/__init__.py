"""Monitoring: reference profiles, data and prediction drift, estimated and realized
performance, SLOs from the prediction log, alerts, and the policy that may roll back.

Kept import-light: the gateway imports ``core.monitoring.feedback`` on its request path, so
nothing here pulls in scipy, pandas or matplotlib at package import.
"""
