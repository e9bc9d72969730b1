"""The Python side of the back channel, as ai4s-jobq's listener (workforce_monitor.py) uses azure-servicebus.

  servicebus_control.py receive TOPIC SUBSCRIPTION COUNT   prints json.loads(str(message)) of COUNT messages,
                                                           one JSON line each, completing them
  servicebus_control.py send TOPIC OPERATION               sends {"operation": OPERATION} as upstream's
                                                           tools would (one data section of UTF-8 JSON)

Env: SB_CONNECTION_STRING (Endpoint=sb://localhost:PORT/;...), SB_CA (PEM file to trust: the emulator's test
CA). Exits 3 with the exception's type and text on stderr when Service Bus refuses.
"""

import json
import os
import sys
import time

from urllib.parse import urlparse

import azure.servicebus._common._configuration as sb_configuration
from azure.servicebus import ServiceBusClient, ServiceBusMessage


def client() -> ServiceBusClient:
    connection_string = os.environ["SB_CONNECTION_STRING"]
    endpoint = next(
        part.split("=", 1)[1] for part in connection_string.split(";") if part.startswith("Endpoint=")
    )
    # azure-servicebus always dials the namespace on 5671 (its custom_endpoint_address switches to
    # websockets); the emulator's TLS port is another one, so point the SDK's default port at it.
    port = urlparse(endpoint).port
    if port:
        sb_configuration.DEFAULT_AMQPS_PORT = port
    return ServiceBusClient.from_connection_string(
        connection_string,
        connection_verify=os.environ["SB_CA"],
        retry_total=0,
        logging_enable=bool(os.environ.get("SB_DEBUG")),
    )


def receive(topic: str, subscription: str, count: int) -> None:
    deadline = time.monotonic() + 60
    with client() as sb, sb.get_subscription_receiver(topic, subscription) as receiver:
        got = 0
        while got < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"received {got} of {count} messages within 60 s")
            # As upstream's listener: one message at a time, json.loads(str(message)), then complete.
            for message in receiver.receive_messages(max_message_count=1, max_wait_time=5):
                body = json.loads(str(message))
                print(json.dumps(body), flush=True)
                receiver.complete_message(message)
                got += 1


def send(topic: str, operation: str) -> None:
    with client() as sb, sb.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage(json.dumps({"operation": operation}), time_to_live=None))


if __name__ == "__main__":
    try:
        if sys.argv[1] == "receive":
            receive(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        elif sys.argv[1] == "send":
            send(sys.argv[2], sys.argv[3])
        else:
            raise SystemExit(f"unknown command {sys.argv[1]}")
    except Exception as error:  # noqa: BLE001 - the test reads the type and text
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(3)
