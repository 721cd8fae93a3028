"""The conformance scenarios of scenarios.json through the Python SDK.

azure-servicebus 7.8.2 as Debian's python3-azure ships it (uamqp underneath:
AMQPS on port 5671 only, SASL MSSBCBS).

    /usr/bin/python3 conformance.py <scenarios.json> <scenario>

Environment: SB_CONNECTION is the broker's TLS connection string, and
SSL_CERT_FILE names the broker's certificate: OpenSSL under uamqp trusts it
from there, so the client code needs no change (the SDK's
connection_verify=<file> option does the same in code). Exit codes: 0
passed, 1 failed (reason on stderr), 3 unknown scenario.
"""

import base64
import datetime
import json
import os
import re
import sys
import time
import uuid

from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusMessageState,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
)

# FIRST is the delivery count of a first delivery: this SDK exposes the
# AMQP header as it is, zero-based (Go and .NET add one).
FIRST = 0


class Failure(Exception):
    pass


def check(ok, msg):
    if not ok:
        raise Failure(msg)


def eq(got, want, what):
    check(got == want, "%s: got %r, want %r" % (what, got, want))


def client(cs=None, **kwargs):
    return ServiceBusClient.from_connection_string(cs or os.environ["SB_CONNECTION"], **kwargs)


def receive_n(r, n, wait=10.0):
    out = []
    deadline = time.monotonic() + wait
    while len(out) < n and time.monotonic() < deadline:
        out += r.receive_messages(max_message_count=n - len(out), max_wait_time=max(0.1, deadline - time.monotonic()))
    return out


def expect_nothing(r, wait=2.0):
    got = r.receive_messages(max_message_count=1, max_wait_time=wait)
    eq([m.message_id for m in got], [], "messages that should not be there")


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def props(m):
    """Application properties with str keys (uamqp hands back bytes)."""
    return {text(k): v for k, v in (m.application_properties or {}).items()}


def typed(p):
    t, v = p["type"], p["value"]
    if t == "timestamp":
        return datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    if t == "binary":
        # uamqp sends bytes as a (NUL-terminated) string; a bytearray is
        # its binary type.
        return bytearray(base64.b64decode(v))
    if t == "uuid":
        return uuid.UUID(v)
    return v


def comparable(p, v):
    """What comes back, in the spec's terms: uamqp decodes strings to bytes
    and timestamps to milliseconds since the epoch."""
    t = p["type"]
    if t == "string":
        return text(v)
    if t == "timestamp" and isinstance(v, int):
        return datetime.datetime.fromtimestamp(v / 1000, datetime.timezone.utc)
    if t == "binary":
        return bytearray(v)
    return v


def body(m):
    return b"".join(m.body)


def scenario_round_trip(c, q, spec):
    rt = spec["roundTrip"]
    msg = ServiceBusMessage(
        rt["body"], message_id=rt["messageId"], correlation_id=rt["correlationId"], subject=rt["subject"],
        content_type=rt["contentType"], to=rt["to"], reply_to=rt["replyTo"],
        time_to_live=datetime.timedelta(milliseconds=rt["timeToLiveMs"]),
        application_properties={p["name"]: typed(p) for p in rt["applicationProperties"]},
    )
    with c.get_queue_sender(q) as s:
        s.send_messages(msg)
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 1)
        check(got, "no message received")
        m = got[0]
        eq(body(m).decode(), rt["body"], "body")
        for field, key in [("message_id", "messageId"), ("correlation_id", "correlationId"), ("subject", "subject"),
                           ("content_type", "contentType"), ("to", "to"), ("reply_to", "replyTo")]:
            eq(text(getattr(m, field)), rt[key], field)
        eq(m.time_to_live, datetime.timedelta(milliseconds=rt["timeToLiveMs"]), "time_to_live")
        got_props = props(m)
        for p in rt["applicationProperties"]:
            check(p["name"] in got_props, "application property %s missing" % p["name"])
            eq(comparable(p, got_props[p["name"]]), typed(p), "application property %s (%s)" % (p["name"], p["type"]))
        eq(m.delivery_count, FIRST, "delivery_count")
        check(m.sequence_number is not None and m.enqueued_time_utc is not None, "sequence number and enqueued time must be set")
        r.complete_message(m)


def scenario_batch_100(c, q, spec):
    with c.get_queue_sender(q) as s:
        batch = s.create_message_batch()
        for i in range(100):
            batch.add_message(ServiceBusMessage("m%d" % i, message_id="b-%d" % i))
        s.send_messages(batch)
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 100, 30)
        eq(sorted(m.message_id for m in got), sorted("b-%d" % i for i in range(100)), "received ids")
        for m in got:
            r.complete_message(m)
        expect_nothing(r)


