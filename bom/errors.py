"""The BOM's FatalErrors (the event can never succeed as the data stands), each naming where."""

from core.errors import FatalError

_MAX_NODES_SHOWN = 20  # nodes of a path named in a message; the full one is on the error


def path_text(nodes: list[str], closed: bool = False) -> str:
    """'A -> B -> C', shortened to its first nodes and its last; `closed` repeats the first."""
    shown = nodes + nodes[:1] if closed else nodes
    if len(shown) <= _MAX_NODES_SHOWN + 1:
        return " -> ".join(shown)
    hidden = len(shown) - _MAX_NODES_SHOWN - 1
    return f"{' -> '.join(shown[:_MAX_NODES_SHOWN])} -> … ({hidden} more) -> {shown[-1]}"


class BomDataError(FatalError):
    """A BOM line with a missing id or a value outside its range (the message names the line)."""


class BomCycleError(FatalError):
    """The BOM graph has a cycle; `cycle` holds one, e.g. ["X", "Y", "Z"] for X -> Y -> Z -> X."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"BOM cycle: {path_text(cycle, closed=True)}")


class BomDepthError(FatalError):
    """A path from a top product is longer than the allowed depth; `path` holds one."""

    def __init__(self, max_depth: int, path: list[str]) -> None:
        self.path = path
        super().__init__(
            f"BOM deeper than max_depth={max_depth}: {path_text(path)} "
            f"({len(path) - 1} levels from product {path[0]!r})"
        )
