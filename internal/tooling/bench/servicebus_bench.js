// Service Bus throughput through the JavaScript SDK (@azure/service-bus),
// run by `ffpipe bench` (sbjs.go): send N messages in batches of 100 (8
// batches in flight), then receive in batches of 100 and complete each.
// Prints {"n":…, "sendMs":…, "receiveMs":…} on stdout.
//
//   SB_CONNECTION=… SB_QUEUE=… node servicebus_bench.js <n>
"use strict";

const { ServiceBusClient } = require("@azure/service-bus");

async function main() {
  const n = Number(process.argv[2]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`message count ${process.argv[2]}: want a positive integer`);
  const q = process.env.SB_QUEUE;
  const c = new ServiceBusClient(process.env.SB_CONNECTION);
  try {
    const body = Buffer.alloc(256, 0x61); // about a request message
    const s = c.createSender(q);
    const batches = Math.ceil(n / 100);
    const t0 = process.hrtime.bigint();
    let next = 0;
    async function sendLoop() {
      for (let b = next++; b < batches; b = next++) {
        const batch = await s.createMessageBatch();
        for (let i = b * 100; i < Math.min(n, (b + 1) * 100); i++) {
          if (!batch.tryAddMessage({ body, messageId: `m${i}` })) throw new Error(`message ${i} does not fit its batch`);
        }
        await s.sendMessages(batch);
      }
    }
    await Promise.all(Array.from({ length: 8 }, sendLoop));
    const sendMs = Number(process.hrtime.bigint() - t0) / 1e6;

    const r = c.createReceiver(q, { maxAutoLockRenewalDurationInMs: 0 });
    const t1 = process.hrtime.bigint();
    for (let got = 0; got < n; ) {
      const msgs = await r.receiveMessages(Math.min(100, n - got), { maxWaitTimeInMs: 30000 });
      if (msgs.length === 0) throw new Error(`nothing received within 30 s after ${got} of ${n}`);
      await Promise.all(msgs.map((m) => r.completeMessage(m)));
      got += msgs.length;
    }
    const receiveMs = Number(process.hrtime.bigint() - t1) / 1e6;
    process.stdout.write(JSON.stringify({ n, sendMs, receiveMs }) + "\n");
  } finally {
    await c.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