def scenario_abandon(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("a", message_id="ab"))
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 1)
        check(got, "no message received")
        r.abandon_message(got[0])
        again = receive_n(r, 1)
        check(again, "the abandoned message did not come back")
        eq((again[0].message_id, again[0].delivery_count), ("ab", FIRST + 1), "redelivered message id and delivery count")
        r.complete_message(again[0])


def scenario_dead_letter(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("d", message_id="dl"))
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 1)
        check(got, "no message received")
        r.dead_letter_message(got[0], reason="bad-input", error_description="not a video")
        eq(len(r.peek_messages(max_message_count=10)), 0, "messages left in the queue")
    with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        got = receive_n(dlq, 1)
        check(got, "nothing in the dead-letter queue")
        d = got[0]
        eq((d.message_id, d.dead_letter_reason, d.dead_letter_error_description), ("dl", "bad-input", "not a video"),
           "dead-lettered message")
        dlq.complete_message(d)


def scenario_defer(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("x", message_id="df"))
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 1)
        check(got, "no message received")
        r.defer_message(got[0])
        expect_nothing(r)
        d = r.receive_deferred_messages([got[0].sequence_number])
        eq([m.message_id for m in d], ["df"], "deferred messages")
        r.complete_message(d[0])


def scenario_renew_lock(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("x", message_id="rl"))
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 1)
        check(got, "no message received")
        first = got[0].locked_until_utc
        time.sleep(0.05)
        renewed = r.renew_message_lock(got[0])
        check(renewed > first, "renewed lock %s is not later than %s" % (renewed, first))
        r.complete_message(got[0])


def scenario_lock_expiry_to_dlq(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("x", message_id="le"))
    with c.get_queue_receiver(q) as r:
        for want in (FIRST, FIRST + 1):
            got = receive_n(r, 1, 20)
            check(got, "delivery %d did not arrive" % want)
            eq(got[0].delivery_count, want, "delivery count")
            # Not settled: the 2 s lock expires.
    with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        got = receive_n(dlq, 1, 20)
        check(got, "nothing in the dead-letter queue")
        eq((got[0].message_id, got[0].dead_letter_reason), ("le", "MaxDeliveryCountExceeded"), "dead-lettered message")
        dlq.complete_message(got[0])


