"""ai4s-jobq v1 task messages on a Storage queue, written and read with azure-storage-queue the way
upstream does (ai4s/jobq/entities.py Task.serialize / Task.deserialize, backend/storage_queue.py).

  storage_tasks.py push QUEUE NUM_RETRIES CMD...   one task per CMD, kwargs as upstream's `push -c` builds
                                                   them; prints each message's text (JSON-encoded) on a line
  storage_tasks.py read QUEUE COUNT                receives and deletes COUNT messages; prints for each
                                                   {"text": <exact text>, "reserialized": <upstream's
                                                   Task.deserialize(text).serialize()>}
  storage_tasks.py upstream ID NUM_RETRIES CMD     prints the text upstream writes for that task

Env: STORAGE_CONNECTION_STRING (Azurite's).
"""

import json
import os
import sys
import uuid

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient


def serialize(task_id, kwargs, num_retries, reply_requested=False):
    """Task.serialize(): the dict without id, then id (json.dumps, default separators)."""
    res = {
        "version": 1,
        "reply_requested": reply_requested,
        "kwargs": json.dumps(kwargs),
        "num_retries": num_retries,
    }
    res["id"] = task_id
    return json.dumps(res)


def deserialize(text):
    """Task.deserialize(): keys looked up by name, kwargs parsed from its JSON text."""
    data = json.loads(text)
    if data["version"] not in (0, 1):
        raise ValueError("Unsupported Task version {}".format(data["version"]))
    return {
        "id": data["id"],
        "kwargs": json.loads(data["kwargs"]),
        "num_retries": data["num_retries"],
        "reply_requested": data.get("reply_requested", False) if data["version"] == 1 else False,
    }


def shell_kwargs(cmd):
    """What upstream's `push -c CMD` enqueues (cli.py push, IteratorWorkSpec.list_tasks)."""
    return {"cmd": cmd, "bg_dirsync_to": None, "env": {}}


def queue(name):
    return QueueClient.from_connection_string(os.environ["STORAGE_CONNECTION_STRING"], name)


def main(argv):
    if argv[1] == "push":
        client = queue(argv[2])
        try:  # upstream creates the queue when missing (exist_ok)
            client.create_queue()
        except ResourceExistsError:
            pass
        for cmd in argv[4:]:
            text = serialize(uuid.uuid4().hex, shell_kwargs(cmd), int(argv[3]))
            client.send_message(text, time_to_live=-1)
            print(json.dumps(text))
    elif argv[1] == "read":
        client = queue(argv[2])
        wanted = int(argv[3])
        got = 0
        while got < wanted:
            batch = list(client.receive_messages(messages_per_page=32, visibility_timeout=60))
            if not batch:
                break
            for message in batch:
                task = deserialize(message.content)
                again = serialize(task["id"], task["kwargs"], task["num_retries"], task["reply_requested"])
                print(json.dumps({"text": message.content, "reserialized": again}))
                client.delete_message(message)
                got += 1
    elif argv[1] == "upstream":
        print(json.dumps(serialize(argv[2], shell_kwargs(argv[4]), int(argv[3]))))
    else:
        raise SystemExit("unknown command " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
