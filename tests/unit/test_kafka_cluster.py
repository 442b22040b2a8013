"""A local KRaft cluster's layout: ports, one quorum, one cluster id, internal topics sized."""

from __future__ import annotations

from pathlib import Path

from hub.provision.kafka import cluster_nodes, cluster_ports, new_cluster_id
from hub.provision.services import LocalServices
from hubcore.settings import Settings


def _config(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_three_nodes_share_a_quorum_and_a_cluster_id(tmp_path: Path) -> None:
    nodes = cluster_nodes(tmp_path, "4.1.1", cluster_ports(19092, 3))
    assert [(n.name, n.node_id, n.port, n.controller_port) for n in nodes] == [
        ("kafka-1", 1, 19092, 19093),
        ("kafka-2", 2, 19094, 19095),
        ("kafka-3", 3, 19096, 19097),
    ]
    assert len({n.cluster_id for n in nodes}) == 1
    assert len({n.data_dir for n in nodes}) == 3
    # The same cluster again after a restart: formatted storage must match its id.
    assert (
        cluster_nodes(tmp_path, "4.1.1", cluster_ports(19092, 3))[0].cluster_id
        == nodes[0].cluster_id
    )
    conf = _config(nodes[1]._write_config())
    assert conf["node.id"] == "2"
    assert conf["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert conf["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert conf["offsets.topic.replication.factor"] == "3"
    assert conf["transaction.state.log.min.isr"] == "2"


def test_a_single_broker_keeps_its_layout(tmp_path: Path) -> None:
    local = LocalServices(
        Settings(_env_file=None, services_dir=tmp_path, kafka_bootstrap="localhost:9092")
    )
    [node] = local.kafka_nodes
    assert (node.name, node.port, node.controller_port) == ("kafka", 9092, 9093)
    conf = _config(node._write_config())
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert conf["offsets.topic.replication.factor"] == "1"


def test_services_lists_each_node_of_a_cluster(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, services_dir=tmp_path, kafka_bootstrap="127.0.0.1:29092", kafka_brokers=3
    )
    local = LocalServices(settings)
    assert [n.bootstrap for n in local.kafka_nodes] == [
        "127.0.0.1:29092",
        "127.0.0.1:29094",
        "127.0.0.1:29096",
    ]


def test_cluster_ids_never_look_like_an_option() -> None:
    # One id in 64 would start with "-" and make the storage tool fail at random.
    ids = [new_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
