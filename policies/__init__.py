"""Policies: roles and people (data), authorization, promotion gates, approvals and the audit log."""