def scenario_peek(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages([ServiceBusMessage(i, message_id=i) for i in ("p0", "p1", "p2")])
    with c.get_queue_receiver(q) as r:
        eq([m.message_id for m in r.peek_messages(max_message_count=10)], ["p0", "p1", "p2"], "peeked ids")
        got = receive_n(r, 3)
        eq([(m.message_id, m.delivery_count) for m in got], [("p0", FIRST), ("p1", FIRST), ("p2", FIRST)],
           "received after peek")
        for m in got:
            r.complete_message(m)


def scenario_schedule_cancel(c, q, spec):
    now = datetime.datetime.now(datetime.timezone.utc)
    due = now + datetime.timedelta(seconds=3)
    with c.get_queue_sender(q) as s:
        (a,) = s.schedule_messages(ServiceBusMessage("a", message_id="later"), now + datetime.timedelta(hours=1))
        s.schedule_messages(ServiceBusMessage("b", message_id="soon"), due)
        s.cancel_scheduled_messages(a)
    with c.get_queue_receiver(q) as r:
        peeked = r.peek_messages(max_message_count=10)
        eq([m.message_id for m in peeked], ["soon"], "peeked ids")
        if datetime.datetime.now(datetime.timezone.utc) < due - datetime.timedelta(milliseconds=500):
            # Peeked well before it was due: it must still be scheduled.
            eq(peeked[0].state, ServiceBusMessageState.SCHEDULED, "state of the peeked message")
        got = receive_n(r, 1, 15)
        eq([m.message_id for m in got], ["soon"], "received scheduled message")
        r.complete_message(got[0])
        expect_nothing(r)


def scenario_duplicate_detection(c, q, spec):
    with c.get_queue_sender(q) as s:
        for b, i in (("1", "same"), ("2", "same"), ("3", "other")):
            s.send_messages(ServiceBusMessage(b, message_id=i))
    with c.get_queue_receiver(q) as r:
        got = receive_n(r, 3, 3)
        eq([m.message_id for m in got], ["same", "other"], "received ids")
        for m in got:
            r.complete_message(m)


def scenario_receive_and_delete(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages([ServiceBusMessage("1", message_id="r1"), ServiceBusMessage("2", message_id="r2")])
    with c.get_queue_receiver(q, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
        eq([m.message_id for m in receive_n(r, 2)], ["r1", "r2"], "received ids")
    with c.get_queue_receiver(q) as r:
        eq(len(r.peek_messages(max_message_count=10)), 0, "messages left to peek")


def scenario_oversized_refused(c, q, spec):
    with c.get_queue_sender(q) as s:
        try:
            s.send_messages(ServiceBusMessage(b"\x01" * (300 * 1024)))
        except MessageSizeExceededError:
            pass
        else:
            raise Failure("a 300 KB message was accepted")
    with c.get_queue_receiver(q) as r:
        eq(len(r.peek_messages(max_message_count=10)), 0, "messages in the queue")


def scenario_ttl(c, q, spec):
    with c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("x", message_id="short", time_to_live=datetime.timedelta(seconds=1)))
    # The expired message moves to the dead-letter queue on its own.
    with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        got = receive_n(dlq, 1)
        check(got, "the expired message is not in the dead-letter queue")
        eq((got[0].message_id, got[0].dead_letter_reason), ("short", "TTLExpiredException"), "expired message")
        dlq.complete_message(got[0])
    with c.get_queue_receiver(q) as r:
        expect_nothing(r, 1)


def scenario_topic_fan_out(c, t, spec):
    with c.get_topic_sender(t) as s:
        s.send_messages([ServiceBusMessage(i, message_id=i) for i in ("f-0", "f-1", "f-2")])
    for sub in ("all", "audit"):
        with c.get_subscription_receiver(t, sub) as r:
            got = receive_n(r, 3)
            eq([m.message_id for m in got], ["f-0", "f-1", "f-2"], "subscription %s" % sub)
            for m in got:
                r.complete_message(m)
            expect_nothing(r, 0.5)


def scenario_topic_filter(c, t, spec):
    with c.get_topic_sender(t) as s:
        s.send_messages([
            ServiceBusMessage("1", message_id="s-1", subject="mp3", application_properties={"state": "failed", "attempt": 2}),
            ServiceBusMessage("2", message_id="s-2", application_properties={"state": "failed", "attempt": 1}),
            ServiceBusMessage("3", message_id="s-3", application_properties={"state": "done", "attempt": 3}),
        ])
    for sub, want in (("retried-failures", ["s-1"]), ("mp3", ["s-1"]), ("all", ["s-1", "s-2", "s-3"])):
        with c.get_subscription_receiver(t, sub, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            eq([m.message_id for m in receive_n(r, len(want))], want, "subscription %s" % sub)
            expect_nothing(r, 0.5)


def scenario_subscription_dlq(c, t, spec):
    with c.get_topic_sender(t) as s:
        s.send_messages(ServiceBusMessage("x", message_id="sd"))
    with c.get_subscription_receiver(t, "all") as r:
        got = receive_n(r, 1)
        check(got, "nothing in subscription all")
        r.dead_letter_message(got[0], reason="bad-input", error_description="not a video")
    with c.get_subscription_receiver(t, "all", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        got = receive_n(dlq, 1)
        check(got, "nothing in the subscription's dead-letter queue")
        d = got[0]
        eq((d.message_id, d.dead_letter_reason, d.dead_letter_error_description), ("sd", "bad-input", "not a video"),
           "dead-lettered message")
        dlq.complete_message(d)
    with c.get_subscription_receiver(t, "audit") as r:
        eq([m.message_id for m in r.peek_messages(max_message_count=10)], ["sd"], "audit's copy")


def refused(cs, q, spec, errors, text=""):
    """Send with no retries and an operation timeout of refusalTimeoutMs:
    only the broker's answer gives the wanted error in time."""
    timeout = spec["refusalTimeoutMs"] / 1000
    with client(cs, retry_total=0) as c:
        try:
            with c.get_queue_sender(q) as s:
                s.send_messages(ServiceBusMessage("x"), timeout=timeout)
        except errors as e:
            check(text in str(e), "got %s: %s, want it to say %r" % (type(e).__name__, e, text))
            return
        except Exception as e:  # noqa: BLE001 - any other error is the failure to report
            raise Failure("got %s: %s, want %s within %.1f s" % (type(e).__name__, e, errors, timeout))
        raise Failure("the send succeeded")


def scenario_wrong_key_refused(c, q, spec):
    bad = re.sub(r"SharedAccessKey=[^;]*", "SharedAccessKey=wrong-key", os.environ["SB_CONNECTION"])
    refused(bad, q, spec, (ServiceBusAuthenticationError, ServiceBusAuthorizationError))


def scenario_missing_entity_refused(c, q, spec):
    # The broker answers the put-token for a missing entity with 404, as the
    # real service does. This SDK version reports any refused put-token as
    # ServiceBusAuthenticationError, and cannot show the description: uamqp
    # keeps a pointer to it past the life of the response (its text comes
    # out as undecodable bytes), so only the error class is checked.
    refused(None, q, spec, (MessagingEntityNotFoundError, ServiceBusAuthenticationError))


def main():
    spec_path, name = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    sc = next((s for s in spec["scenarios"] if s["name"] == name), None)
    fn = globals().get("scenario_" + name.replace("-", "_"))
    if sc is None or fn is None:
        print("unknown scenario %s" % name, file=sys.stderr)
        return 3
    try:
        with client() as c:
            fn(c, sc["queue"], spec)
    except Failure as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
