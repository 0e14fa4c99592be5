"""children_first: everything after all it reaches, once each, whatever the graph's shape."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from castore.postorder import children_first


@given(st.dictionaries(st.integers(0, 30), st.lists(st.integers(0, 30), max_size=5), max_size=30))
def test_every_item_comes_after_what_it_reaches_except_along_a_cycle(graph):
    children = {node: [c for c in kids if c in graph] for node, kids in graph.items()}
    order = children_first(sorted(children), lambda n: children[n], lambda n: n)
    assert sorted(order) == sorted(children)
    position = {n: i for i, n in enumerate(order)}

    def reaches(a: int, b: int) -> bool:
        seen, todo = set(), [a]
        while todo:
            n = todo.pop()
            if n == b:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(children[n])
        return False

    for node, kids in children.items():
        for kid in kids:
            if not reaches(kid, node):  # no cycle through this edge
                assert position[kid] < position[node]


def test_a_deep_chain_needs_no_recursion():
    order = children_first([0], lambda n: [n + 1] if n < 100_000 else [], lambda n: n)
    assert order[0] == 100_000 and order[-1] == 0
