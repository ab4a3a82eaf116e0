"""ONNX graphs must carry their own weights: a tensor stored as external data is refused.

ONNX Runtime, given a graph as bytes, reads an EXTERNAL tensor from a file relative to the
process's working directory: what it would serve is not the digested artifact, and a crafted
graph reads any file out through /predict. ``external_tensors`` is standalone (imports onnx
only): the serving scaffold embeds its source and the MLflow pyfunc loader ships this file.
"""

from __future__ import annotations

from typing import Any

FIX_HINT = (
    "Save the graph with its weights inside: onnx.save(model, path, "
    "save_as_external_data=False) (or onnx.load(path) next to its data file, then save it "
    "that way), and register the new file."
)


def external_tensors(model: Any) -> list[str]:
    """Where-and-name of every tensor of ``model`` (an ``onnx.ModelProto``) stored as external
    data: initializers, sparse initializers and attribute tensors, in the main graph, in every
    subgraph (If/Loop/Scan bodies) and in local functions. Empty when the graph is
    self-contained."""
    import onnx

    found: list[str] = []

    def tensor(t: Any, where: str) -> None:
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            found.append(f"{where} {t.name or '(unnamed)'!r}")

    def sparse(s: Any, where: str) -> None:
        tensor(s.values, f"{where} (values)")
        tensor(s.indices, f"{where} (indices)")

    # An explicit stack, not recursion: nesting depth is whatever the file says.
    nodes: list[tuple[Any, str]] = []
    graphs: list[tuple[Any, str]] = [(model.graph, "graph")]
    for fn in model.functions:
        nodes += [(n, f"function {fn.name!r}") for n in fn.node]
    while graphs or nodes:
        while graphs:
            g, where = graphs.pop()
            for t in g.initializer:
                tensor(t, f"{where} initializer")
            for s in g.sparse_initializer:
                sparse(s, f"{where} sparse initializer")
            nodes += [(n, where) for n in g.node]
        if nodes:
            node, where = nodes.pop()
            at = f"{where} node {node.name or node.op_type!r}"
            for a in node.attribute:
                if a.HasField("t"):
                    tensor(a.t, f"{at} attribute {a.name!r} tensor")
                for t in a.tensors:
                    tensor(t, f"{at} attribute {a.name!r} tensor")
                if a.HasField("sparse_tensor"):
                    sparse(a.sparse_tensor, f"{at} attribute {a.name!r} sparse tensor")
                for s in a.sparse_tensors:
                    sparse(s, f"{at} attribute {a.name!r} sparse tensor")
                if a.HasField("g"):
                    graphs.append((a.g, f"{at} attribute {a.name!r} subgraph"))
                graphs += [(g, f"{at} attribute {a.name!r} subgraph") for g in a.graphs]
    return found


def check_self_contained(data: bytes, *, ref: str) -> None:
    """InvalidInput unless ``data`` parses as an ONNX graph with no external-data tensor.
    Run once per load (and at registration), before ONNX Runtime ever sees the bytes."""
    import onnx
    from google.protobuf.message import DecodeError

    from core.errors import InvalidInput

    try:
        # From bytes there is no base folder: the parser never opens an external file.
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{ref}: the ONNX graph is not a readable ONNX model ({exc})") from exc
    found = external_tensors(model)
    if found:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise InvalidInput(
            f"{ref}: the ONNX graph keeps tensors outside the file (external data): "
            f"{'; '.join(found[:3])}{more}. ModelOps loads only the registered bytes, so "
            "external weights are refused",
            hint=FIX_HINT,
        )
