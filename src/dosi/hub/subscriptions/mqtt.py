"""Sending notifications over MQTT (clause 7 MQTT binding), with paho-mqtt.

One client per broker (scheme, host, port, credentials, protocol version),
its network loop on paho's own thread (`loop_start`). The topic is the path
of the endpoint URI; QoS and version come from notifierInfo (MQTT-QoS,
MQTT-Version). The message is `{"metadata": {headers}, "body": notification}`;
with MQTT 5 the headers also travel as user properties. A publish counts as
done when paho reports it (QoS 0: written to the socket; 1: PUBACK; 2: PUBCOMP).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dosi.hub.subscriptions.delivery import DeliveryFailed

MQTT5 = "mqtt5.0"
MAX_CLIENTS = 64


class _Client:
    def __init__(self, uri: str, version: str, loop: asyncio.AbstractEventLoop) -> None:
        parts = urlsplit(uri)
        self._loop = loop
        self._lock = threading.Lock()
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()
        self.connected = asyncio.Event()
        protocol = paho.MQTTv5 if version == MQTT5 else paho.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"dosi-notifier-{os.urandom(6).hex()}",
            protocol=protocol,
        )
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.client.connect_async(parts.hostname or "", port, keepalive=30)
        self.client.loop_start()

    # Callbacks run on paho's network thread.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not getattr(reason, "is_failure", False):
            self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._loop.call_soon_threadsafe(self.connected.clear)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            future = self._waiting.pop(mid, None)
            if future is None:
                self._early.add(mid)  # reported before publish() returned
                return
        self._loop.call_soon_threadsafe(_resolve, future)

    async def publish(
        self, topic: str, payload: bytes, qos: int, props: Properties | None, timeout_s: float
    ) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            raise DeliveryFailed("MQTT broker not connected") from None
        future: asyncio.Future[None] = self._loop.create_future()
        # Never call into paho holding our lock: its network thread holds paho's own
        # locks while it calls _on_publish, which takes ours.
        info = self.client.publish(topic, payload, qos=qos, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise DeliveryFailed(f"MQTT publish failed: {paho.error_string(info.rc)}")
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                return
            self._waiting[info.mid] = future
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            with self._lock:
                self._waiting.pop(info.mid, None)
            raise DeliveryFailed("MQTT publish not acknowledged in time") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MqttSender:
    """Clients by broker, created on first use (at most MAX_CLIENTS, oldest dropped)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], _Client] = {}

    async def send(
        self,
        uri: str,
        notification: bytes,
        headers: dict[str, str],
        *,
        qos: int,
        version: str,
        timeout_s: float,
    ) -> None:
        parts = urlsplit(uri)
        broker = parts._replace(path="", query="", fragment="").geturl()
        key = (broker, version)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                oldest = self._clients.pop(next(iter(self._clients)))
                threading.Thread(target=oldest.close, daemon=True).start()
            client = self._clients[key] = _Client(broker, version, asyncio.get_running_loop())
        topic = unquote(parts.path.lstrip("/"))
        payload = b'{"metadata":' + orjson.dumps(headers) + b',"body":' + notification + b"}"
        props = None
        if version == MQTT5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = list(headers.items())
        await client.publish(topic, payload, qos, props, timeout_s)

    async def close(self) -> None:
        """Disconnect every client; their network threads wind down on their own (paho
        may take up to its 1 s poll), so nobody waits for them."""
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            threading.Thread(target=client.close, name="dosi-mqtt-close", daemon=True).start()
