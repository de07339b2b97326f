"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own version writes a message file in place (a consumer can pick it up while it is
still empty and crash on it), and moves a taken message with shutil.move into the system
temporary folder, which is a copy across filesystems (two consumers can both take it).
Here a message is written under a hidden name and renamed into the queue when complete,
and a consumer claims it by an atomic rename within the broker folder.
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    # kombu's stubs call this argument `message` in AbstractChannel and `payload` in the
    # filesystem Channel (they ignore the clash there too); kombu always passes it by position.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot hides the file from consumers until it is complete.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to the queue") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, f"{name}.{os.getpid()}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer took it first
            try:
                with open(claimed, "rb") as handle:
                    payload = handle.read()
                os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read message {name!r} from the queue") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None, **kwargs: Any) -> None:
        # Celery's loop for transports like this one waits up to 2 s here, and only between
        # two waits does it send the acknowledgements of finished tasks and take new ones:
        # with late acks and a small prefetch, that capped a worker at about one task per
        # second. Short waits keep the loop turning.
        super().drain_events(connection, timeout=min(timeout, 0.1) if timeout else 0.1)
