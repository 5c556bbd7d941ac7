"""The agent's MQTT connection: paho in its own thread, messages to the event loop in batches.

paho's network loop runs in its thread (`loop_start`) and reconnects with
backoff by itself. Each message is appended to a bounded deque; the event
loop is woken once per burst (not once per message) and takes what has
piled up. When the deque is full the paho thread waits, so the broker holds
the backlog (TCP backpressure) instead of this process's memory.

With MQTT v5 the agent subscribes with a shared subscription
(`$share/<group>/...`): the workers of one hub split the devices' messages
between them instead of each storing every message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from dosi.ingest.southbound import Message
from dosi.ingest.url import BrokerUrl

log = logging.getLogger("dosi.ingest")
# The topics devices publish on (FIWARE IoT Agent conventions; see southbound.parse_topic).
TOPICS = (
    "/+/+/attrs",
    "/+/+/attrs/+",
    "/+/+/cmdexe",
    "/ul/+/+/attrs",
    "/ul/+/+/cmdexe",
    "/json/+/+/attrs",
    "/json/+/+/attrs/+",
    "/json/+/+/cmdexe",
)
DELIVER_BATCH = 5000


class BufferedClient(paho.Client):
    """paho with less work per received message: about 10 microseconds of CPU instead of
    40 (QoS 0) or 55 (QoS 1) for plain paho, measured with a bare subscriber (paho 2.x
    internals; pinned <3, and the MQTT tests exercise every hook below).

    - reads: paho asks for 1 byte (packet type), 1-4 bytes (length), then the rest, one
      `recv` each; here they come from a 256 KiB buffer, and `loop_read` goes on while
      buffered bytes remain (select() cannot see them);
    - acknowledgements queued while reading do not wake this very thread's select();
    - the common PUBLISH is decoded without building an MQTT v5 Properties object;
    - messages go straight to `on_message` (no per-topic callback matching).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(262_144)
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        pos = self._rpos
        chunk = self._rbuf[pos : pos + bufsize]
        self._rpos = pos + len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # Replies queued while reading (a PUBACK per QoS 1 message) would each write a
        # byte to paho's wake-up socket to interrupt a select() that this very thread is
        # not in; without it they are written by the next loop turn, which follows at
        # once (and so is anything another thread publishes meanwhile).
        wakeup, self._sockpairW = self._sockpairW, None
        try:
            rc = super().loop_read(max_packets)
            while (
                rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock and self._rpos < len(self._rbuf)
            ):
                rc = super().loop_read(max_packets)
        finally:
            self._sockpairW = wakeup
        return rc

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def _handle_publish(self) -> MQTTErrorCode:
        # The common PUBLISH (QoS 0/1, no MQTT v5 properties) decoded here: paho builds
        # a v5 Properties object per message, which cost about a third of this thread.
        # Anything else (QoS 2, properties, a malformed packet) takes paho's own path.
        command: int = self._in_packet["command"]
        packet = bytes(self._in_packet["packet"])
        qos = (command & 0x06) >> 1
        end = 2 + int.from_bytes(packet[:2], "big")
        pos = end + (2 if qos else 0)
        v5 = self._protocol == paho.MQTTv5
        if qos > 1 or len(packet) < pos + v5 or (v5 and packet[pos] != 0):
            return super()._handle_publish()
        message = paho.MQTTMessage(mid=int.from_bytes(packet[end:pos], "big"), topic=packet[2:end])
        message.dup = bool(command & 0x08)
        message.qos = qos
        message.retain = bool(command & 0x01)
        message.payload = packet[pos + v5 :]
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # This client registers no per-topic callbacks (message_callback_add), so paho's
        # topic matcher and callback locks would be pure overhead on every message.
        on_message = self.on_message
        if on_message is not None:
            try:
                on_message(self, self._userdata, message)
            except Exception:
                log.exception("MQTT message handling failed")


def client_id() -> str:
    return f"dosi-{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"


class MqttLink:
    def __init__(
        self,
        broker: BrokerUrl,
        *,
        consume: Callable[[list[Message]], None],
        share_group: str = "dosi",
        qos: int = 1,
        max_pending: int = 20_000,
    ) -> None:
        self._broker = broker
        self._consume = consume
        self._qos = qos
        self._filters = [f"$share/{share_group}/{t}" if share_group else t for t in TOPICS]
        self._max_pending = max_pending
        self._queue: deque[Message] = deque()
        self._room = threading.Event()
        self._room.set()
        self._scheduled = False
        self._paused = False
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self.connected = False
        self._client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id=client_id(), protocol=paho.MQTTv5
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.max_inflight_messages_set(0)  # commands: no paho-side queue scan
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self._client.tls_set_context(ssl.create_default_context())

    # -- lifecycle (event loop thread) ---------------------------------
    def start(self) -> None:
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=30)
        self._client.loop_start()

    async def stop(self) -> None:
        """Disconnect and stop paho's thread; what it had received stays to be `drain`ed."""
        self._stopping = True
        self._room.set()
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def drain(self) -> list[Message]:
        items = list(self._queue)
        self._queue.clear()
        return items

    def pause(self) -> None:
        """Stop handing messages over (the consumer is full); they wait in the deque."""
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._schedule()

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue a QoS 1 message (commands); False if the broker is not connected."""
        if not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=1)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- paho's thread ---------------------------------------------------
    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection", extra={"reason": str(reason)})
            return
        client.subscribe([(f, self._qos) for f in self._filters])

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("MQTT broker refused the subscriptions", extra={"reasons": refused})
            return
        self.connected = True  # only now are the devices' messages sure to reach us
        log.info(
            "MQTT connected",
            extra={"broker": f"{self._broker.host}:{self._broker.port}", "topics": len(TOPICS)},
        )

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            log.warning("MQTT connection lost; reconnecting", extra={"reason": str(reason)})

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "<not UTF-8>"
        queue = self._queue
        while len(queue) >= self._max_pending and not self._stopping:
            self._room.clear()
            self._room.wait(0.5)
        queue.append((topic, bytes(message.payload), time.time()))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._deliver)

    # -- event loop thread -----------------------------------------------
    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        if self._paused or self._stopping:
            return
        queue = self._queue
        count = min(len(queue), DELIVER_BATCH)
        items = [queue.popleft() for _ in range(count)]
        if len(queue) < self._max_pending // 2:
            self._room.set()
        if items:
            self._consume(items)
        if queue:
            self._schedule()  # let other tasks run between bursts
