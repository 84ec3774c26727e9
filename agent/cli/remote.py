"""maix-agent cmd | watch: operator commands over MQTT."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from pathlib import Path

from agent.cli.common import client, decode_for_print, settings_of, topics_of
from agent.mqtt import codec


def cmd_cmd(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    family, _, command = args.command.partition("/")
    try:
        body = json.loads(args.body) if args.body else {}
    except json.JSONDecodeError as exc:
        print(f"error: the request is not valid JSON: {exc}", file=sys.stderr)
        return 1
    if not isinstance(body, dict):
        print("error: the request must be a JSON object", file=sys.stderr)
        return 1
    if args.image:
        body["image"] = base64.b64encode(Path(args.image).read_bytes()).decode()
    req_id = uuid.uuid4().hex[:12]
    body["id"] = req_id
    topics = topics_of(settings, args.dev)
    topic = topics.fleet_command(family, command) if args.fleet else topics.command(family, command)
    reply_topic = topics.reply(family, command)
    link = client(settings, "cmd")
    link.subscribe(reply_topic)
    link.connect()
    try:
        link.publish(topic, json.dumps(body).encode())
        for msg in link.messages(timeout=args.timeout):
            try:
                reply = codec.decode(msg.payload, codec.sniff(msg.payload, msg.content_type), max_bytes=1 << 26)
            except codec.DecodeError:
                continue
            if isinstance(reply, dict) and reply.get("id") == req_id:
                print(json.dumps(reply, indent=None if args.compact else 2, default=str))
                return 0 if reply.get("ok") else 1
        print(f"error: no reply from {args.dev} on {reply_topic} within {args.timeout}s", file=sys.stderr)
        return 3
    finally:
        link.close()


def cmd_watch(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    topics = topics_of(settings, args.dev)
    link = client(settings, "watch")
    for t in args.topic or [topics.results, topics.events]:
        link.subscribe(t)
    link.connect()
    count = 0
    try:
        for msg in link.messages(timeout=args.duration):
            body = decode_for_print(msg.payload, msg.content_type)
            print(json.dumps({"topic": msg.topic, "payload": body}, default=lambda b: f"<{len(b)} bytes>"), flush=True)
            count += 1
            if args.count and count >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
    return 0
