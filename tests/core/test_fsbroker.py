"""The filesystem broker never shows a consumer a message that is still being written."""

from __future__ import annotations

import json

from kombu import Connection

from core import fsbroker


def test_a_message_is_in_the_queue_only_once_it_is_whole(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    seen_while_writing = []
    serialize = fsbroker.dumps

    def dumps_and_look(payload):
        seen_while_writing.extend(p.name for p in folder.iterdir() if p.name.endswith(".q.msg"))
        return serialize(payload)

    monkeypatch.setattr(fsbroker, "dumps", dumps_and_look)
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    with Connection(
        "filesystem://", transport=fsbroker.Transport, transport_options=options
    ) as conn:
        channel = conn.default_channel
        channel._put("q", {"body": "hello"})
        assert seen_while_writing == []
        assert json.loads(next(folder.iterdir()).read_text()) == {"body": "hello"}
        assert channel._get("q") == {"body": "hello"}
