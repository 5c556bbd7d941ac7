"""Publishing measurements to an MQTT broker as field devices do (QoS 1, paho's own thread)."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from dosi.ingest.url import parse_broker_url

MAX_QUEUED = 20_000


class MqttPublisher:
    def __init__(self, url: str, *, client_id: str) -> None:
        self._broker = parse_broker_url(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._connected = threading.Event()
        self._client.on_connect = lambda *_: self._connected.set()
        self._last: mqtt.MQTTMessageInfo | None = None

    def connect(self) -> None:
        broker = self._broker
        if broker.tls:
            self._client.tls_set()
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        self._client.connect(broker.host, broker.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise ConnectionError(f"no answer from the MQTT broker at {broker.host}:{broker.port}")

    def publish(self, topic: str, payload: bytes) -> None:
        self._last = self._client.publish(topic, payload, qos=1)

    def flush(self) -> None:
        """Wait until the broker has acknowledged everything published so far."""
        if self._last is not None:
            self._last.wait_for_publish(30)

    def close(self) -> None:
        self.flush()
        self._client.disconnect()
        self._client.loop_stop()
