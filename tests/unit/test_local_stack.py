"""The local stack's small pieces that once broke a run: cluster ids and port choice."""

from __future__ import annotations

from pathlib import Path

from berdaya.stack.kafka import LocalKafka, new_cluster_id
from berdaya.stack.process import free_ports


def test_a_new_cluster_id_never_starts_with_a_dash_which_the_storage_tool_would_read_as_an_option() -> None:
    # About one id in seventy would start with '-' if left to chance.
    assert not any(new_cluster_id().startswith("-") for _ in range(5000))


def test_ports_chosen_together_are_all_different() -> None:
    for _ in range(200):
        ports = free_ports(7)
        assert len(set(ports)) == 7


def test_a_cluster_given_its_nodes_ports_uses_exactly_those() -> None:
    kafka = LocalKafka(Path("/tmp/unused"), node_ports=[(41001, 41101), (41002, 41102)])
    assert [(n.port, n.controller_port) for n in kafka.nodes] == [(41001, 41101), (41002, 41102)]
    assert kafka.bootstrap_servers == "127.0.0.1:41001,127.0.0.1:41002" and kafka.size == 2
