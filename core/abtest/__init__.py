"""A/B tests: sticky assignment (the gateway's routing key), outcomes from ``POST /feedback``,
and the statistics a decision needs (statsmodels and scipy), with a decision report."""
