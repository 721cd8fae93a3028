// The conformance scenarios of scenarios.json through the JavaScript SDK
// (@azure/service-bus, pinned in the repository's package.json).
//
//   node conformance.js <scenarios.json> <scenario>
//
// Environment: SB_CONNECTION is the broker's connection string. Exit codes:
// 0 passed, 1 failed (reason on stderr), 3 unknown scenario.
"use strict";

const fs = require("fs");
const { ServiceBusClient, isServiceBusError } = require("@azure/service-bus");

const [specPath, name] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
const scenario = spec.scenarios.find((s) => s.name === name);
const cs = process.env.SB_CONNECTION;

class Failure extends Error {}
function check(ok, ...msg) {
  if (!ok) throw new Failure(msg.join(" "));
}
function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  check(g === w, `${what}: got ${g}, want ${w}`);
}
// FIRST is the delivery count of a first delivery: the JavaScript SDK
// exposes the AMQP header as it is, zero-based (Go and .NET add one).
const FIRST = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function client(connectionString = cs, opts = {}) {
  return new ServiceBusClient(connectionString, opts);
}

// receiveN receives until n messages arrived or the wait ran out.
async function receiveN(r, n, waitMs = 10000) {
  const out = [];
  const deadline = Date.now() + waitMs;
  while (out.length < n && Date.now() < deadline) {
    const got = await r.receiveMessages(n - out.length, { maxWaitTimeInMs: Math.max(100, deadline - Date.now()) });
    out.push(...got);
  }
  return out;
}

async function expectNothing(r, waitMs = 2000) {
  const got = await r.receiveMessages(1, { maxWaitTimeInMs: waitMs });
  eq(got.map((m) => m.messageId), [], "messages that should not be there");
}

// typedValue is what the sender puts in; expected is what a receiver gets
// back: the SDK hands timestamps back as milliseconds since the epoch
//.
function typedValue(p) {
  switch (p.type) {
    case "timestamp":
      return new Date(p.value);
    case "binary":
      return Buffer.from(p.value, "base64");
    default:
      return p.value;
  }
}

function expected(p) {
  return p.type === "timestamp" ? new Date(p.value).getTime() : comparable(typedValue(p));
}

// comparable maps what the SDK returns to plain JSON for comparison.
function comparable(v) {
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  // The SDK's receive path copies application properties key by key
  // (convertDatesToNumbers), which turns a Buffer into {"0": b0, "1": b1, ...}.
  if (v && typeof v === "object" && Object.keys(v).every((k) => /^\d+$/.test(k))) {
    return Buffer.from(Object.values(v)).toString("base64");
  }
  if (v && typeof v === "object" && typeof v.toNumber === "function") return v.toNumber();
  return v;
}

