"""kombu's filesystem broker, with messages that appear whole.

kombu writes a message in place (open, lock, write), and a consumer polling the folder can
move and read the file between the open and the write: it reads an empty message and the
worker stops ("Unrecoverable error: JSONDecodeError"). Here a message is written under a
name no consumer looks at and renamed into the queue, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's filesystem Channel and its virtual base disagree on this signature
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".partial"  # ends in ".partial": no consumer takes it
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
