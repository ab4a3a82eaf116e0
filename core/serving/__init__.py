"""The serving data plane: a per-model gateway process that answers predictions with honesty labels.

No langgraph, openai or mlflow on the request path: a prediction is a routing-table lookup
and a call into an already loaded model.
"""