const scenarios = {
  async "round-trip"(c, q) {
    const rt = spec.roundTrip;
    const props = {};
    for (const p of rt.applicationProperties) {
      // The JavaScript SDK has no uuid application property type: it sends
      // uuids as strings.
      props[p.name] = typedValue(p);
    }
    await c.createSender(q).sendMessages({
      body: JSON.parse(rt.body), messageId: rt.messageId, correlationId: rt.correlationId, subject: rt.subject,
      contentType: rt.contentType, to: rt.to, replyTo: rt.replyTo, timeToLive: rt.timeToLiveMs,
      applicationProperties: props,
    });
    const r = c.createReceiver(q);
    const [m] = await receiveN(r, 1);
    check(m, "no message received");
    eq(m.body, JSON.parse(rt.body), "body");
    for (const f of ["messageId", "correlationId", "subject", "contentType", "to", "replyTo"]) eq(m[f], rt[f], f);
    eq(m.timeToLive, rt.timeToLiveMs, "timeToLive");
    for (const p of rt.applicationProperties) {
      eq(comparable(m.applicationProperties[p.name]), expected(p), `application property ${p.name} (${p.type})`);
    }
    eq(m.deliveryCount, FIRST, "deliveryCount");
    check(m.sequenceNumber !== undefined && m.enqueuedTimeUtc instanceof Date, "sequence number and enqueued time must be set");
    await r.completeMessage(m);
  },

  async "batch-100"(c, q) {
    const s = c.createSender(q);
    const batch = await s.createMessageBatch();
    for (let i = 0; i < 100; i++) check(batch.tryAddMessage({ body: `m${i}`, messageId: `b-${i}` }), `message ${i} did not fit the batch`);
    await s.sendMessages(batch);
    const r = c.createReceiver(q);
    const got = await receiveN(r, 100, 30000);
    const ids = got.map((m) => m.messageId).sort();
    const want = [...Array(100).keys()].map((i) => `b-${i}`).sort();
    eq(ids, want, "received ids");
    for (const m of got) await r.completeMessage(m);
    await expectNothing(r);
  },

  async abandon(c, q) {
    await c.createSender(q).sendMessages({ body: "a", messageId: "ab" });
    const r = c.createReceiver(q);
    const [m] = await receiveN(r, 1);
    check(m, "no message received");
    await r.abandonMessage(m);
    const [again] = await receiveN(r, 1);
    check(again, "the abandoned message did not come back");
    eq([again.messageId, again.deliveryCount], ["ab", FIRST + 1], "redelivered message id and delivery count");
    await r.completeMessage(again);
  },

  async "dead-letter"(c, q) {
    await c.createSender(q).sendMessages({ body: "d", messageId: "dl" });
    const r = c.createReceiver(q);
    const [m] = await receiveN(r, 1);
    check(m, "no message received");
    await r.deadLetterMessage(m, { deadLetterReason: "bad-input", deadLetterErrorDescription: "not a video" });
    eq((await r.peekMessages(10)).length, 0, "messages left in the queue");
    const dlq = c.createReceiver(q, { subQueueType: "deadLetter" });
    const [d] = await receiveN(dlq, 1);
    check(d, "nothing in the dead-letter queue");
    eq([d.messageId, d.deadLetterReason, d.deadLetterErrorDescription], ["dl", "bad-input", "not a video"], "dead-lettered message");
    await dlq.completeMessage(d);
  },

  async defer(c, q) {
    await c.createSender(q).sendMessages({ body: "x", messageId: "df" });
    const r = c.createReceiver(q);
    const [m] = await receiveN(r, 1);
    check(m, "no message received");
    await r.deferMessage(m);
    await expectNothing(r);
    const [d] = await r.receiveDeferredMessages(m.sequenceNumber);
    check(d, "receive-deferred returned nothing");
    eq(d.messageId, "df", "deferred message id");
    await r.completeMessage(d);
  },

  async "renew-lock"(c, q) {
    await c.createSender(q).sendMessages({ body: "x", messageId: "rl" });
    const r = c.createReceiver(q);
    const [m] = await receiveN(r, 1);
    check(m, "no message received");
    const first = m.lockedUntilUtc.getTime();
    await sleep(50);
    const renewed = await r.renewMessageLock(m);
    check(renewed.getTime() > first, `renewed lock ${renewed.toISOString()} is not later than ${new Date(first).toISOString()}`);
    await r.completeMessage(m);
  },

  async "lock-expiry-to-dlq"(c, q) {
    await c.createSender(q).sendMessages({ body: "x", messageId: "le" });
    // The SDK renews locks on its own unless told not to.
    const r = c.createReceiver(q, { maxAutoLockRenewalDurationInMs: 0 });
    for (const want of [FIRST, FIRST + 1]) {
      const [m] = await receiveN(r, 1, 20000);
      check(m, `delivery ${want} did not arrive`);
      eq(m.deliveryCount, want, "delivery count");
      // Not settled: the 2 s lock expires.
    }
    const dlq = c.createReceiver(q, { subQueueType: "deadLetter" });
    const [d] = await receiveN(dlq, 1, 20000);
    check(d, "nothing in the dead-letter queue");
    eq([d.messageId, d.deadLetterReason], ["le", "MaxDeliveryCountExceeded"], "dead-lettered message");
    await dlq.completeMessage(d);
  },

  async peek(c, q) {
    const s = c.createSender(q);
    await s.sendMessages(["p0", "p1", "p2"].map((id) => ({ body: id, messageId: id })));
    const r = c.createReceiver(q);
    const peeked = await r.peekMessages(10);
    eq(peeked.map((m) => m.messageId), ["p0", "p1", "p2"], "peeked ids");
    const got = await receiveN(r, 3);
    eq(got.map((m) => [m.messageId, m.deliveryCount]), [["p0", FIRST], ["p1", FIRST], ["p2", FIRST]], "received after peek");
    for (const m of got) await r.completeMessage(m);
  },

  async "schedule-cancel"(c, q) {
    const s = c.createSender(q);
    const due = Date.now() + 3000;
    const [a] = await s.scheduleMessages({ body: "a", messageId: "later" }, new Date(Date.now() + 3600e3));
    await s.scheduleMessages({ body: "b", messageId: "soon" }, new Date(due));
    await s.cancelScheduledMessages(a);
    const r = c.createReceiver(q);
    const peeked = await r.peekMessages(10);
    eq(peeked.map((m) => m.messageId), ["soon"], "peeked ids");
    // Peeked well before it was due: it must still be scheduled.
    if (Date.now() < due - 500) eq(peeked[0].state, "scheduled", "state of the peeked message");
    const got = await receiveN(r, 1, 15000);
    eq(got.map((m) => m.messageId), ["soon"], "received scheduled message");
    await r.completeMessage(got[0]);
    await expectNothing(r);
  },

  async "duplicate-detection"(c, q) {
    const s = c.createSender(q);
    await s.sendMessages({ body: "1", messageId: "same" });
    await s.sendMessages({ body: "2", messageId: "same" });
    await s.sendMessages({ body: "3", messageId: "other" });
    const r = c.createReceiver(q);
    const got = await receiveN(r, 3, 3000);
    eq(got.map((m) => m.messageId), ["same", "other"], "received ids");
    for (const m of got) await r.completeMessage(m);
  },

  async "receive-and-delete"(c, q) {
    await c.createSender(q).sendMessages([{ body: "1", messageId: "r1" }, { body: "2", messageId: "r2" }]);
    const r = c.createReceiver(q, { receiveMode: "receiveAndDelete" });
    const got = await receiveN(r, 2);
    eq(got.map((m) => m.messageId), ["r1", "r2"], "received ids");
    eq((await c.createReceiver(q).peekMessages(10)).length, 0, "messages left to peek");
  },

  async "oversized-refused"(c, q) {
    let err;
    try {
      await c.createSender(q).sendMessages({ body: Buffer.alloc(300 * 1024, 1) });
    } catch (e) {
      err = e;
    }
    check(err, "a 300 KB message was accepted");
    check(isServiceBusError(err) && err.code === "MessageSizeExceeded", `got ${err.code}: ${err.message}, want MessageSizeExceeded`);
    eq((await c.createReceiver(q).peekMessages(10)).length, 0, "messages in the queue");
  },

  async ttl(c, q) {
    await c.createSender(q).sendMessages({ body: "x", messageId: "short", timeToLive: 1000 });
    // The expired message moves to the dead-letter queue on its own.
    const dlq = c.createReceiver(q, { subQueueType: "deadLetter" });
    const [d] = await receiveN(dlq, 1);
    check(d, "the expired message is not in the dead-letter queue");
    eq([d.messageId, d.deadLetterReason], ["short", "TTLExpiredException"], "expired message");
    await dlq.completeMessage(d);
    await expectNothing(c.createReceiver(q), 1000);
  },

  async "topic-fan-out"(c, t) {
    await c.createSender(t).sendMessages(["f-0", "f-1", "f-2"].map((id) => ({ body: id, messageId: id })));
    for (const sub of ["all", "audit"]) {
      const r = c.createReceiver(t, sub);
      const got = await receiveN(r, 3);
      eq(got.map((m) => m.messageId), ["f-0", "f-1", "f-2"], `subscription ${sub}`);
      for (const m of got) await r.completeMessage(m);
      await expectNothing(r, 500);
    }
  },

  async "topic-filter"(c, t) {
    await c.createSender(t).sendMessages([
      { body: "1", messageId: "s-1", subject: "mp3", applicationProperties: { state: "failed", attempt: 2 } },
      { body: "2", messageId: "s-2", applicationProperties: { state: "failed", attempt: 1 } },
      { body: "3", messageId: "s-3", applicationProperties: { state: "done", attempt: 3 } },
    ]);
    for (const [sub, want] of [["retried-failures", ["s-1"]], ["mp3", ["s-1"]], ["all", ["s-1", "s-2", "s-3"]]]) {
      const r = c.createReceiver(t, sub, { receiveMode: "receiveAndDelete" });
      eq((await receiveN(r, want.length)).map((m) => m.messageId), want, `subscription ${sub}`);
      await expectNothing(r, 500);
    }
  },

  async "subscription-dlq"(c, t) {
    await c.createSender(t).sendMessages({ body: "x", messageId: "sd" });
    const r = c.createReceiver(t, "all");
    const [m] = await receiveN(r, 1);
    check(m, "nothing in subscription all");
    await r.deadLetterMessage(m, { deadLetterReason: "bad-input", deadLetterErrorDescription: "not a video" });
    const dlq = c.createReceiver(t, "all", { subQueueType: "deadLetter" });
    const [d] = await receiveN(dlq, 1);
    check(d, "nothing in the subscription's dead-letter queue");
    eq([d.messageId, d.deadLetterReason, d.deadLetterErrorDescription], ["sd", "bad-input", "not a video"], "dead-lettered message");
    await dlq.completeMessage(d);
    eq((await c.createReceiver(t, "audit").peekMessages(10)).map((x) => x.messageId), ["sd"], "audit's copy");
  },

  async "wrong-key-refused"(_c, q) {
    const bad = cs.replace(/SharedAccessKey=[^;]*/, "SharedAccessKey=wrong-key");
    await refused(bad, q, "UnauthorizedAccess");
  },

  async "missing-entity-refused"(_c, q) {
    await refused(cs, q, "MessagingEntityNotFound");
  },
};

// refused sends with an operation timeout of refusalTimeoutMs and no
// retries: only an answer from the broker gives the wanted code in time.
async function refused(connectionString, q, code) {
  const c = client(connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: spec.refusalTimeoutMs } });
  try {
    await c.createSender(q).sendMessages({ body: "x" });
    throw new Failure("the send succeeded");
  } catch (e) {
    if (e instanceof Failure) throw e;
    check(e.code === code, `got ${e.code}: ${e.message}, want ${code} within ${spec.refusalTimeoutMs} ms`);
  } finally {
    await c.close();
  }
}

async function main() {
  if (!scenario || !scenarios[name]) {
    console.error(`unknown scenario ${name}`);
    process.exit(3);
  }
  const c = client();
  try {
    await scenarios[name](c, scenario.queue);
  } finally {
    await c.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Failure ? e.message : e.stack || String(e));
    process.exit(1);
  },
);
