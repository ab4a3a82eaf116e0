"""The serving data plane: a per-model gateway process that answers predictions with honesty labels.

No langgraph, openai or mlflow on the request path: a prediction is a routing-table lookup
and a call into an already loaded model.
"""

# With this variable set (in the gateway's environment and the caller's), /predict and
# /feedback take requests only with `Authorization: Bearer <its value>` (docs/serving.md).
GATEWAY_TOKEN_ENV = "MODELOPS_GATEWAY_TOKEN"
